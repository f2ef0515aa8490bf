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

``samples.pf_calibration_derive.derive_hadron_calibration(n, seed)`` shoots the particles
through this detector and returns the table; ``calibrate(table, kind, e_raw, abs_eta)`` applies it.
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


def write_table(table: dict, path: str | Path = TABLE_PATH) -> Path:
    """Write the table as JSON; returns the path."""
    p = Path(path)
    p.write_text(json.dumps(table, indent=1) + "\n")
    _load.cache_clear()
    return p
