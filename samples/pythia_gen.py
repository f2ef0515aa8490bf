"""Pythia 8 set-up and extraction of generator events into flat numpy arrays.

``make_pythia(process, seed)`` builds a Pythia instance ("qcd": biased 2->2 QCD at
13.6 TeV; "minbias": inelastic soft QCD for the pileup library).
``extract_event(pythia)`` turns one event into a dict of numpy arrays: the stable
particles (GeV, mm) with their heavy-flavour ancestor, the hard/shower partons and the
weakly decaying B/C hadrons (for flavour and secondary vertices).
"""
from __future__ import annotations

import numpy as np

from samples.detector import NOMINAL

PROCESSES = ("qcd", "minbias")
ECM = 13600.0
PTHAT_MIN = 15.0
BIAS_POWER = 4.0
BIAS_REF = 15.0
#: decays happen only inside the calorimeter's inner surface (the detector's ECAL barrel radius and endcap z, mm)
CALO_XY_MM, CALO_Z_MM = 1000.0 * NOMINAL.ecal_radius, 1000.0 * NOMINAL.ecal_z


def make_pythia(process: str, seed: int, ecm: float = ECM):
    """A configured, initialised Pythia for ``process`` with random seed ``seed``."""
    import pythia8mc

    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}")
    p = pythia8mc.Pythia("", False)
    settings = [f"Beams:eCM = {ecm}", "Random:setSeed = on", f"Random:seed = {1 + seed % 900_000_000}",
                "Print:quiet = on", "Next:numberCount = 0",
                # as Geant4 in CMS: K0S, Lambda, Sigma, Xi, Omega decay in flight (c*tau < 1 m), but only
                # before they reach the calorimeter (ECAL barrel radius 1.29 m, endcap |z| 3.15 m); beyond it
                # they shower as hadrons; pi+-, K+-, K0L, neutrons are stable
                "ParticleDecays:limitTau0 = on", "ParticleDecays:tau0Max = 1000",
                "ParticleDecays:limitCylinder = on", f"ParticleDecays:xyMax = {CALO_XY_MM}",
                f"ParticleDecays:zMax = {CALO_Z_MM}"]
    if process == "qcd":
        settings += ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {PTHAT_MIN}",
                     "PhaseSpace:bias2Selection = on", f"PhaseSpace:bias2SelectionPow = {BIAS_POWER}",
                     f"PhaseSpace:bias2SelectionRef = {BIAS_REF}"]
    else:
        settings += ["SoftQCD:inelastic = on"]
    for s in settings:
        if not p.readString(s):
            raise RuntimeError(f"Pythia rejected setting {s!r}")
    if not p.init():
        raise RuntimeError("Pythia initialisation failed")
    return p


def _is_heavy_hadron(pid: int, q: int) -> bool:
    """True for hadrons containing quark ``q`` (5 = b, 4 = c)."""
    a = abs(pid)
    if a < 100:
        return False
    digits = (a // 1000 % 10, a // 100 % 10, a // 10 % 10)
    return q in digits and (q == max(digits[:2]) or digits[0] == q)


def hadron_flavour_of(pid: int) -> int:
    """5 for B hadrons, 4 for C hadrons (without b), else 0."""
    if _is_heavy_hadron(pid, 5):
        return 5
    if _is_heavy_hadron(pid, 4):
        return 4
    return 0


def extract_event(p) -> dict:
    """Flat numpy arrays of one Pythia event.

    Keys: particles ``px, py, pz, e, pdgId, charge, vx, vy, vz`` (stable, GeV and mm),
    ``hf_idx`` (index into ``hadrons`` of the heavy-flavour ancestor, -1 if none);
    ``hadrons`` (weakly decaying B/C hadrons: pt, eta, phi, mass, pdgId, flavour, vx, vy, vz
    of their decay), ``partons`` (pt, eta, phi, pdgId of partons entering hadronisation
    and of the outgoing hard partons, with status), ``weight``.
    """
    ev = p.event
    n = ev.size()
    hf_of = np.full(n, -1, dtype=np.int64)
    hadrons, partons, parts = [], [], []
    for i in range(1, n):
        q = ev[i]
        pid = q.id()
        apid = abs(pid)
        st = q.status()
        m1 = q.mother1()
        anc = hf_of[m1] if m1 > 0 else -1
        if anc < 0 and apid > 100:
            fl = hadron_flavour_of(pid)
            if fl and not q.isFinal():
                # weakly decaying: no daughter of the same flavour
                d1, d2 = q.daughter1(), q.daughter2()
                same = any(hadron_flavour_of(ev[d].id()) == fl for d in range(d1, max(d1, d2) + 1) if d > 0)
                if not same:
                    anc = len(hadrons)
                    hadrons.append((q.pT(), q.eta(), q.phi(), q.m(), pid, fl,
                                    ev[d1].xProd(), ev[d1].yProd(), ev[d1].zProd()))
        hf_of[i] = anc
        if (apid <= 5 or apid == 21) and (abs(st) == 23 or 71 <= abs(st) <= 73) and q.pT() > 1.0:
            partons.append((q.pT(), q.eta(), q.phi(), pid, abs(st)))
        if q.isFinal():
            parts.append((q.px(), q.py(), q.pz(), q.e(), pid, q.charge(), q.xProd(), q.yProd(), q.zProd(), anc))
    a = np.array(parts, dtype=np.float64).reshape(-1, 10)
    h = np.array(hadrons, dtype=np.float64).reshape(-1, 9)
    pa = np.array(partons, dtype=np.float64).reshape(-1, 5)
    return {
        "px": a[:, 0], "py": a[:, 1], "pz": a[:, 2], "e": a[:, 3], "pdgId": a[:, 4].astype(np.int32),
        "charge": a[:, 5].astype(np.int32), "vx": a[:, 6], "vy": a[:, 7], "vz": a[:, 8],
        "hf_idx": a[:, 9].astype(np.int64),
        "had_pt": h[:, 0], "had_eta": h[:, 1], "had_phi": h[:, 2], "had_mass": h[:, 3],
        "had_pdgId": h[:, 4].astype(np.int32), "had_flavour": h[:, 5].astype(np.int32),
        "had_vx": h[:, 6], "had_vy": h[:, 7], "had_vz": h[:, 8],
        "parton_pt": pa[:, 0], "parton_eta": pa[:, 1], "parton_phi": pa[:, 2],
        "parton_pdgId": pa[:, 3].astype(np.int32), "parton_status": pa[:, 4].astype(np.int32),
        "weight": float(p.infoPython().weight()),
    }


def generate_events(process: str, n_events: int, seed: int) -> list[dict]:
    """``n_events`` extracted events of ``process`` from a Pythia seeded with ``seed``."""
    p = make_pythia(process, seed)
    out = []
    while len(out) < n_events:
        if not p.next():
            continue
        out.append(extract_event(p))
    return out
