"""Z->ee selection, mass-constraint labels, electron features and histograms.

Physics functions are small and pure (numpy / awkward in, arrays out); ``ZeeProcessor``
only wires them. The label (DESIGN section 4): for a pair with 86 < m_ee < 97 GeV, the
transverse energy of leg 1 that puts the pair exactly on the Z mass given leg 2 is

    E_T,1 = M_Z^2 / (2 E_T,2 (cosh(d_eta) - cos(d_phi))),   M_Z = 91.1876 GeV,

and E_label,1 = E_T,1 cosh(eta_1). Each leg gets one label from its partner.

``processors.electrons.ZeeProcessor`` wires these functions.
"""
from __future__ import annotations

import hashlib

import awkward as ak
import hist
import numpy as np

from core.constants import GAMMA_Z, M_Z  # noqa: F401 (re-exported: the label mass)
from physics.jets import event_rho as _event_rho, wrap_phi
LABEL_WINDOW = (86.0, 97.0)  # GeV
PAIR_WINDOW = (60.0, 120.0)  # GeV, pairs kept for collection and histograms
MIN_PT = 15.0  # GeV
MAX_ABS_ETA_SC = 2.5
ECAL_GAP = (1.4442, 1.566)
MIN_CUT_BASED = 2  # loose
CAND_RADIUS = 0.3
MAX_CANDS = 16

#: scalar electron features, in the order the model sees them
SCALAR_FEATURES = ("log_e_raw", "eta_sc", "abs_eta_sc", "r9", "sieie", "hoe", "e_over_p", "rel_energy_err",
                   "pfRelIso03_all", "deltaEtaSC", "rho", "npv", "lostHits", "convVeto")
#: per-candidate features of PF candidates near the electron
CAND_FEATURES = ("dpt", "log_dpt", "deta", "dphi_bend", "dr", "is_photon", "is_charged", "is_neutral_hadron",
                 "puppiWeight")


# --------------------------------------------------------------------------- pure physics

def pair_mass(pt1, eta1, phi1, pt2, eta2, phi2):
    """Invariant mass (GeV) of two massless objects: m^2 = 2 pT1 pT2 (cosh(d_eta) - cos(d_phi))."""
    return np.sqrt(np.maximum(2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(phi1 - phi2)), 0.0))


def mass_constraint_label(et_partner, d_eta, d_phi, m_z: float = M_Z):
    """Transverse energy (GeV) of a leg that makes the pair mass exactly m_z given its partner's E_T."""
    return m_z**2 / (2 * et_partner * (np.cosh(d_eta) - np.cos(d_phi)))


def pair_labels(e1, eta1, phi1, e2, eta2, phi2, window: tuple[float, float] = LABEL_WINDOW, m_z: float = M_Z):
    """Label energies (GeV) of both legs of pairs; NaN where m_ee is outside ``window``.

    ``e1, e2`` are the measured energies; directions are the electrons' (eta, phi).
    Returns (label_1, label_2, m_ee).
    """
    e1, e2 = np.asarray(e1, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    et1, et2 = e1 / np.cosh(eta1), e2 / np.cosh(eta2)
    m = pair_mass(et1, eta1, phi1, et2, eta2, phi2)
    inside = (m > window[0]) & (m < window[1])
    d_eta, d_phi = np.asarray(eta1) - eta2, np.asarray(phi1) - phi2
    lab1 = mass_constraint_label(et2, d_eta, d_phi, m_z) * np.cosh(eta1)
    lab2 = mass_constraint_label(et1, d_eta, d_phi, m_z) * np.cosh(eta2)
    return np.where(inside, lab1, np.nan), np.where(inside, lab2, np.nan), m


def electron_id_mask(electrons: ak.Array, min_pt: float = MIN_PT) -> ak.Array:
    """Electrons passing pT, supercluster acceptance (gap excluded) and cutBased >= loose."""
    eta_sc = electrons.eta + electrons.deltaEtaSC
    abs_sc = abs(eta_sc)
    return ((electrons.pt > min_pt) & (abs_sc < MAX_ABS_ETA_SC)
            & ~((abs_sc > ECAL_GAP[0]) & (abs_sc < ECAL_GAP[1])) & (electrons.cutBased >= MIN_CUT_BASED))


def event_rho(events: ak.Array) -> np.ndarray:
    """rho (GeV) per event as float64 numpy; zeros when the file has none (an input feature only)."""
    return ak.to_numpy(_event_rho(events, required=False)).astype(np.float64)


def scalar_features(e_raw, eta, delta_eta_sc, r9, sieie, hoe, e_inv_minus_p_inv, energy_err, iso, rho, npv,
                    lost_hits, conv_veto) -> dict[str, np.ndarray]:
    """The scalar inputs of the electron model (dimensionless or O(1) scaled), one per electron."""
    e_raw = np.asarray(e_raw, dtype=np.float64)
    eta_sc = np.asarray(eta) + delta_eta_sc
    return {
        "log_e_raw": np.log(np.maximum(e_raw, 1e-3)),
        "eta_sc": eta_sc,
        "abs_eta_sc": np.abs(eta_sc),
        "r9": np.asarray(r9, dtype=np.float64),
        "sieie": 100 * np.asarray(sieie, dtype=np.float64),
        "hoe": np.clip(hoe, 0, 1),
        # E/p from 1/E - 1/p
        "e_over_p": np.clip(1.0 / np.maximum(1 - e_raw * np.asarray(e_inv_minus_p_inv), 1e-3), 0, 3),
        "rel_energy_err": np.clip(np.asarray(energy_err) / np.maximum(e_raw, 1e-3), 0, 1),
        "pfRelIso03_all": np.clip(iso, 0, 5),
        "deltaEtaSC": 10 * np.asarray(delta_eta_sc, dtype=np.float64),
        "rho": np.asarray(rho, dtype=np.float64) / 30.0,
        "npv": np.asarray(npv, dtype=np.float64) / 30.0,
        "lostHits": np.asarray(lost_hits, dtype=np.float64),
        "convVeto": np.asarray(conv_veto, dtype=np.float64),
    }


def nearby_candidates(eta, phi, pt, charge, cands: ak.Array, radius: float = CAND_RADIUS,
                      max_cands: int = MAX_CANDS) -> ak.Array:
    """PF candidates within ``radius`` of each electron (jagged, pT-ordered, at most ``max_cands``).

    ``eta, phi, pt, charge`` are jagged per event (the selected electrons); ``cands``
    the event's PFCands. The electron's own PF candidate (|pdgId| = 11, dR < 0.02) is
    dropped. ``dphi_bend`` is signed along the bending direction (-charge * dphi), so
    brem photons sit on one side for both charges.
    """
    pairs = ak.cartesian({"e": ak.zip({"eta": eta, "phi": phi, "pt": pt, "charge": charge}), "c": cands},
                         axis=1, nested=True)
    e, c = pairs.e, pairs.c
    deta = c.eta - e.eta
    dphi = wrap_phi(c.phi - e.phi)
    dr = np.sqrt(deta**2 + dphi**2)
    apdg = abs(c.pdgId)
    keep = (dr < radius) & ~((apdg == 11) & (dr < 0.02))
    dpt = c.pt / e.pt
    out = ak.zip({
        "dpt": dpt, "log_dpt": np.log(np.maximum(dpt, 1e-4)), "deta": deta, "dphi_bend": -e.charge * dphi, "dr": dr,
        "is_photon": ak.values_astype(apdg == 22, np.float32),
        "is_charged": ak.values_astype(c.charge != 0, np.float32),
        "is_neutral_hadron": ak.values_astype((apdg == 130) | (apdg == 2112) | (apdg == 1), np.float32),
        "puppiWeight": c.puppiWeight if "puppiWeight" in c.fields else ak.ones_like(dpt),
    })[keep]
    order = ak.argsort(out.dpt, axis=-1, ascending=False)
    return out[order][:, :, :max_cands]


# --------------------------------------------------------------------------- histograms

def mass_hist() -> hist.Hist:
    return hist.Hist(
        hist.axis.StrCategory([], name="kind", growth=True),
        hist.axis.StrCategory([], name="correction", growth=True),
        hist.axis.Regular(240, PAIR_WINDOW[0], PAIR_WINDOW[1], name="mass", label="m_ee [GeV]"),
    )


def ratio_hist(label: str) -> hist.Hist:
    return hist.Hist(
        hist.axis.StrCategory([], name="kind", growth=True),
        hist.axis.StrCategory([], name="correction", growth=True),
        hist.axis.Regular(200, 0.5, 1.5, name="ratio", label=label),
    )


def flat_float(a) -> np.ndarray:
    """Option-type awkward to float64 numpy (None -> NaN)."""
    return ak.to_numpy(ak.fill_none(a, np.nan)).astype(np.float64)


def pair_ids(dataset: str, run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """A 63-bit id per event, stable across chunks: hash(dataset) mixed with run/lumi/event."""
    h = int(hashlib.sha1(dataset.encode()).hexdigest()[:8], 16)
    x = (run.astype(np.uint64) * np.uint64(1_000_003) + lumi.astype(np.uint64)) * np.uint64(2_000_000_011) \
        + event.astype(np.uint64) + np.uint64(h) * np.uint64(0x9E3779B97F4A7C15 & 0xFFFFFFFF)
    return (x & np.uint64(0x7FFFFFFFFFFFFFFF)).astype(np.int64)


# --------------------------------------------------------------------------- E_T-dependent label reference

#: E_T bin edges (GeV) of the generator-level label reference (finer around the Jacobian peak)
REFERENCE_ET_EDGES = (15.0, 20.0, 25.0, 30.0, 34.0, 37.0, 40.0, 42.0, 44.0, 46.0, 48.0, 50.0, 53.0, 57.0, 62.0,
                      70.0, 85.0, 120.0, 1000.0)


def reference_table(et: np.ndarray, m: np.ndarray, edges=REFERENCE_ET_EDGES,
                    window: tuple[float, float] = LABEL_WINDOW) -> dict:
    """Median pair mass (GeV) of the legs in each E_T bin, pairs inside ``window`` only.

    ``et`` (GeV) and ``m`` (GeV) are per leg (a pair enters twice, once per leg). The label of a
    leg with E_T in a bin is steered to that bin's median: with a perfect partner,
    log(E_label / E_true) = log(m_ref^2 / m_true^2), whose median vanishes bin by bin -- FSR
    and the Jacobian peak correlate m_true with the leg's E_T, so a single reference mass
    leaves an E_T-dependent bias in the labels.
    """
    et, m = np.asarray(et, dtype=np.float64), np.asarray(m, dtype=np.float64)
    inside = (m > window[0]) & (m < window[1]) & np.isfinite(et)
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.digitize(et[inside], edges) - 1
    mm, ee = m[inside], et[inside]
    rows = [(float(np.median(ee[idx == b])), float(np.median(mm[idx == b])), int((idx == b).sum()))
            for b in range(len(edges) - 1) if (idx == b).sum() > 0]
    return {"et_edges": edges.tolist(), "et_centre": [r[0] for r in rows], "m_ref": [r[1] for r in rows],
            "n_legs": [r[2] for r in rows], "window": list(window),
            "m_ref_inclusive": float(np.median(mm)) if len(mm) else float(M_Z)}


def reference_mass_at(et, table: dict) -> np.ndarray:
    """Reference mass (GeV) for legs of transverse energy ``et`` (GeV): linear in E_T between bin medians,
    constant beyond the first and last."""
    return np.interp(np.asarray(et, dtype=np.float64), table["et_centre"], table["m_ref"])
