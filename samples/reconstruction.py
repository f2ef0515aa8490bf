"""Full reconstruction of a chunk of events: particles -> deposits, tracks -> cells, clusters ->
particle flow -> vertex association, PUPPI (GeV, cm; generator vertices in mm).

``reconstruct(parts, n_events, n_pu, seed, table)`` runs everything vectorised over the chunk
and returns the PF candidates (sorted by event) in PFNano conventions plus what the sample
writer needs (associated vertex, truth for validation and secondary vertices).
"""
from __future__ import annotations

import numpy as np

from samples.calorimeter import calorimeter_clusters
from samples.detector import NOMINAL, DetectorConfig, calo_deposits
from samples.particle_flow import link_tracks, particle_flow
from samples.puppi import puppi_weights
from samples.tracking import associate_tracks, reconstruct_tracks, reconstruct_vertices

MASSES = {211: 0.13957, 321: 0.49368, 130: 0.49761, 310: 0.49761, 2112: 0.93957, 2212: 0.93827, 22: 0.0,
          11: 0.000511, 13: 0.10566}


def kinematics(parts: dict) -> dict:
    """pt, eta, phi, mass (GeV) of flat particles with px, py, pz, e."""
    px, py, pz, e = parts["px"], parts["py"], parts["pz"], parts["e"]
    pt = np.maximum(np.hypot(px, py), 1e-9)
    return {"pt": pt, "eta": np.arcsinh(pz / pt), "phi": np.arctan2(py, px),
            "mass": np.sqrt(np.maximum(e ** 2 - px ** 2 - py ** 2 - pz ** 2, 0.0))}


def _concat(dicts):
    return {k: np.concatenate([d[k] for d in dicts]) for k in dicts[0]}


def _clusters(grid, dep, rng, with_em=False):
    w = [dep["energy"], dep["true"]] + ([dep["em"]] if with_em else [])
    cells, cl = calorimeter_clusters(grid, dep["event"], dep["eta"], dep["phi"], np.stack(w, axis=1), rng)
    cl["true"] = cl["extra"][:, 0]
    if with_em:
        cl["em"] = cl["extra"][:, 1]
    return cells, cl


def calorimeter(deposits: dict, rng: np.random.Generator, cfg: DetectorConfig = NOMINAL) -> tuple[dict, dict]:
    """Cells and clusters of all grids: (layers for linking, clusters ``ecal``/``hcal``/``hf``)."""
    ec = deposits["ecal"]
    barrel = np.abs(ec["eta"]) < cfg.barrel_eta
    eb_cells, eb = _clusters(cfg.ecal_barrel, {k: v[barrel] for k, v in ec.items()}, rng)
    ee_cells, ee = _clusters(cfg.ecal_endcap, {k: v[~barrel] for k, v in ec.items()}, rng)
    h_cells, h = _clusters(cfg.hcal, deposits["hcal"], rng)
    f_cells, f = _clusters(cfg.hf, deposits["hf"], rng, with_em=True)
    keys = ("event", "eta", "phi", "energy", "true")
    ecal = {k: np.concatenate([eb[k], ee[k]]) for k in keys}
    layers = {"ecal": [(cfg.ecal_barrel, eb_cells, 0), (cfg.ecal_endcap, ee_cells, len(eb["energy"]))],
              "hcal": [(cfg.hcal, h_cells, 0)]}
    return layers, {"ecal": ecal, "hcal": {k: h[k] for k in keys}, "hf": {k: f[k] for k in keys + ("em",)}}


def reconstruct(parts: dict, n_events: int, n_pu: np.ndarray, seed: int, table: dict,
                cfg: DetectorConfig = NOMINAL) -> dict:
    """Reconstruct flat particles of ``n_events`` events.

    ``parts``: px, py, pz, e, pdgId, charge, vx, vy, vz (mm; vz relative to the primary
    vertex), event, vertex (0 hard scatter, k >= 1 pileup interaction k), optional
    ``vertex_z`` (cm, relative to the PV, per (event, vertex) flat in vertex order) and
    ``hf_idx``. The hard-scatter and pileup particles draw from separate random streams.
    Returns {"cands", "tracks", "clusters", "npv", "linked_raw"}.
    """
    kin = kinematics(parts)
    p = dict(parts, **kin)
    p["vx"], p["vy"], p["vz"] = parts["vx"] * 0.1, parts["vy"] * 0.1, parts["vz"] * 0.1
    n_vert = 1 + np.asarray(n_pu, dtype=np.int64)
    vz_flat = parts.get("vertex_z", np.zeros(int(n_vert.sum())))
    off = np.concatenate([[0], np.cumsum(n_vert)])
    p["z0"] = p["vz"]                                             # production z relative to the PV (cm)
    hard = p["vertex"] == 0
    order = np.concatenate([np.nonzero(hard)[0], np.nonzero(~hard)[0]])
    deps, trks = [], []
    for k, sel in enumerate((np.nonzero(hard)[0], np.nonzero(~hard)[0])):
        rng = np.random.default_rng([seed, 10 + k])
        sub = {key: v[sel] for key, v in p.items() if isinstance(v, np.ndarray) and len(v) == len(hard)}
        d = calo_deposits(sub, rng, cfg)
        for dd in d.values():
            dd["index"] = sel[dd["index"]]
        deps.append(d)
        trks.append(reconstruct_tracks(sub, rng, cfg))
    deposits = {layer: _concat([d[layer] for d in deps]) for layer in ("ecal", "hcal", "hf")}
    trk_all = _concat(trks)
    inv = np.empty(len(order), dtype=np.int64)
    inv[order] = np.arange(len(order))
    trk_all = {k: v[inv] for k, v in trk_all.items()}            # back to particle order
    layers, clusters = calorimeter(deposits, np.random.default_rng([seed, 20]), cfg)
    rows = np.nonzero(trk_all["tracked"])[0]
    tracks = {"event": p["event"][rows], "pt": trk_all["pt_trk"][rows], "eta": p["eta"][rows], "phi": p["phi"][rows],
              "charge": p["charge"][rows], "true_pdgId": p["pdgId"][rows], "particle": rows}
    tracks["link_ecal"] = link_tracks(tracks, layers["ecal"], cfg.ecal_radius, cfg.ecal_z, cfg)
    tracks["link_hcal"] = link_tracks(tracks, layers["hcal"], cfg.hcal_radius, cfg.hcal_z, cfg)
    cands, info = particle_flow(tracks, clusters["ecal"], clusters["hcal"], clusters["hf"], table,
                                np.random.default_rng([seed, 21]), cfg)
    # vertices and association of tracks
    good = trk_all["tracked"] & (trk_all["pt_trk"] > 0.5)
    v_reco = reconstruct_vertices(p["event"], p["vertex"], good, n_vert, np.random.default_rng([seed, 22]), cfg)
    npv = np.add.reduceat(v_reco.astype(np.int64), off[:-1]) if len(v_reco) else np.ones(n_events, np.int64)
    t = {k: v[rows] for k, v in trk_all.items()}
    assoc, quality = associate_tracks(tracks["event"], p["vertex"][rows], t["dz"], t["dzErr"],
                                      np.abs(t["d0"]) / t["d0Err"], vz_flat, v_reco, n_vert, cfg, t["fit_ok"],
                                      d0=t["d0"], eta=tracks["eta"])
    cands = _candidate_columns(cands, t, assoc, quality, p, rows, npv, cfg)
    return {"cands": cands, "tracks": tracks, "clusters": clusters, "npv": npv, "linked_raw": info["linked_raw"]}


def _candidate_columns(c: dict, t: dict, assoc, quality, p, rows, npv, cfg) -> dict:
    """PFNano columns of the candidates (neutral conventions of real PFNano: -1 track values,
    pvAssocQuality 7, lostInnerHits -1), sorted by event; ``npv``: reconstructed vertices per event."""
    trk = c["track"] >= 0
    ti = np.maximum(c["track"], 0)
    pt = c["energy"] / np.cosh(c["eta"])
    pt = np.where(trk, np.sqrt(np.maximum(c["energy"] ** 2 - c["mass"] ** 2, 0.0)) / np.cosh(c["eta"]), pt)

    def tv(name, neutral):
        return np.where(trk, t[name][ti], neutral) if len(ti) and len(t[name]) else np.full(len(ti), neutral, float)

    det = tv("details", False).astype(bool) & trk
    av = np.where(trk, assoc[ti] if len(assoc) else -1, -1)
    out = {
        "event": c["event"], "pt": pt, "eta": c["eta"], "phi": c["phi"], "mass": c["mass"], "pdgId": c["pdgId"],
        "charge": c["charge"], "energy": c["energy"], "true_energy": c["true_energy"],
        "d0": tv("d0", -1.0), "dz": tv("dz", -1.0),
        "d0Err": np.where(det, tv("d0Err", -1.0), -1.0), "dzErr": np.where(det, tv("dzErr", -1.0), -1.0),
        "trkChi2": np.where(det, tv("trkChi2", -1.0), -1.0), "vtxChi2": np.where(det, 0.0, -1.0),
        "trkQuality": np.where(det, 5, 0).astype(np.int32),
        "lostInnerHits": np.where(trk, tv("lostInnerHits", -1), -1).astype(np.int32),
        "pvAssocQuality": np.where(trk, quality[ti] if len(quality) else 7, 7).astype(np.int32),
        "assoc_vertex": av.astype(np.int64),
    }
    part = np.where(trk, rows[ti] if len(rows) else -1, -1)
    out["tracked"] = trk
    out["from_hard"] = np.where(trk, p["vertex"][np.maximum(part, 0)] == 0, False)
    for k, default in (("hf_idx", -1), ("vx", 0.0), ("vy", 0.0), ("z0", 0.0)):
        src = p.get(k, np.full(len(p["pt"]), default))
        out[k] = np.where(trk, src[np.maximum(part, 0)], default)
    pv = charged_from_pv(trk, av, out["pvAssocQuality"], out["dz"], cfg.puppi_charged_dz)
    ptmin = (cfg.puppi_ptmin + cfg.puppi_ptmin_slope * npv)[c["event"]]
    out["puppiWeight"] = puppi_weights(c["event"], pt, c["eta"], c["phi"], c["charge"], pv, len(npv),
                                       cfg.puppi_r, cfg.puppi_rmin, ptmin)
    out["puppiWeightNoLep"] = out["puppiWeight"].copy()
    order = np.argsort(c["event"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def charged_from_pv(tracked: np.ndarray, assoc_vertex: np.ndarray, quality: np.ndarray, dz: np.ndarray,
                    dz_cut: float) -> np.ndarray:
    """Charged candidates PUPPI counts as from the PV (the MiniAOD ``fromPV`` logic): used in the PV
    fit; not used in any fit (pvAssocQuality < 6) and within ``dz_cut`` (cm) of the PV. Used in a
    pileup vertex fit never counts."""
    in_fit = quality >= 6
    return tracked & np.where(in_fit, assoc_vertex == 0, np.abs(dz) < dz_cut)


__all__ = ["charged_from_pv", "reconstruct", "kinematics", "calorimeter", "MASSES"]
