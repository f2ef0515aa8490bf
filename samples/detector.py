"""Parametric CMS-like detector, vectorised on flat particle arrays (GeV, mm, cm for vertices).

``simulate_particles(parts, rng, from_pv)`` turns stable generator particles into a
particle-flow-like candidate list: tracked charged hadrons (211), electrons (11),
muons (13), photons (22), neutral hadrons (130), HF hadronic/EM (1, 2). Neutrinos are
lost; untracked charged hadrons end in the calorimeters. The hadron calorimeter response
is non-linear (Groom-style e/h with an energy-dependent pi0 fraction), so low-energy
hadrons respond lowest; every subdetector has stochastic, noise and constant terms and a
threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DetectorConfig:
    """Detector parameters (energies in GeV)."""

    tracker_eta: float = 2.5
    track_min_pt: float = 0.4
    track_eff_plateau: float = 0.95
    track_eff_turnon: float = 0.8           # GeV scale of the low-pt efficiency loss
    track_res_const: float = 0.008
    track_res_slope: float = 1.2e-4          # per GeV
    ecal_stoch: float = 0.03
    ecal_noise: float = 0.2
    ecal_const: float = 0.005
    ecal_threshold: float = 0.7
    ecal_scale: float = 0.98
    hcal_stoch: float = 1.0
    hcal_noise: float = 0.5
    hcal_const: float = 0.05
    hcal_threshold: float = 1.5
    h_over_e: float = 0.45                   # hadronic/EM response of the calorimeters (non-compensating)
    groom_k: float = 0.82                    # f_em = 1 - E^(k-1)
    calo_eta: float = 5.0
    hf_eta: float = 3.0
    muon_eta: float = 2.4
    d0_res_um: float = 20.0                  # asymptotic impact-parameter resolution
    d0_ms_um: float = 90.0                   # multiple scattering term (um * GeV)


NOMINAL = DetectorConfig()

PF_CHARGED, PF_ELECTRON, PF_MUON, PF_PHOTON, PF_NEUTRAL, PF_HF_HAD, PF_HF_EM = 211, 11, 13, 22, 130, 1, 2
PION_MASS = 0.13957


def hadron_response(e: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Mean HCAL response to a hadron of energy ``e`` (GeV): f_em + (1 - f_em) h/e."""
    f_em = 1.0 - np.power(np.maximum(e, 1.0), cfg.groom_k - 1.0)
    return f_em + (1.0 - f_em) * cfg.h_over_e


def _smear(rng, x, rel):
    return x * np.maximum(1.0 + rel * rng.standard_normal(x.shape), 0.0)


def simulate_particles(parts: dict, rng: np.random.Generator, from_pv: np.ndarray,
                       cfg: DetectorConfig = NOMINAL) -> dict:
    """PF candidates from flat stable particles.

    ``parts``: px, py, pz, e, pdgId, charge, vx, vy, vz (GeV, mm, vertex relative to the
    beam spot), plus ``pv_z`` (cm) of the interaction; ``from_pv``: bool per particle
    (hard-scatter vertex). Returns flat candidate arrays with ``src`` (index of the
    generator particle) and track quantities.
    """
    px, py, pz, e = parts["px"], parts["py"], parts["pz"], parts["e"]
    pid = parts["pdgId"]
    apid = np.abs(pid)
    q = parts["charge"]
    pt = np.hypot(px, py)
    ok = pt > 1e-6
    pt = np.where(ok, pt, 1e-6)
    eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    aeta = np.abs(eta)
    n = len(pt)
    u = rng.random(n)
    g1, g2, g3, g4 = (rng.standard_normal(n) for _ in range(4))
    invisible = (apid == 12) | (apid == 14) | (apid == 16) | ~ok
    charged = (q != 0) & ~invisible
    eff = cfg.track_eff_plateau * (1.0 - np.exp(-pt / cfg.track_eff_turnon))
    tracked = charged & (aeta < cfg.tracker_eta) & (pt > cfg.track_min_pt) & (u < eff)
    is_mu = (apid == 13) & tracked & (aeta < cfg.muon_eta) & (pt > 3.0)
    is_ele = (apid == 11) & tracked
    # tracker momentum
    rel_trk = np.hypot(cfg.track_res_const, cfg.track_res_slope * pt) * (1.0 + 0.5 * aeta / cfg.tracker_eta)
    pt_trk = pt * np.maximum(1.0 + rel_trk * g1, 0.05)
    # ECAL for photons and electrons
    em = ((apid == 22) | (apid == 11)) & ~tracked & ~invisible
    em_res = np.sqrt((cfg.ecal_stoch / np.sqrt(np.maximum(e, 1e-3))) ** 2 + (cfg.ecal_noise / np.maximum(e, 1e-3)) ** 2
                     + cfg.ecal_const ** 2)
    e_em = e * cfg.ecal_scale * np.maximum(1.0 + em_res * g2, 0.0)
    ele_res = np.sqrt((cfg.ecal_stoch / np.sqrt(np.maximum(e, 1e-3))) ** 2 + cfg.ecal_const ** 2)
    # hadrons in the calorimeters: neutral hadrons and untracked charged hadrons (not muons)
    had = ~invisible & ~tracked & ~em & (apid != 13)
    r_h = hadron_response(e, cfg)
    h_res = np.sqrt((cfg.hcal_stoch / np.sqrt(np.maximum(e, 1e-3))) ** 2 + (cfg.hcal_noise / np.maximum(e, 1e-3)) ** 2
                    + cfg.hcal_const ** 2)
    e_had = e * r_h * np.maximum(1.0 + h_res * g3, 0.0)
    in_calo = aeta < cfg.calo_eta
    keep_em = em & in_calo & (e_em > cfg.ecal_threshold * np.where(aeta > cfg.hf_eta, 4.0, 1.0))
    keep_had = had & in_calo & (e_had > cfg.hcal_threshold * np.where(aeta > cfg.hf_eta, 3.0, 1.0))
    keep_trk = tracked & ((apid != 13) | is_mu)
    keep = keep_trk | keep_em | keep_had
    # candidate energies and codes
    e_out = np.where(keep_trk, np.where(is_ele, e * np.maximum(1 + ele_res * g2, 0.05), pt_trk * np.cosh(eta)),
                     np.where(keep_em, e_em, e_had))
    code = np.where(keep_trk, np.where(is_mu, PF_MUON, np.where(is_ele, PF_ELECTRON, PF_CHARGED)),
                    np.where(keep_em, np.where(aeta > cfg.hf_eta, PF_HF_EM, PF_PHOTON),
                             np.where(aeta > cfg.hf_eta, PF_HF_HAD, PF_NEUTRAL)))
    code = np.where(keep_trk, code * -np.sign(q) * np.where(code == PF_CHARGED, -1, 1), code)
    mass = np.where(keep_trk, np.where(is_mu, 0.10566, np.where(is_ele, 0.000511, PION_MASS)), 0.0)
    # angular smearing of calorimeter objects (cell size)
    dphi_cal = np.where(keep_trk, 0.0, np.where(keep_em, 0.01, 0.04)) * g4
    deta_cal = np.where(keep_trk, 0.0, np.where(keep_em, 0.01, 0.04)) * rng.standard_normal(n)
    eta_out = eta + deta_cal
    phi_out = np.mod(phi + dphi_cal + np.pi, 2 * np.pi) - np.pi
    pt_out = e_out / np.cosh(eta_out)
    # impact parameters from the production vertex (mm -> cm), helix-free straight-line
    vx, vy, vz = parts["vx"] * 0.1, parts["vy"] * 0.1, parts["vz"] * 0.1
    d0_true = vx * np.sin(phi) - vy * np.cos(phi)
    dz_true = vz - (vx * np.cos(phi) + vy * np.sin(phi)) * np.sinh(eta)
    sig_d0 = 1e-4 * np.hypot(cfg.d0_res_um, cfg.d0_ms_um / np.maximum(pt, 0.1) / np.sqrt(np.cosh(eta) ** -1 + 1e-3))
    sig_dz = 1.5 * sig_d0 * np.cosh(eta) ** 0.5
    d0 = d0_true + sig_d0 * rng.standard_normal(n)
    dz = dz_true + sig_dz * rng.standard_normal(n)
    nhits = np.clip(np.rint(14 + 3 * rng.standard_normal(n) - 4 * (aeta > 2.0)), 5, 25)
    lost_inner = (np.hypot(vx, vy) > 4.0).astype(np.int32) + (rng.random(n) < 0.03)
    chi2 = rng.chisquare(5, n) / 5.0
    sel = np.nonzero(keep)[0]
    trk = keep_trk[sel]
    pv = from_pv[sel]
    # PV association quality as in PackedCandidate: 7 UsedInFitTight, 6 UsedInFitLoose, 5 CompatibilityDz,
    # 4 CompatibilityBTag, 0 NotReconstructedPrimary (from another vertex)
    displaced = np.abs(d0[sel]) > 5 * sig_d0[sel]
    assoc = np.where(pv, np.where(displaced, 4, np.where(pt[sel] > 1.0, 7, 6)), 0)
    out = {
        "src": sel, "pt": pt_out[sel], "eta": eta_out[sel], "phi": phi_out[sel], "mass": mass[sel],
        "pdgId": code[sel].astype(np.int32), "charge": np.where(trk, q[sel], 0).astype(np.int32),
        "d0": np.where(trk, d0[sel], 0.0), "d0Err": np.where(trk, sig_d0[sel], 0.0),
        "dz": np.where(trk, dz[sel], 0.0), "dzErr": np.where(trk, sig_dz[sel], 0.0),
        "trkChi2": np.where(trk, chi2[sel], 0.0), "numberOfHits": np.where(trk, nhits[sel], 0).astype(np.int32),
        "lostInnerHits": np.where(trk, lost_inner[sel], 0).astype(np.int32),
        "pvAssocQuality": np.where(trk, assoc, 0).astype(np.int32),
        "fromPV": np.where(trk, np.where(pv, 3, 0), 2 * pv).astype(np.int32),
        "puppiWeight": np.where(trk, pv.astype(np.float64), 1.0),
        "tracked": trk,
    }
    return out
