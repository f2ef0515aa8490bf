"""Calorimeter cells and clustering, generic: deposits in, clusters out (GeV, eta/phi in rad).

A ``CaloGrid`` is a layer of cells uniform in phi with arbitrary eta edges (ECAL barrel,
ECAL endcaps, HCAL, HF). ``deposit_cells`` sums weighted deposits (column 0: energy seen
by the cell; further columns are carried along, e.g. true energy) into cells, sharing a
part with the nearest eta and phi neighbours (lateral shower spread).
``measure_cells`` adds the fixed per-cell miscalibration and Gaussian noise and applies
the cell threshold. ``cluster_cells`` groups cells into clusters the topological way:
every cell points to its most energetic neighbour (3x3, or the 4 edge neighbours where the grid
says so, as CMS seeds HCAL clusters; itself if a local maximum), the
pointers are followed to a local maximum, and local maxima above the seed threshold seed
one cluster each; so nearby particles with no energy dip between them merge into one
cluster. Everything works on whole chunks of events at once: a cell key is
``(event * n_eta + i_eta) * n_phi + i_phi``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class CaloGrid:
    """One calorimeter layer: cells uniform in phi, ``eta_edges`` increasing (a bin wider than
    ``max_cell_deta`` is a hole, e.g. the barrel gap of the endcap grid). Energies in GeV."""

    name: str
    eta_edges: tuple
    nphi: int
    noise: float             # Gaussian noise per cell (GeV)
    threshold: float         # cells below are dropped (GeV)
    seed_threshold: float    # local maxima below do not seed a cluster (GeV)
    miscalibration: float    # relative spread of the fixed per-cell calibration
    miscal_seed: int         # seed of the fixed per-cell calibration map
    share: float = 0.15      # fraction given to a neighbour by a deposit on the cell edge
    spread: float = 0.25     # lateral scale of the sharing (cell units)
    max_cell_deta: float = 0.5
    seed_neighbours: int = 8  # a seed is a local maximum over 8 (3x3) or 4 (edge) neighbours; CMS: ECAL 8, HCAL 4
    seed_threshold_pt: float = 0.0  # local maxima below this transverse energy (GeV) do not seed either (CMS EE: 0.15)

    @property
    def neta(self) -> int:
        return len(self.eta_edges) - 1

    @property
    def ncells(self) -> int:
        return self.neta * self.nphi


def eta_edges(*regions: tuple[float, float, int]) -> tuple:
    """Edges of consecutive eta regions ``(lo, hi, n_bins)`` (gaps between regions become one hole bin)."""
    out: list[float] = []
    for lo, hi, n in regions:
        e = np.linspace(lo, hi, n + 1)
        if out and abs(out[-1] - lo) < 1e-9:
            e = e[1:]
        out.extend(float(x) for x in e)
    return tuple(out)


@lru_cache(maxsize=16)
def calibration_map(grid: CaloGrid) -> np.ndarray:
    """Fixed relative calibration of every cell (mean 1, spread ``grid.miscalibration``)."""
    rng = np.random.default_rng(grid.miscal_seed)
    return np.clip(1.0 + grid.miscalibration * rng.standard_normal(grid.ncells), 0.5, 1.5)


def cell_index(grid: CaloGrid, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i_eta, i_phi, inside) of the cell containing each (eta, phi)."""
    edges = np.asarray(grid.eta_edges)
    ie = np.searchsorted(edges, eta, side="right") - 1
    inside = (ie >= 0) & (ie < grid.neta)
    ie = np.clip(ie, 0, grid.neta - 1)
    inside &= (edges[ie + 1] - edges[ie]) < grid.max_cell_deta
    ip = np.floor((np.asarray(phi) + np.pi) / TWO_PI * grid.nphi).astype(np.int64) % grid.nphi
    return ie.astype(np.int64), ip, inside


def cell_centre(grid: CaloGrid, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event, eta, phi) of the centres of the cells ``keys``."""
    edges = np.asarray(grid.eta_edges)
    ip = keys % grid.nphi
    rest = keys // grid.nphi
    ie = rest % grid.neta
    return rest // grid.neta, 0.5 * (edges[ie] + edges[ie + 1]), -np.pi + (ip + 0.5) * TWO_PI / grid.nphi


def _key(grid: CaloGrid, event, ie, ip):
    return (np.asarray(event, dtype=np.int64) * grid.neta + ie) * grid.nphi + ip % grid.nphi


def deposit_cells(grid: CaloGrid, event: np.ndarray, eta: np.ndarray, phi: np.ndarray,
                  weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum deposits into cells: returns (sorted unique cell keys, summed weights (n_cells, k)).

    ``weights`` (n, k): column 0 is the energy seen (GeV), the others ride along. A deposit
    gives ``share * exp(-d / spread)`` to the nearest eta and phi neighbour, d being its
    distance to that cell edge in cell units. Deposits outside the grid are ignored.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w.reshape(len(eta), w.shape[-1] if w.ndim == 2 else 1)
    ie, ip, inside = cell_index(grid, eta, phi)
    ev, ie, ip, w = np.asarray(event)[inside], ie[inside], ip[inside], w[inside]
    eta, phi = np.asarray(eta)[inside], np.asarray(phi)[inside]
    edges = np.asarray(grid.eta_edges)
    ue = (eta - edges[ie]) / (edges[ie + 1] - edges[ie])
    up = (phi + np.pi) / TWO_PI * grid.nphi - np.floor((phi + np.pi) / TWO_PI * grid.nphi)
    se = grid.share * np.exp(-np.minimum(ue, 1 - ue) / grid.spread)
    sp = grid.share * np.exp(-np.minimum(up, 1 - up) / grid.spread)
    ne = ie + np.where(ue < 0.5, -1, 1)
    ok_e = (ne >= 0) & (ne < grid.neta)
    ok_e[ok_e] &= (edges[ne[ok_e] + 1] - edges[ne[ok_e]]) < grid.max_cell_deta
    se = np.where(ok_e, se, 0.0)
    npp = ip + np.where(up < 0.5, -1, 1)
    keys = np.concatenate([_key(grid, ev, ie, ip), _key(grid, ev, np.where(ok_e, ne, ie), ip),
                           _key(grid, ev, ie, npp)])
    frac = np.concatenate([1.0 - se - sp, se, sp])
    ww = np.concatenate([w, w, w]) * frac[:, None]
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.stack([np.bincount(inv, ww[:, j], len(uniq)) for j in range(ww.shape[1])], axis=1)
    return uniq, sums


def measure_cells(grid: CaloGrid, keys: np.ndarray, energy: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cell energies after the fixed calibration map and noise: (kept mask, measured GeV)."""
    cal = calibration_map(grid)[keys % grid.ncells]
    e = energy * cal + grid.noise * rng.standard_normal(len(keys))
    return e > grid.threshold, e


_OFFSETS = {8: [(de, dp) for de in (-1, 0, 1) for dp in (-1, 0, 1) if de or dp],
            4: [(-1, 0), (1, 0), (0, -1), (0, 1)]}


def neighbour_rows(grid: CaloGrid, keys: np.ndarray, de: int, dp: int) -> np.ndarray:
    """Row in the sorted ``keys`` of the (de, dp) neighbour of every cell, -1 where absent."""
    ip = keys % grid.nphi
    ie = (keys // grid.nphi) % grid.neta
    ev = keys // (grid.nphi * grid.neta)
    ne = ie + de
    ok = (ne >= 0) & (ne < grid.neta)
    nk = _key(grid, ev, np.clip(ne, 0, grid.neta - 1), ip + dp)
    row = np.searchsorted(keys, nk)
    row = np.minimum(row, len(keys) - 1)
    found = ok & (keys[row] == nk) if len(keys) else ok
    return np.where(found, row, -1)


def cluster_cells(grid: CaloGrid, keys: np.ndarray, energy: np.ndarray,
                  extra: np.ndarray | None = None) -> dict:
    """Clusters of the cells ``keys`` (sorted, unique, above threshold) with ``energy`` (GeV).

    Returns ``label`` (cluster of each cell, -1 if its local maximum is below the seed
    threshold) and per cluster ``event, eta, phi, energy, ncells`` (position energy-weighted
    over the cells, phi relative to the seed) and ``extra`` (sums of the extra columns).
    """
    n = len(keys)
    best = np.arange(n)
    best_e = energy.copy()
    for de, dp in _OFFSETS[grid.seed_neighbours]:
        row = neighbour_rows(grid, keys, de, dp)
        e_nb = np.where(row >= 0, energy[np.maximum(row, 0)], -np.inf)
        better = e_nb > best_e
        best = np.where(better, row, best)
        best_e = np.where(better, e_nb, best_e)
    parent = best
    for _ in range(64):
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    ev, eta_c, phi_c = cell_centre(grid, keys)
    is_seed = (parent == np.arange(n)) & (energy > grid.seed_threshold)
    if grid.seed_threshold_pt > 0:
        is_seed &= energy > grid.seed_threshold_pt * np.cosh(eta_c)
    seed_rows = np.nonzero(is_seed)[0]
    cid = np.full(n, -1)
    cid[seed_rows] = np.arange(len(seed_rows))
    label = cid[parent] if n else cid
    m = label >= 0
    nc = len(seed_rows)
    e_cl = np.bincount(label[m], energy[m], nc)
    seed_phi = phi_c[seed_rows]
    dphi = np.mod(phi_c[m] - seed_phi[label[m]] + np.pi, TWO_PI) - np.pi
    wsum = np.maximum(e_cl, 1e-12)
    out = {
        "label": label,
        "event": ev[seed_rows],
        "energy": e_cl,
        "eta": np.bincount(label[m], energy[m] * eta_c[m], nc) / wsum,
        "phi": np.mod(seed_phi + np.bincount(label[m], energy[m] * dphi, nc) / wsum + np.pi, TWO_PI) - np.pi,
        "ncells": np.bincount(label[m], minlength=nc),
    }
    if extra is not None:
        ex = np.asarray(extra)
        ex = ex.reshape(n, ex.shape[-1] if ex.ndim == 2 else 1)
        out["extra"] = np.stack([np.bincount(label[m], ex[m, j], nc) for j in range(ex.shape[1])], axis=1)
    return out


def calorimeter_clusters(grid: CaloGrid, event: np.ndarray, eta: np.ndarray, phi: np.ndarray,
                         weights: np.ndarray, rng: np.random.Generator) -> tuple[dict, dict]:
    """Deposits -> measured cells -> clusters. Returns (cells, clusters).

    ``cells``: ``keys`` (sorted), ``energy`` (measured GeV), ``extra`` (other weight columns),
    ``label`` (cluster per cell); ``clusters`` as in ``cluster_cells`` with ``extra`` the
    summed extra columns (e.g. true energy).
    """
    keys, sums = deposit_cells(grid, event, eta, phi, weights)
    kept, e = measure_cells(grid, keys, sums[:, 0], rng)
    keys, e, extra = keys[kept], e[kept], sums[kept, 1:]
    cl = cluster_cells(grid, keys, e, extra)
    cells = {"keys": keys, "energy": e, "extra": extra, "label": cl.pop("label")}
    return cells, cl


def cluster_at(grid: CaloGrid, cells: dict, event: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Cluster pointed at by each (event, eta, phi): that of the most energetic clustered cell
    in the 3x3 window around the impact cell, -1 if none."""
    ie, ip, inside = cell_index(grid, eta, phi)
    keys = cells["keys"]
    best = np.full(len(ie), -1)
    best_e = np.full(len(ie), -np.inf)
    if len(keys) == 0:
        return best
    for de in (0, -1, 1):
        for dp in (0, -1, 1):
            ne = ie + de
            ok = inside & (ne >= 0) & (ne < grid.neta)
            nk = _key(grid, event, np.clip(ne, 0, grid.neta - 1), ip + dp)
            row = np.minimum(np.searchsorted(keys, nk), len(keys) - 1)
            found = ok & (keys[row] == nk) & (cells["label"][row] >= 0)
            # the impact cell itself wins over its neighbours
            e = np.where(found, cells["energy"][row] + (1e9 if (de == 0 and dp == 0) else 0.0), -np.inf)
            better = e > best_e
            best = np.where(better, cells["label"][row], best)
            best_e = np.where(better, e, best_e)
    return best


__all__ = ["CaloGrid", "eta_edges", "calibration_map", "cell_index", "cell_centre", "deposit_cells",
           "measure_cells", "cluster_cells", "calorimeter_clusters", "cluster_at", "neighbour_rows"]
