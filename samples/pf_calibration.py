"""PF calibration of calorimeter energies, derived by the project from single particles.

The table (``samples/pf_hadron_calibration.json``) holds, per kind, a correction factor
E_true / E_raw and the relative resolution of the calibrated energy in bins of raw energy
(GeV, log-spaced) and |eta|:

- ``neutral``: HCAL clusters of single neutral hadrons (K0L, n, nbar) with no track; the EM
  part read in ECAL becomes a photon with the ECAL calibration, so the factor is
  (E_true - E_photons) / E_HCAL,
- ``charged``: ECAL + HCAL clusters linked to single charged hadrons, against E_true,
- ``hf``: HF hadronic clusters of single hadrons at 3 < |eta| < 5,
- ``em``: ECAL (and HF EM) clusters of single photons.

``derive_hadron_calibration(n, seed)`` shoots the particles through this detector and
returns the table; ``calibrate(table, kind, e_raw, abs_eta)`` applies it.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

TABLE_PATH = Path(__file__).with_name("pf_hadron_calibration.json")
E_EDGES = tuple(float(x) for x in np.geomspace(0.5, 3000.0, 19))
ETA_EDGES = {"neutral": (0.0, 0.8, 1.479, 2.0, 2.5, 3.0), "charged": (0.0, 0.8, 1.479, 2.0, 2.5),
             "hf": (3.0, 3.5, 4.0, 5.0), "em": (0.0, 1.479, 2.5, 3.0, 4.0, 5.0)}


def identity_table() -> dict:
    """A table with factor 1 and 10% resolution everywhere (for deriving the real one)."""
    ne = len(E_EDGES) - 1
    return {k: {"e_edges": list(E_EDGES), "eta_edges": list(v), "factor": [[1.0] * ne for _ in v[:-1]],
                "resolution": [[0.1] * ne for _ in v[:-1]]} for k, v in ETA_EDGES.items()}


@lru_cache(maxsize=4)
def _load(path: str) -> str:
    return Path(path).read_text()


def load_table(path: str | Path = TABLE_PATH) -> dict:
    """The stored calibration table (identity if the file is missing)."""
    p = Path(path)
    if not p.exists():
        return identity_table()
    return json.loads(_load(str(p)))


def _lookup(tab: dict, key: str, e_raw: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    e_edges = np.asarray(tab["e_edges"])
    centres = np.log(np.sqrt(e_edges[:-1] * e_edges[1:]))
    eta_edges = np.asarray(tab["eta_edges"])
    ie = np.clip(np.searchsorted(eta_edges, abs_eta, side="right") - 1, 0, len(eta_edges) - 2)
    vals = np.asarray(tab[key], dtype=float)
    out = np.empty(len(e_raw))
    x = np.log(np.maximum(e_raw, 1e-3))
    for k in range(len(eta_edges) - 1):
        m = ie == k
        if m.any():
            out[m] = np.interp(x[m], centres, vals[k])
    return out


def calibrate(table: dict, kind: str, e_raw: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    """Calibrated energy (GeV) of raw calorimeter energies of ``kind`` at |eta| ``abs_eta``."""
    e_raw = np.asarray(e_raw, dtype=float)
    return e_raw * _lookup(table[kind], "factor", e_raw, np.asarray(abs_eta, dtype=float))


def resolution(table: dict, kind: str, e_raw: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    """Relative resolution of the calibrated energy."""
    return _lookup(table[kind], "resolution", np.asarray(e_raw, float), np.asarray(abs_eta, float))


def fit_table(e_raw: np.ndarray, target: np.ndarray, abs_eta: np.ndarray, eta_edges, min_count: int = 20) -> dict:
    """Factor sum(target) / sum(raw) and relative rms of the calibrated energy per (|eta|, raw E) bin;
    empty bins take the nearest filled bin of the same |eta| row."""
    e_edges = np.asarray(E_EDGES)
    ne, nh = len(e_edges) - 1, len(eta_edges) - 1
    fac, res = np.full((nh, ne), np.nan), np.full((nh, ne), np.nan)
    ib = np.searchsorted(e_edges, e_raw, side="right") - 1
    ih = np.searchsorted(np.asarray(eta_edges), abs_eta, side="right") - 1
    for h in range(nh):
        for b in range(ne):
            m = (ib == b) & (ih == h) & (target > 0)
            if m.sum() < min_count:
                continue
            f = target[m].sum() / e_raw[m].sum()
            r = e_raw[m] * f / target[m]
            lo, hi = np.percentile(r, [16, 84])
            fac[h, b], res[h, b] = f, max(0.5 * (hi - lo), 0.01)
    for arr, default in ((fac, 1.0), (res, 0.2)):
        for h in range(nh):
            good = np.nonzero(np.isfinite(arr[h]))[0]
            if len(good) == 0:
                arr[h] = default
                continue
            bad = np.nonzero(~np.isfinite(arr[h]))[0]
            arr[h, bad] = arr[h, good[np.argmin(np.abs(bad[:, None] - good[None, :]), axis=1)]]
    return {"e_edges": list(E_EDGES), "eta_edges": list(eta_edges), "factor": np.round(fac, 4).tolist(),
            "resolution": np.round(res, 4).tolist()}


def particle_gun(species: tuple[int, ...], n: int, e_range: tuple[float, float], eta_range: tuple[float, float],
                 rng: np.random.Generator) -> dict:
    """``n`` single particles, one per event, log-uniform energy, uniform |eta| and phi."""
    from samples.reconstruction import MASSES

    k = rng.integers(0, len(species), n)
    pid = np.asarray(species)[k]
    m = np.array([MASSES.get(abs(int(x)), 0.0) for x in species])[k]
    e = np.exp(rng.uniform(np.log(e_range[0]), np.log(e_range[1]), n))
    e = np.maximum(e, m + 0.05)
    p = np.sqrt(e ** 2 - m ** 2)
    eta = rng.uniform(*eta_range, n) * rng.choice([-1.0, 1.0], n)
    pt = p / np.cosh(eta)
    phi = rng.uniform(-np.pi, np.pi, n)
    charge = np.where(np.isin(np.abs(pid), (211, 321, 2212, 11, 13)), np.sign(pid), 0).astype(np.int32)
    charge = np.where(np.isin(np.abs(pid), (11, 13)), -np.sign(pid), charge).astype(np.int32)
    z = np.zeros(n)
    return {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "e": e, "pdgId": pid.astype(np.int32),
            "charge": charge, "vx": z, "vy": z, "vz": z, "event": np.arange(n), "vertex": np.zeros(n, dtype=np.int64)}


def gun_sums(parts: dict, seed: int, table: dict | None = None) -> dict:
    """Per event (single particle) raw cluster sums and PF candidate sums of the reconstruction."""
    from samples.reconstruction import reconstruct

    n = len(parts["e"])
    rec = reconstruct(parts, n, np.zeros(n), seed, table or identity_table())
    cl = rec["clusters"]
    out = {k: np.bincount(cl[k]["event"], cl[k]["energy"], n) for k in ("ecal", "hcal", "hf")}
    out["hf_em"] = np.bincount(cl["hf"]["event"], cl["hf"]["em"], n)
    c = rec["cands"]
    for name, codes in (("photon", (22,)), ("neutral", (130,)), ("charged", (211, 11, 13)), ("hf_had", (1,)),
                        ("hf_em_cand", (2,))):
        m = np.isin(np.abs(c["pdgId"]), codes)
        out[name] = np.bincount(c["event"][m], c["energy"][m], n)
    out["linked_raw"] = np.bincount(rec["tracks"]["event"], rec["linked_raw"], n)
    out["tracked"] = np.bincount(rec["tracks"]["event"], minlength=n) > 0
    return out


def derive_hadron_calibration(n_particles: int = 40000, seed: int = 7) -> dict:
    """Derive the PF calibration table from single particles shot through this detector."""
    from samples.particle_flow import HF_EM_FRACTION

    rng = np.random.default_rng(seed)
    table = identity_table()
    # EM: single photons
    g = particle_gun((22,), n_particles // 2, (0.5, 2000.0), (0.0, 5.0), rng)
    s = gun_sums(g, seed + 1, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    raw = np.where(aeta < 3.0, s["ecal"], s["hf"])
    table["em"] = fit_table(raw, e, aeta, ETA_EDGES["em"])
    # neutral hadrons: HCAL clusters, the ECAL part becoming photons with the EM calibration
    g = particle_gun((130, 2112, -2112), n_particles, (1.0, 2000.0), (0.0, 3.0), rng)
    s = gun_sums(g, seed + 2, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    e_vis = np.where(g["pdgId"] == 2112, e - 0.9396, np.where(g["pdgId"] == -2112, e + 0.9396, e))
    photons = calibrate(table, "em", s["ecal"], aeta)
    table["neutral"] = fit_table(s["hcal"], np.maximum(e_vis - photons, 0.0), aeta, ETA_EDGES["neutral"])
    # charged hadrons: linked ECAL + HCAL against the true energy
    g = particle_gun((211, -211, 321, -321), n_particles, (1.0, 2000.0), (0.0, 2.5), rng)
    s = gun_sums(g, seed + 3, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    ok = s["tracked"]
    table["charged"] = fit_table(s["linked_raw"][ok], e[ok], aeta[ok], ETA_EDGES["charged"])
    # HF hadrons
    g = particle_gun((211, -211, 130, 2112, 321), n_particles // 2, (5.0, 3000.0), (3.0, 5.0), rng)
    s = gun_sums(g, seed + 4, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    had = (s["hf"] > 0) & (s["hf_em"] < HF_EM_FRACTION * s["hf"])
    table["hf"] = fit_table(s["hf"][had], e[had], aeta[had], ETA_EDGES["hf"])
    table["derived_with"] = {"n_particles": int(n_particles), "seed": int(seed)}
    return table


def write_table(table: dict, path: str | Path = TABLE_PATH) -> Path:
    """Write the table as JSON; returns the path."""
    p = Path(path)
    p.write_text(json.dumps(table, indent=1) + "\n")
    _load.cache_clear()
    return p


if __name__ == "__main__":  # python -m samples.pf_calibration: re-derive the stored table
    print(write_table(derive_hadron_calibration()))
