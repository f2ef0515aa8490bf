"""Training shards on disk: one parquet file per chunk plus ``manifest.json``.

Shard records (one per jet): target = log(pt_gen/pt_raw), pt_raw, pt_gen, eta, eta_gen, phi,
flavour, weight_flat, weight_natural, split (0 train, 1 validation, 2 test), event, run,
luminosityBlock, globals, charged, neutral, sv. ``finalize`` turns the accumulated sums of
the chunks into the manifest's normalisation and fills the flat-spectrum weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import awkward as ak
import numpy as np

from core.errors import BadInputError
from physics.features import COLLECTIONS, FEATURE_NAMES

MANIFEST = "manifest.json"
SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
#: binning of the flat-spectrum weights: pt_gen (GeV, geometric) x |eta_gen|
FLAT_PT_EDGES = tuple(np.geomspace(10.0, 5000.0, 31))
FLAT_ABS_ETA_EDGES = tuple(np.linspace(0.0, 5.0, 11))
#: a feature whose training standard deviation is below this (in its own units) did not vary in
#: training: the model does not use it (``models.layers.Standardize`` gives it 0)
STD_FLOOR = 1.0e-3
#: quantiles stored per feature with the training range (fractions)
RANGE_QUANTILES = (0.001, 0.999)
#: rows per chunk and collection kept (evenly spaced, weighted by n/k) to estimate the quantiles
RANGE_SAMPLE_ROWS = 2000


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def event_hash_uniform(run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per event from a hash of (run, luminosityBlock, event); same on every machine."""
    h = _splitmix64(_splitmix64(_splitmix64(np.asarray(run).astype(np.uint64)) ^ np.asarray(lumi).astype(np.uint64))
                    ^ np.asarray(event).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def event_split(run: np.ndarray, lumi: np.ndarray, event: np.ndarray,
                fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> np.ndarray:
    """Split code per event (int8: 0 train, 1 validation, 2 test) cut on ``event_hash_uniform``."""
    u = event_hash_uniform(run, lumi, event)
    cuts = np.cumsum(np.asarray(fractions, dtype=np.float64) / np.sum(fractions))[:-1]
    return np.searchsorted(cuts, u, side="right").astype(np.int8)


def _bin_index(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bin of each value, under/overflow put into the first/last bin."""
    return np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)


def flat_histogram(pt_gen: np.ndarray, abs_eta_gen: np.ndarray) -> np.ndarray:
    """Jet counts in (pt_gen, |eta_gen|) bins of FLAT_PT_EDGES x FLAT_ABS_ETA_EDGES (edge bins absorb overflow)."""
    h = np.zeros((len(FLAT_PT_EDGES) - 1, len(FLAT_ABS_ETA_EDGES) - 1), dtype=np.int64)
    np.add.at(h, (_bin_index(pt_gen, FLAT_PT_EDGES), _bin_index(abs_eta_gen, FLAT_ABS_ETA_EDGES)), 1)
    return h


def flat_weight_table(counts: np.ndarray, min_count: float = 10.0) -> np.ndarray:
    """Per-bin weights for a spectrum flat in (log pt_gen, |eta_gen|).

    ``w = 1 / max(count, min_count)`` (the clip keeps sparse bins from dominating), scaled so
    that the mean weight over all jets is 1. Bins are equal in log pT and |eta|, so 1/count is
    the inverse density in those variables.
    """
    counts = np.asarray(counts, dtype=np.float64)
    w = 1.0 / np.maximum(counts, min_count)
    total = np.sum(counts * w)
    return w * (np.sum(counts) / total) if total > 0 else np.ones_like(w)


def flat_weights(pt_gen: np.ndarray, abs_eta_gen: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Flat-spectrum weight (float32) of each jet from ``flat_weight_table``."""
    return np.asarray(table)[_bin_index(pt_gen, FLAT_PT_EDGES), _bin_index(abs_eta_gen, FLAT_ABS_ETA_EDGES)] \
        .astype(np.float32)


def norm_from_sums(s: np.ndarray, s2: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """(mean, std) from a sum, a sum of squares and a count; std >= 1e-6 (1 where n = 0)."""
    if n <= 0:
        return [0.0] * len(s), [1.0] * len(s)
    mean = np.asarray(s) / n
    var = np.maximum(np.asarray(s2) / n - mean**2, 0.0)
    return mean.tolist(), np.maximum(np.sqrt(var), 1e-6).tolist()


def range_summary(flat: np.ndarray) -> dict:
    """Per-column min, max and ``RANGE_QUANTILES`` of a (n, F) matrix as the chunk accumulator holds them.

    min/max are exact (lists of arrays, reduced in ``finalize``); the quantiles come from at most
    ``RANGE_SAMPLE_ROWS`` evenly spaced rows, each weighted by n/k so that chunks count by size.
    """
    n = len(flat)
    if n == 0:
        return {"min": [], "max": [], "sample": [], "sample_weight": []}
    rows = np.unique(np.linspace(0, n - 1, min(n, RANGE_SAMPLE_ROWS)).astype(np.int64))
    return {"min": [flat.min(axis=0)], "max": [flat.max(axis=0)], "sample": [flat[rows].astype(np.float32)],
            "sample_weight": [np.full(len(rows), n / len(rows), dtype=np.float64)]}


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """(len(qs), F) weighted quantiles of the columns of ``values`` (n, F): the first value whose cumulative weight reaches q."""
    order = np.argsort(values, axis=0, kind="stable")
    out = np.empty((len(qs), values.shape[1]))
    for j in range(values.shape[1]):
        v, w = values[order[:, j], j], weights[order[:, j]]
        cum = np.cumsum(w) / np.sum(w)
        out[:, j] = v[np.minimum(np.searchsorted(cum, qs, side="left"), len(v) - 1)]
    return out


def ranges_from_stats(st: dict, names: list[str], std: list[float]) -> dict:
    """The manifest's training range of one block: per feature min, max, quantiles, and which are constant.

    ``constant`` lists the features whose std is below ``STD_FLOOR`` (not model inputs).
    """
    nf = len(names)
    if not st.get("min"):
        empty = [None] * nf
        return {"min": empty, "max": empty, "quantiles": list(RANGE_QUANTILES), "q_low": empty, "q_high": empty,
                "constant": list(names)}
    lo = np.min(np.stack(st["min"]), axis=0)
    hi = np.max(np.stack(st["max"]), axis=0)
    q = weighted_quantiles(np.concatenate(st["sample"]).astype(np.float64), np.concatenate(st["sample_weight"]),
                           RANGE_QUANTILES)
    return {"min": lo.tolist(), "max": hi.tolist(), "quantiles": list(RANGE_QUANTILES),
            "q_low": q[0].tolist(), "q_high": q[-1].tolist(),
            "constant": [n for n, s in zip(names, std) if s < STD_FLOOR]}


def shard_name(dataset: str, filename: str, entrystart: int, entrystop: int) -> str:
    """Deterministic shard file name from the dataset, the input file and the chunk's entry range."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(filename)).name.removesuffix(".root"))
    digest = hashlib.sha1(str(filename).encode()).hexdigest()[:8]
    return f"{safe}__{stem}-{digest}__{int(entrystart)}-{int(entrystop)}.parquet"


def write_shard(path: Path, columns: dict[str, np.ndarray], feats: dict[str, ak.Array], out: dict) -> None:
    """Write one shard (``columns`` per jet + feature blocks) and add its counts and sums to ``out``.

    ``columns`` holds pt_raw, pt_gen, eta, eta_gen, phi, flavour, weight_natural, split, event, run,
    luminosityBlock; ``target`` is computed here and ``weight_flat`` is 1 until ``finalize``.
    """
    pt_raw = np.asarray(columns["pt_raw"], dtype=np.float32)
    pt_gen = np.asarray(columns["pt_gen"], dtype=np.float32)
    split = np.asarray(columns["split"], dtype=np.int8)
    fields = {
        "target": np.log(pt_gen.astype(np.float64) / pt_raw).astype(np.float32),
        "pt_raw": pt_raw, "pt_gen": pt_gen,
        "eta": np.asarray(columns["eta"], dtype=np.float32),
        "eta_gen": np.asarray(columns["eta_gen"], dtype=np.float32),
        "phi": np.asarray(columns["phi"], dtype=np.float32),
        "flavour": np.asarray(columns["flavour"], dtype=np.int32),
        "weight_flat": np.ones(len(pt_raw), dtype=np.float32),  # filled by finalize()
        "weight_natural": np.asarray(columns["weight_natural"], dtype=np.float32),
        "split": split,
        **{k: np.asarray(columns[k], dtype=np.int64) for k in ("event", "run", "luminosityBlock")},
        **{k: feats[k] for k in ("globals",) + COLLECTIONS},
    }
    record = ak.zip(fields, depth_limit=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    ak.to_parquet(record, tmp)
    os.replace(tmp, path)

    out["shards"] = [path.name]
    for code, split_name in enumerate(SPLIT_NAMES):
        out["n_jets"][split_name] = int(np.sum(split == code))
    train = split == 0
    for coll in ("globals",) + COLLECTIONS:
        values = feats[coll][train]
        flat = ak.to_numpy(values if coll == "globals" else ak.flatten(values, axis=1)).astype(np.float64)
        flat = flat.reshape(-1, len(FEATURE_NAMES[coll]))
        out["stats"][coll] = {"sum": flat.sum(axis=0), "sumsq": (flat**2).sum(axis=0), "count": len(flat),
                              **range_summary(flat)}
    target = fields["target"][train].astype(np.float64)[:, None]
    out["stats"]["target"] = range_summary(target[np.isfinite(target[:, 0])])
    for coll in COLLECTIONS:
        out["max_constituents"][coll] = {int(ak.max(ak.num(feats[coll], axis=1), initial=0))}
    out["flat_hist"] = flat_histogram(pt_gen, np.abs(np.asarray(columns["eta_gen"])))


def empty_output(dataset: str) -> dict:
    """The accumulator of a chunk without jets."""
    return {
        "shards": [],
        "n_jets": {name: 0 for name in SPLIT_NAMES},
        "stats": {**{c: {"sum": np.zeros(len(FEATURE_NAMES[c])), "sumsq": np.zeros(len(FEATURE_NAMES[c])),
                         "count": 0, **range_summary(np.zeros((0, 1)))} for c in ("globals",) + COLLECTIONS},
                  "target": range_summary(np.zeros((0, 1)))},
        "max_constituents": {c: {0} for c in COLLECTIONS},
        "flat_hist": flat_histogram(np.zeros(0), np.zeros(0)),
        "cutflow": {dataset: {"events": 0, "jets": 0, "jets_selected": 0}},
    }


def finalize(out_dir: Path, output: dict, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
             min_count: float = 10.0, extra: dict | None = None) -> dict:
    """Fill ``weight_flat`` in every shard and write ``manifest.json``; returns the manifest."""
    out_dir = Path(out_dir)
    shards = sorted(output["shards"])
    table = flat_weight_table(output["flat_hist"], min_count=min_count)
    for name in shards:
        path = out_dir / name
        arr = ak.from_parquet(path)
        w = flat_weights(ak.to_numpy(arr.pt_gen), np.abs(ak.to_numpy(arr.eta_gen)), table)
        arr = ak.with_field(arr, w, "weight_flat")
        tmp = path.with_suffix(".parquet.tmp")
        ak.to_parquet(arr, tmp)
        os.replace(tmp, path)

    norm, ranges = {}, {}
    for coll in ("globals",) + COLLECTIONS:
        st = output["stats"][coll]
        mean, std = norm_from_sums(st["sum"], st["sumsq"], int(st["count"]))
        norm[coll] = {"mean": mean, "std": std}
        ranges[coll] = ranges_from_stats(st, FEATURE_NAMES[coll], std)
    target_range = ranges_from_stats(output["stats"].get("target", {}), ["target"], [1.0])
    manifest = {
        "version": 1,
        "features": {c: list(FEATURE_NAMES[c]) for c in ("globals",) + COLLECTIONS},
        "norm": norm,
        "ranges": ranges,
        "target_range": {k: (v[0] if isinstance(v, list) and k != "quantiles" else v)
                         for k, v in target_range.items() if k != "constant"},
        "shards": shards,
        "n_jets": {k: int(v) for k, v in output["n_jets"].items()},
        "split": {"method": "splitmix64 hash of (run, luminosityBlock, event) -> u in [0,1), "
                            "cut at the cumulative fractions (all jets of an event share a split)",
                  "fractions": list(fractions)},
        "target": "log(pt_gen/pt_raw)",
        "max_constituents": {c: int(max(output["max_constituents"][c])) for c in COLLECTIONS},
        "weights": {
            "weight_natural": "genWeight (1 where absent)",
            "weight_flat": f"1/max(count, {min_count:g}) in (pt_gen, |eta_gen|) bins, mean 1 over all jets",
            "flat_pt_gen_edges": [float(x) for x in FLAT_PT_EDGES],
            "flat_abs_eta_gen_edges": [float(x) for x in FLAT_ABS_ETA_EDGES],
            "flat_table": np.asarray(table).tolist(),
        },
        "cutflow": output.get("cutflow", {}),
    }
    if extra:
        manifest.update(extra)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(out_dir: str | Path) -> dict:
    """The manifest of a shard directory; BadInputError naming the path when it is missing or broken."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise BadInputError(f"{path}: no manifest (run `runner.py collect` first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BadInputError(f"{path}: not valid JSON ({err})") from None


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    manifest = out_dir / MANIFEST
    if manifest.exists():
        if not overwrite:
            raise BadInputError(f"{out_dir}: already holds a collection ({MANIFEST}); use --overwrite or another --out")
        for name in read_manifest(out_dir).get("shards", []):
            (out_dir / name).unlink(missing_ok=True)
        manifest.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
