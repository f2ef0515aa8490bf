"""A model's training domain at inference: out-of-domain jets and clipped log-corrections.

The model manifest (``NAME.manifest.json``) keeps, per feature, the training range (``ranges``:
min, max, 0.1%/99.9% quantiles) and the range of the trained targets (``target_range``).

- A jet is **out of domain** when any of its inputs the model uses (training std >= STD_FLOOR)
  lies beyond the training [min, max] by more than ``DOMAIN_MARGIN`` x (max - min); for a
  constituent block, any constituent of the jet. Models saved before ranges were stored fall back
  to [mean - FALLBACK_SIGMAS std, mean + FALLBACK_SIGMAS std] of their normalisation ([0, 1] for
  one-hot features).
- A predicted log-correction outside the training target [min, max] is **clipped** to it (fallback:
  +-``training.max_abs_target``).
"""
from __future__ import annotations

import awkward as ak
import numpy as np

from inputs.shards import STD_FLOOR

#: "far outside": beyond the training range by more than this fraction of its width
DOMAIN_MARGIN = 0.1
#: half-width (in training std) of the range assumed for manifests without stored ranges
FALLBACK_SIGMAS = 6.0
BLOCKS = ("globals", "charged", "neutral", "sv")
#: one-hot features (values 0 or 1): the fallback range is [0, 1], not mean +- sigmas
ONE_HOT_PREFIXES = ("is_", "pv_assoc_")


def feature_bounds(manifest: dict, coll: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per feature of a block beyond which a value is far outside the training range.

    Features the model does not use (std < STD_FLOOR) get (-inf, +inf).
    """
    norm = manifest["norm"][coll]
    mean, std = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
    rng = (manifest.get("ranges") or {}).get(coll)
    if rng and all(v is not None for v in rng["min"]):
        lo, hi = np.asarray(rng["min"], np.float64), np.asarray(rng["max"], np.float64)
        pad = DOMAIN_MARGIN * (hi - lo)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = mean - FALLBACK_SIGMAS * std, mean + FALLBACK_SIGMAS * std
        one_hot = np.array([n.startswith(ONE_HOT_PREFIXES) for n in manifest["features"][coll]], dtype=bool)
        lo, hi = np.where(one_hot, 0.0, lo), np.where(one_hot, 1.0, hi)
    unused = std < STD_FLOOR
    return np.where(unused, -np.inf, lo), np.where(unused, np.inf, hi)


def _float32_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 bounds with the same answer for float32 values: x < lo32 <=> x < lo, x > hi32 <=> x > hi
    (lo rounded up, hi rounded down to the nearest float32), so float32 features need no float64 copy."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    with np.errstate(over="ignore"):
        lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32.astype(np.float64) < lo, np.nextafter(lo32, np.float32(np.inf)), lo32)
    hi32 = np.where(hi32.astype(np.float64) > hi, np.nextafter(hi32, np.float32(-np.inf)), hi32)
    return lo32.astype(np.float32), hi32.astype(np.float32)


#: rows compared at a time (the comparison masks of a block stay in cache)
OUTSIDE_ROWS = 16384


def _rows_outside(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Bool per row of ``values`` (n, F): any value below ``lo`` or above ``hi`` (float32 compared exactly).

    The rows are found from the few values outside (``flatnonzero``), not by a reduction along each
    short row, which costs more than the comparisons; ``OUTSIDE_ROWS`` rows at a time."""
    if values.dtype == np.float32:
        lo, hi = _float32_bounds(lo, hi)
    else:
        values = np.asarray(values, np.float64)
    rows = np.zeros(len(values), dtype=bool)
    width = max(values.shape[1], 1)
    values = np.ascontiguousarray(values).reshape(-1)
    step = OUTSIDE_ROWS * width
    # bounds repeated along a block: flat 1-D comparisons (a (rows, F) broadcast runs F-long inner loops)
    lo_rows, hi_rows = np.tile(lo, OUTSIDE_ROWS), np.tile(hi, OUTSIDE_ROWS)
    for first in range(0, len(values), step):
        block = values[first:first + step]
        outside = block < lo_rows[:len(block)]
        outside |= block > hi_rows[:len(block)]
        rows[(first + np.flatnonzero(outside)) // width] = True
    return rows


def out_of_domain(features: dict[str, ak.Array], manifest: dict) -> np.ndarray:
    """Bool per jet: any used input far outside the training range (module docstring)."""
    glob = np.asarray(ak.to_numpy(features["globals"]))
    bad = _rows_outside(glob, *feature_bounds(manifest, "globals"))
    for coll in BLOCKS[1:]:
        values = features[coll]
        counts = ak.to_numpy(ak.num(values, axis=1)).astype(np.int64)
        lo, hi = feature_bounds(manifest, coll)
        flat = np.asarray(ak.to_numpy(ak.flatten(values, axis=None))).reshape(int(counts.sum()), len(lo))
        row_bad = np.flatnonzero(_rows_outside(flat, lo, hi))
        bad[np.searchsorted(np.cumsum(counts), row_bad, side="right")] = True  # the jets of the rows outside
    return bad


def target_bounds(manifest: dict) -> tuple[float, float]:
    """(low, high) of the log-corrections seen in training; (-inf, inf) when the manifest says nothing."""
    tr = manifest.get("target_range")
    if tr and tr.get("min") is not None:
        return float(tr["min"]), float(tr["max"])
    cut = (manifest.get("training") or {}).get("max_abs_target")
    return (-float(cut), float(cut)) if cut else (-np.inf, np.inf)


def bounded_log_correction(y_hat: np.ndarray, manifest: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y clipped to ``target_bounds``, clipped mask, non-finite mask); non-finite entries stay NaN."""
    y = np.asarray(y_hat, np.float64).reshape(-1)
    nonfinite = ~np.isfinite(y)
    lo, hi = target_bounds(manifest)
    clipped = ~nonfinite & ((y < lo) | (y > hi))
    return np.where(nonfinite, np.nan, np.clip(y, lo, hi)), clipped, nonfinite
