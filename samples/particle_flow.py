"""Particle flow on tracks and calorimeter clusters, vectorised over a chunk (GeV, rad).

Tracks are extrapolated (helix in the 3.8 T field) to the ECAL and HCAL surfaces and linked
to the cluster they point at (``calorimeter.cluster_at``: the impact cell or its 3x3
window). Tracks and the clusters linked to them form blocks (connected components; an ECAL
cluster joins only the block of its most energetic track, see ``blocks``). In each block:

- identified muons (tracker + efficiency; hadrons fake with a small rate) take their track
  momentum and a MIP out of the block's calorimeter energy; identified electrons (efficiency
  turning on with pT; hadrons whose linked deposit is almost all ECAL fake with a
  probability) take the energy of their ECAL cluster when no other track shares it;
- the other tracks are charged hadrons (pion mass); the calibrated (``charged`` table)
  linked ECAL + HCAL energy is compared with the sum of their momenta; an excess larger than
  ``pf_excess_nsigma`` resolutions becomes a photon if it fits in the (EM-calibrated) ECAL
  energy, else a photon with the ECAL energy plus a neutral hadron with the rest;
- clusters in no block: ECAL -> photons (``em`` calibration), HCAL -> neutral hadrons
  (``neutral`` calibration); HF clusters -> HF EM (pdgId 2, EM-channel fraction above
  ``HF_EM_FRACTION``, ``em`` calibration) or HF hadrons (pdgId 1, ``hf`` calibration).
"""
from __future__ import annotations

import numpy as np

from samples.calorimeter import cluster_at
from samples.detector import (ELECTRON_MASS, MUON_MASS, NOMINAL, PF_CHARGED, PF_ELECTRON, PF_HF_EM, PF_HF_HAD,
                              PF_MUON, PF_NEUTRAL, PF_PHOTON, PION_MASS, DetectorConfig, surface_phi)
from samples.pf_calibration import calibrate, resolution

HF_EM_FRACTION = 0.6
MUON_ECAL_MIP, MUON_HCAL_MIP = 0.5, 3.0


def link_tracks(tracks: dict, layers: list[tuple], radius: float, z: float,
                cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Cluster index (-1 if none) each track points at on a calorimeter surface.

    ``layers``: (grid, cells, cluster index offset) of the grids read at that surface.
    """
    phi_s, reaches = surface_phi(tracks["pt"], tracks["eta"], tracks["phi"], tracks["charge"], radius, z, cfg)
    out = np.full(len(phi_s), -1)
    for grid, cells, offset in layers:
        c = cluster_at(grid, cells, tracks["event"], tracks["eta"], phi_s)
        out = np.where((out < 0) & (c >= 0) & reaches, c + offset, out)
    return out


def blocks(n_tracks: int, n_ecal: int, n_hcal: int, t_ecal: np.ndarray, t_hcal: np.ndarray,
           track_p: np.ndarray | None = None) -> np.ndarray:
    """Block (connected component) of every node: tracks, then ECAL, then HCAL clusters.

    A track joins the HCAL cluster it points at; an ECAL cluster joins the block of the most energetic track
    pointing at it (``track_p``, GeV; all its tracks when None). So, as in CMS PF, the calorimeter energy is
    compared with the tracks cluster by cluster and a dense jet core is not one giant block with one neutral."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = n_tracks + n_ecal + n_hcal
    t = np.arange(n_tracks)
    me, mh = t_ecal >= 0, t_hcal >= 0
    if track_p is not None and me.any():
        best = np.full(n_ecal, -1.0)
        np.maximum.at(best, t_ecal[me], track_p[me])
        me = me & (track_p >= best[np.maximum(t_ecal, 0)])
    rows = np.concatenate([t[me], t[mh]])
    cols = np.concatenate([n_tracks + t_ecal[me], n_tracks + n_ecal + t_hcal[mh]])
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(g, directed=False)[1]


def _weighted_position(blk, eta, phi, w, nb):
    sw = np.bincount(blk, w, nb)
    ok = sw > 0
    x = np.bincount(blk, w * np.cos(phi), nb)
    y = np.bincount(blk, w * np.sin(phi), nb)
    e = np.bincount(blk, w * eta, nb) / np.where(ok, sw, 1.0)
    return e, np.arctan2(y, x), ok


def _cands(event, energy, eta, phi, pdg, charge, mass, track, true):
    n = len(energy)

    def full(x, dtype):
        return np.broadcast_to(np.asarray(x, dtype), (n,)).copy()

    return {"event": full(event, np.int64), "energy": full(energy, float), "eta": full(eta, float),
            "phi": full(phi, float), "pdgId": full(pdg, np.int32), "charge": full(charge, np.int32),
            "mass": full(mass, float), "track": full(track, np.int64), "true_energy": full(true, float)}


def identify_leptons(tracks: dict, e_ecal_link: np.ndarray, e_hcal_link: np.ndarray, rng: np.random.Generator,
                     cfg: DetectorConfig = NOMINAL) -> tuple[np.ndarray, np.ndarray]:
    """(is_muon, is_electron) per track: true leptons with an efficiency, hadron fakes from
    where their energy is (ECAL-only showers for electrons) or at a small rate (muons)."""
    a = np.abs(tracks["true_pdgId"])
    p = tracks["pt"] * np.cosh(tracks["eta"])
    u = rng.random((3, len(p)))
    mu_ok = (np.abs(tracks["eta"]) < cfg.muon_eta) & (p > cfg.muon_min_p)
    is_mu = mu_ok & np.where(a == 13, u[0] < cfg.muon_eff, (a != 11) & (u[0] < cfg.muon_fake))
    eff_e = cfg.ele_eff * (1.0 - np.exp(-(tracks["pt"] - cfg.ele_min_pt) / cfg.ele_eff_turnon))
    emlike = (e_ecal_link > cfg.ele_fake_eoverp * p) & (e_hcal_link < 0.1 * p)
    is_e = (tracks["pt"] > cfg.ele_min_pt) & ~is_mu & np.where(a == 11, u[1] < eff_e,
                                                                 emlike & (u[2] < cfg.ele_fake_prob))
    return is_mu, is_e


def particle_flow(tracks: dict, ecal: dict, hcal: dict, hf: dict, table: dict, rng: np.random.Generator,
                  cfg: DetectorConfig = NOMINAL) -> tuple[dict, dict]:
    """PF candidates from tracks and clusters.

    ``tracks``: event, pt, eta, phi, charge, true_pdgId, link_ecal, link_hcal (cluster
    indices or -1). ``ecal``/``hcal``/``hf``: cluster tables (event, eta, phi, energy raw GeV,
    true; hf also em). Returns (candidates: event, energy, eta, phi, pdgId, charge, mass,
    track (row of the track or -1), true_energy (-1 if not a single cluster); per-track
    block info ``linked_raw``, ``block``).
    """
    nt, ne, nh = len(tracks["pt"]), len(ecal["energy"]), len(hcal["energy"])
    te, th = tracks["link_ecal"], tracks["link_hcal"]
    p = tracks["pt"] * np.cosh(tracks["eta"])
    blk = blocks(nt, ne, nh, te, th, p)
    nb = int(blk.max()) + 1 if len(blk) else 0
    bt, be, bh = blk[:nt], blk[nt:nt + ne], blk[nt + ne:]
    e_e = np.where(te >= 0, ecal["energy"][np.maximum(te, 0)], 0.0) if ne else np.zeros(nt)
    e_h = np.where(th >= 0, hcal["energy"][np.maximum(th, 0)], 0.0) if nh else np.zeros(nt)
    is_mu, is_e = identify_leptons(tracks, e_e, e_h, rng, cfg)
    # electrons take their ECAL cluster when no other track is linked to it
    n_on_cl = np.bincount(te[te >= 0], minlength=ne)
    ele_takes = is_e & (te >= 0) & (n_on_cl[np.maximum(te, 0)] == 1) if ne else np.zeros(nt, bool)
    consumed = np.zeros(ne, bool)
    consumed[te[ele_takes]] = True
    aeta_e, aeta_h = np.abs(ecal["eta"]), np.abs(hcal["eta"])
    e_ele = np.where(ele_takes, calibrate(table, "em", e_e, np.abs(tracks["eta"])), p)
    # block sums
    ecal_raw = np.where(consumed, 0.0, ecal["energy"])
    has_trk = np.bincount(bt, minlength=nb) > 0
    b_ecal = np.bincount(be, ecal_raw, nb)
    b_hcal = np.bincount(bh, hcal["energy"], nb)
    n_mu = np.bincount(bt[is_mu], minlength=nb)
    b_ecal = np.maximum(b_ecal - MUON_ECAL_MIP * n_mu, 0.0)
    b_hcal = np.maximum(b_hcal - MUON_HCAL_MIP * n_mu, 0.0)
    had = ~is_mu & ~is_e
    b_p = np.bincount(bt[had], p[had], nb)
    b_eta_t = np.bincount(bt[had], p[had] * tracks["eta"][had], nb) / np.maximum(b_p, 1e-9)
    raw = b_ecal + b_hcal
    e_cal = calibrate(table, "charged", raw, np.abs(b_eta_t))
    sigma = resolution(table, "charged", raw, np.abs(b_eta_t)) * np.maximum(b_p, 1e-9)
    excess = e_cal - b_p
    charged_block = has_trk & (b_p > 0)
    neutral_out = charged_block & (excess > cfg.pf_excess_nsigma * sigma)
    e_ecal_em = calibrate(table, "em", b_ecal, np.abs(b_eta_t))
    ph_e = np.where(excess > e_ecal_em, e_ecal_em, excess)
    nh_e = np.where(excess > e_ecal_em, excess - e_ecal_em, 0.0)
    pe_eta, pe_phi, pe_ok = _weighted_position(be, ecal["eta"], ecal["phi"], ecal_raw, nb)
    ph_eta, ph_phi, ph_ok = _weighted_position(bh, hcal["eta"], hcal["phi"], hcal["energy"], nb)
    b_event = np.zeros(nb, dtype=np.int64)
    for b_arr, ev in ((bt, tracks["event"]), (be, ecal["event"]), (bh, hcal["event"])):
        b_event[b_arr] = ev
    out = []
    # tracks: charged hadrons, electrons, muons
    q = tracks["charge"]
    code = np.where(is_mu, -PF_MUON * q, np.where(is_e, -PF_ELECTRON * q, PF_CHARGED * q))
    mass = np.where(is_mu, MUON_MASS, np.where(is_e, ELECTRON_MASS, PION_MASS))
    e_trk = np.where(is_e, np.maximum(e_ele, ELECTRON_MASS), np.sqrt(p ** 2 + mass ** 2))
    out.append(_cands(tracks["event"], e_trk, tracks["eta"], tracks["phi"], code, q, mass, np.arange(nt), -1.0))
    # excess neutrals of charged blocks
    mk_ph = neutral_out & (ph_e > 0) & pe_ok
    mk_ph_h = neutral_out & (ph_e > 0) & ~pe_ok                  # no ECAL energy: the excess is hadronic
    nh_e = np.where(mk_ph_h, nh_e + ph_e, nh_e)
    mk_nh = neutral_out & (nh_e > 0)
    eta_nh = np.where(ph_ok, ph_eta, pe_eta)
    phi_nh = np.where(ph_ok, ph_phi, pe_phi)
    out.append(_cands(b_event[mk_ph], ph_e[mk_ph], pe_eta[mk_ph], pe_phi[mk_ph], PF_PHOTON, 0, 0.0, -1, -1.0))
    out.append(_cands(b_event[mk_nh], nh_e[mk_nh], eta_nh[mk_nh], phi_nh[mk_nh], PF_NEUTRAL, 0, 0.0, -1, -1.0))
    # unlinked clusters
    free_e = ~has_trk[be] & ~consumed
    free_h = ~has_trk[bh]
    out.append(_cands(ecal["event"][free_e], calibrate(table, "em", ecal["energy"][free_e], aeta_e[free_e]),
                      ecal["eta"][free_e], ecal["phi"][free_e], PF_PHOTON, 0, 0.0, -1, ecal["true"][free_e]))
    out.append(_cands(hcal["event"][free_h], calibrate(table, "neutral", hcal["energy"][free_h], aeta_h[free_h]),
                      hcal["eta"][free_h], hcal["phi"][free_h], PF_NEUTRAL, 0, 0.0, -1, hcal["true"][free_h]))
    # HF
    hf_em = hf["em"] > HF_EM_FRACTION * hf["energy"]
    a_hf = np.abs(hf["eta"])
    e_hf = np.where(hf_em, calibrate(table, "em", hf["energy"], a_hf), calibrate(table, "hf", hf["energy"], a_hf))
    out.append(_cands(hf["event"], e_hf, hf["eta"], hf["phi"], np.where(hf_em, PF_HF_EM, PF_HF_HAD), 0, 0.0, -1,
                      hf["true"]))
    cands = {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    keep = cands["energy"] > 0
    cands = {k: v[keep] for k, v in cands.items()}
    info = {"block": bt, "linked_raw": raw[bt] if nt else np.zeros(0), "is_mu": is_mu, "is_e": is_e}
    return cands, info


__all__ = ["particle_flow", "link_tracks", "blocks", "identify_leptons", "HF_EM_FRACTION"]
