"""Tracker and vertexing of the CMS-like detector (GeV, cm), vectorised over a chunk of events.

``reconstruct_tracks`` decides which charged particles are tracked (efficiency with a
low-pT turn-on, falling with the production radius, so K0S/Lambda products far out are
lost, and in dense jet cores where pixel clusters merge) and measures them (pT resolution,
impact parameters with the production vertex, worse without inner pixel hits,
``lostInnerHits`` in the NanoAOD convention: -1 first hit in pixel layer 1, 0 no lost
inner hit, 1 one, 2 more). ``reconstruct_vertices`` finds pileup vertices (>= 2 tracks of
pT > 0.5 GeV, an efficiency) and ``associate_tracks`` assigns every track a vertex and a
``pvAssocQuality`` the way PrimaryVertexAssignment does from dz compatibility: 7/6 used in
a vertex fit (tight/loose), 5 dz-compatible with the closest vertex in dz (within 0.1 cm and 5 sigma,
for tracks with a dz error below 0.05 cm), 4 b-track recovery (within 1 mm of the closest vertex, close to a jet axis),
1 closest in dz but incompatible, 0 more than 1 cm from every reconstructed vertex.
"""
from __future__ import annotations

import numpy as np

from samples.detector import NOMINAL, DetectorConfig
from samples.eta_phi import eta_phi_tree

Q_NOT_RECO, Q_OTHER_DZ, Q_BTAG, Q_DZ, Q_FIT_LOOSE, Q_FIT_TIGHT = 0, 1, 4, 5, 6, 7


def track_efficiency(pt: np.ndarray, r_prod: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Tracking efficiency for pT (GeV) and production radius (cm)."""
    turn_on = cfg.track_eff_plateau * (1.0 - np.exp(-np.asarray(pt) / cfg.track_eff_turnon))
    return turn_on * np.clip(1.0 - np.asarray(r_prod) / cfg.track_max_radius, 0.0, 1.0) ** 0.7


def impact_resolution(pt: np.ndarray, eta: np.ndarray, cfg: DetectorConfig = NOMINAL) -> tuple[np.ndarray, np.ndarray]:
    """(sigma_d0, sigma_dz) in cm of a prompt track with a hit in the first pixel layer."""
    pt = np.maximum(pt, 0.1)
    s0 = 1e-4 * np.hypot(cfg.d0_res_um, cfg.d0_ms_um / pt / np.sqrt(1.0 / np.cosh(eta) + 1e-3))
    sz = 1e-4 * np.hypot(cfg.dz_res_um, cfg.dz_ms_um / pt) * np.cosh(eta) ** 0.75
    return s0, sz


def lost_hit_scale(lost_inner_hits: np.ndarray, r_prod: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Factor on the impact resolution of a track whose first hit is further out: ``lost_hit_res_scale`` per
    lostInnerHits code 0 / 1 / 2 (a track seeded in the strips has a dz error of ~0.2 cm, as in real PFNano) or,
    for a displaced track, 1 + r_prod / r(layer 1), whichever is larger."""
    scale = np.select([lost_inner_hits == 0, lost_inner_hits == 1, lost_inner_hits >= 2],
                      list(cfg.lost_hit_res_scale), 1.0)
    return np.maximum(scale, 1.0 + np.asarray(r_prod) / cfg.pixel_l1_radius)


def lost_inner_hits(r_prod: np.ndarray, z_l1: np.ndarray, u: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """NanoAOD lostInnerHits from the production radius (cm), the z where the track crosses the
    first pixel layer (cm) and a uniform number ``u``: prompt tracks crossing layer 1 in an
    active module give -1 (hit) or 1 (hit lost, ``pixel_hit_eff``); crossing it outside an active
    module (``pixel_l1_inactive``) or beyond its length gives 0; prompt tracks seeded from the outer
    layers only (``seed_from_outer``) and tracks produced beyond layer 2 give 2; between layers 1 and 2, 1."""
    in_l1 = np.abs(z_l1) < cfg.pixel_l1_half_length
    prompt = r_prod < cfg.pixel_l1_radius
    p_outer, p_dead = cfg.seed_from_outer, cfg.seed_from_outer + cfg.pixel_l1_inactive
    p_lost = p_dead + (1.0 - p_dead) * (1.0 - cfg.pixel_hit_eff)
    prompt_code = np.select([u < p_outer, (u < p_dead) | ~in_l1, u < p_lost], [2, 0, 1], -1)
    out = np.where(prompt, prompt_code, np.where(r_prod < cfg.pixel_l2_radius, 1, 2))
    return out.astype(np.int32)


def fit_selection(pt: np.ndarray, u: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Whether a prompt track of ``pt`` (GeV) passes the vertex-fit track selection (pixel hits,
    chi2, and an adaptive-fit weight that soft tracks with large dz errors often lose), given a
    uniform number ``u``: an effective turn-on, ``fit_track_eff * (1 - exp(-pt / fit_track_turnon))``."""
    return u < cfg.fit_track_eff * (1.0 - np.exp(-np.asarray(pt) / cfg.fit_track_turnon))


def core_neighbours(event: np.ndarray, eta: np.ndarray, phi: np.ndarray, hard: np.ndarray, dr: float) -> np.ndarray:
    """Per particle, the number of other ``hard`` particles of its event within ``dr`` in (eta, phi)."""
    out = np.zeros(len(eta), dtype=np.int64)
    idx = np.nonzero(hard)[0]
    if len(idx) < 2:
        return out
    tree = eta_phi_tree(event[idx], eta[idx], phi[idx], int(event.max()) + 1)
    pairs = tree.query_pairs(dr, output_type="ndarray")
    out[idx] = np.bincount(pairs.ravel(), minlength=len(idx)) if len(pairs) else 0
    return out


def reconstruct_tracks(parts: dict, rng: np.random.Generator, cfg: DetectorConfig = NOMINAL) -> dict:
    """Tracks of flat particles.

    ``parts``: pt, eta, phi, charge, vx, vy (cm, from the beam line), vz (cm, relative to the
    primary vertex), z0 (cm, absolute z of the production point), optional event (for the dense-core
    losses, see ``core_neighbours``). Returns per particle:
    ``tracked``, ``pt_trk``, ``d0``, ``dz`` (w.r.t. the PV), ``d0Err``, ``dzErr``,
    ``trkChi2``, ``lostInnerHits``, ``details`` (packed track details kept), ``r_prod``,
    ``fit_ok`` (passes the vertex-fit track selection, see ``fit_selection``).
    """
    pt, eta, phi, q = parts["pt"], parts["eta"], parts["phi"], parts["charge"]
    n = len(pt)
    aeta = np.abs(eta)
    vx, vy, vz = parts["vx"], parts["vy"], parts["vz"]
    r_prod = np.hypot(vx, vy)
    u = rng.random((4, n))
    g = rng.standard_normal((3, n))
    eff = track_efficiency(pt, r_prod, cfg)
    if "event" in parts and cfg.core_loss > 0:                # merged pixel clusters in dense jet cores
        near = core_neighbours(parts["event"], eta, phi, (q != 0) & (pt > cfg.core_min_pt) & (aeta < cfg.tracker_eta),
                               cfg.core_dr)
        eff = eff * np.exp(-cfg.core_loss * near)
    tracked = (q != 0) & (aeta < cfg.tracker_eta) & (pt > cfg.track_min_pt) & (u[0] < eff)
    rel = np.hypot(cfg.track_res_const, cfg.track_res_slope * pt) * (1.0 + 0.5 * aeta / cfg.tracker_eta)
    pt_trk = pt * np.maximum(1.0 + rel * g[0], 0.05)
    d0_true = vx * np.sin(phi) - vy * np.cos(phi)
    dz_true = vz - (vx * np.cos(phi) + vy * np.sin(phi)) * np.sinh(eta)
    z_l1 = parts["z0"] + (cfg.pixel_l1_radius - np.minimum(r_prod, cfg.pixel_l1_radius)) * np.sinh(eta)
    lih = lost_inner_hits(r_prod, z_l1, u[1], cfg)
    s0, sz = impact_resolution(pt, eta, cfg)
    scale = lost_hit_scale(lih, r_prod, cfg)                 # fewer pixel hits: worse impact parameters
    s0, sz = s0 * scale, sz * scale
    # non-Gaussian tails (hit mis-assignment, hard scatters in the material): a share of the tracks is
    # measured ``ip_tail_scale`` times worse than its error says
    tail = np.where(u[3] < cfg.ip_tail_fraction, cfg.ip_tail_scale, 1.0)
    return {
        "tracked": tracked, "pt_trk": pt_trk, "r_prod": r_prod,
        "d0": d0_true + tail * s0 * g[1], "dz": dz_true + tail * sz * g[2], "d0Err": s0, "dzErr": sz,
        "trkChi2": np.floor(rng.chisquare(8, n) / 8.0 * (1.0 + 2.0 * (r_prod > cfg.pixel_l1_radius))),
        "lostInnerHits": lih,
        "details": pt_trk > cfg.track_details_pt,
        "fit_ok": fit_selection(pt_trk, u[2], cfg) & (lih < 2),   # the vertex fit wants >= 2 pixel layers
    }


def reconstruct_vertices(event: np.ndarray, vertex: np.ndarray, good_track: np.ndarray, n_vertices: np.ndarray,
                         rng: np.random.Generator, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Per (event, vertex) whether it is reconstructed: the PV (vertex 0) always, a pileup vertex
    with >= ``vertex_min_tracks`` good tracks and probability ``vertex_eff``.

    ``n_vertices``: interactions per event (1 + n_pu); returns a flat bool array indexed by
    ``offsets[event] + vertex`` with ``offsets = cumsum(n_vertices) - n_vertices``.
    """
    off = np.concatenate([[0], np.cumsum(n_vertices)])
    flat = off[event] + vertex
    nt = np.bincount(flat[good_track], minlength=int(off[-1]))
    reco = (nt >= cfg.vertex_min_tracks) & (rng.random(int(off[-1])) < cfg.vertex_eff)
    reco[off[:-1]] = True
    return reco


def associate_tracks(event: np.ndarray, vertex: np.ndarray, z_trk: np.ndarray, dz_err: np.ndarray,
                     d0_sig: np.ndarray, vertex_z: np.ndarray, vertex_reco: np.ndarray, n_vertices: np.ndarray,
                     cfg: DetectorConfig = NOMINAL, fit_ok: np.ndarray | None = None, d0: np.ndarray | None = None,
                     eta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(associated vertex index within the event, -1 for none; pvAssocQuality) per track.

    ``z_trk``: measured z of the track at the beam line (cm); ``vertex_z``: flat (as in
    ``reconstruct_vertices``) true vertex z (cm); ``d0_sig``: |d0| / sigma_d0; ``fit_ok``: the
    track passes the vertex-fit selection (all do when None); ``d0`` (cm) and ``eta`` (0 when None).
    Tracks in no fit are associated by dz (5 compatible, 1 closest), which is how soft pileup tracks
    end up in CHS jets. In between comes PrimaryVertexAssignment's b-track recovery (4): a track with a
    small dz error, within ``btag_dz`` in z and ``btag_dxy`` in xy of the closest vertex, and whose
    impact there, sqrt(d0^2 + (dz / cosh eta)^2), is below ``btag_axis`` (CMS: its distance to the axis
    of a nearby jet through that vertex; the jets are not known yet here, and a jet constituent runs
    nearly along its jet's axis).
    """
    off = np.concatenate([[0], np.cumsum(n_vertices)])
    own = off[event] + vertex
    big = 1e4
    # nearest reconstructed vertex in z: search in (event * big + z), sorted
    vid = np.nonzero(vertex_reco)[0]
    vev = np.searchsorted(off, vid, side="right") - 1
    code = vev * big + vertex_z[vid]
    order = np.argsort(code)
    code, vid = code[order], vid[order]
    x = event * big + z_trk
    pos = np.searchsorted(code, x)
    lo, hi = np.clip(pos - 1, 0, len(code) - 1), np.clip(pos, 0, len(code) - 1)
    dlo, dhi = np.abs(x - code[lo]), np.abs(x - code[hi])
    near = np.where(dlo <= dhi, vid[lo], vid[hi])
    dz_near = np.minimum(dlo, dhi)
    sig_own = np.abs(z_trk - vertex_z[own]) / np.maximum(dz_err, 1e-6)
    prompt = d0_sig < 3.0
    in_fit = vertex_reco[own] & prompt & (sig_own < cfg.fit_dz_sig)
    if fit_ok is not None:
        in_fit &= fit_ok
    tight = sig_own < cfg.tight_dz_sig
    err = np.maximum(dz_err, 1e-6)
    near_compat = (dz_near < cfg.compat_dz) & (dz_near / err < cfg.compat_dz_sig) & (err < cfg.compat_dz_err)
    d0 = np.zeros(len(z_trk)) if d0 is None else np.abs(d0)
    sin_theta = 1.0 / np.cosh(np.zeros(len(z_trk)) if eta is None else eta)
    btag = ((err < cfg.compat_dz_err) & (dz_near < cfg.btag_dz) & (d0 < cfg.btag_dxy)
            & (np.hypot(d0, dz_near * sin_theta) < cfg.btag_axis))
    quality = np.select([in_fit & tight, in_fit, near_compat, btag, dz_near < 1.0],
                        [Q_FIT_TIGHT, Q_FIT_LOOSE, Q_DZ, Q_BTAG, Q_OTHER_DZ], Q_NOT_RECO)
    assoc = np.select([in_fit, near_compat | btag, quality >= Q_OTHER_DZ], [own, near, near], -1)
    assoc_local = np.where(assoc >= 0, assoc - off[event], -1)
    return assoc_local.astype(np.int64), quality.astype(np.int32)


__all__ = ["core_neighbours", "track_efficiency", "impact_resolution", "lost_hit_scale", "lost_inner_hits",
           "fit_selection", "reconstruct_tracks", "reconstruct_vertices", "associate_tracks"]
