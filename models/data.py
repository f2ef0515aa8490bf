"""Jet batches for the models: padding with a real mask, shard reading, the tf.data pipeline.

A collection is held flat: ``content`` (total constituents, F) float32 and ``offsets``
(n_jets + 1); a batch is padded to its longest jet, capped at ``max_len`` (when a jet is
longer, its highest-pT constituents are kept). Padded entries are 0 with mask 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import awkward as ak
import numpy as np

from core.errors import BadInputError
from inputs.shards import MANIFEST, read_manifest
from physics.features import COLLECTIONS
BLOCKS = ("globals",) + COLLECTIONS


# --------------------------------------------------------------------------- padding (pure numpy)

def flatten_collection(values: ak.Array, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_jets, var, F) awkward -> (content (total, F) float32, offsets (n_jets + 1,) int64)."""
    counts = ak.to_numpy(ak.num(values, axis=1)).astype(np.int64)
    content = ak.to_numpy(ak.flatten(values, axis=None)).astype(np.float32, copy=False).reshape(-1, n_features)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return content, offsets


def sort_by_pt(content: np.ndarray, offsets: np.ndarray, pt_column: int, longer_than: int = 0) -> np.ndarray:
    """Constituents reordered by decreasing pT within each jet (jets keep their order).

    With ``longer_than`` only jets with more entries than that are reordered (the others are
    padded whole, so their order does not matter); the sort then touches only those jets.
    """
    if longer_than <= 0:
        counts = np.diff(offsets)
        jet = np.repeat(np.arange(len(counts)), counts)
        return content[np.lexsort((-content[:, pt_column], jet))]
    order = _long_jets_pt_order(content, offsets, pt_column, longer_than)
    return content if order is None else take_rows(content, order)


def _long_jets_pt_order(content: np.ndarray, offsets: np.ndarray, pt_column: int, longer_than: int) -> np.ndarray | None:
    """The row order of ``sort_by_pt(..., longer_than)``: entries of jets longer than ``longer_than`` by
    decreasing pT (ties in storage order), the others in place; None when no jet is that long."""
    counts = np.diff(offsets)
    jet = np.repeat(np.arange(len(counts)), counts)
    rows = np.flatnonzero(counts[jet] > longer_than)
    if len(rows) == 0:
        return None
    order = np.arange(len(content))
    order[rows] = rows[np.lexsort((-content[rows, pt_column], jet[rows]))]
    return order


def cap_rows(content: np.ndarray, offsets: np.ndarray, cap: int | None, pt_column: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(content, offsets) with at most ``cap`` entries per jet: the hardest ``cap`` of a longer jet (ordered as
    ``sort_by_pt`` orders them), the others whole and in place: the entries ``pad_rows`` keeps with
    ``max_len=cap``, in one row copy (none when no jet is longer)."""
    counts = np.diff(offsets)
    order = _long_jets_pt_order(content, offsets, pt_column, cap) if cap else None
    if order is None:
        return content, offsets
    position = np.arange(len(content)) - np.repeat(offsets[:-1], counts)
    capped = np.zeros_like(offsets)
    np.cumsum(np.minimum(counts, cap), out=capped[1:])
    return take_rows(content, order[position < cap]), capped


def row_items(matrix: np.ndarray) -> np.ndarray:
    """A C-contiguous 2-D array (n, F), F > 0, seen as n single row-sized void items (no copy): ``np.take`` and
    ``np.put`` on it move whole rows, several times faster than 2-D fancy indexing, the same bytes."""
    return matrix.view(np.dtype((np.void, matrix.shape[1] * matrix.itemsize))).reshape(-1)


def take_rows(content: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``content[index]`` for a 2-D array, whole rows copied as single items (``row_items``)."""
    content = np.ascontiguousarray(content)
    if content.ndim != 2 or content.shape[1] == 0:
        return content[index]
    return np.take(row_items(content), index).view(content.dtype).reshape(len(index), content.shape[1])


def pad_rows(content: np.ndarray, offsets: np.ndarray, rows: np.ndarray, max_len: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Pad jets ``rows`` of a flat collection: (B, L, F) float32 and mask (B, L) float32.

    L = longest of these jets, capped at ``max_len``, at least 1. The first L constituents of
    each jet are kept (store them pT-ordered, ``sort_by_pt``, to keep the hardest); the real
    entries are scattered into a zeroed array (no (B, L, F) gather).
    """
    start = offsets[rows]
    counts = offsets[rows + 1] - start
    longest = int(counts.max(initial=0))
    length = max(1, min(longest, max_len) if max_len else longest)
    counts = np.minimum(counts, length)
    n_rows, width = len(rows), content.shape[1]
    padded = np.zeros((n_rows, length, width), dtype=np.float32)
    mask = np.zeros((n_rows, length), dtype=np.float32)
    total = int(counts.sum())
    if total:
        pos = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        dest = np.repeat(np.arange(n_rows) * length, counts) + pos  # flat (row, position) of each entry
        src = np.repeat(start, counts) + pos
        if width:  # whole rows as single items (``row_items``)
            source = row_items(np.ascontiguousarray(content, dtype=np.float32))
            np.put(row_items(padded.reshape(n_rows * length, width)), dest, np.take(source, src))
        mask.reshape(-1)[dest] = 1.0
    return padded, mask


def pad_batch(features: dict[str, ak.Array | np.ndarray], max_len: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Model inputs (``globals``, ``charged``, ``charged_mask``, ...) of flattened jets, padded per batch.

    ``features``: "globals" (n, G) and per collection (n, var, F) awkward arrays (``jet_features``
    layout). Each collection is padded to its longest jet, capped at ``max_len[coll]``; when a
    jet is cut, its highest-pT constituents (column 0, "pt") are kept.
    """
    out = {"globals": np.asarray(ak.to_numpy(features["globals"]) if isinstance(features["globals"], ak.Array)
                                 else features["globals"], dtype=np.float32)}
    rows = np.arange(len(out["globals"]))
    for coll in COLLECTIONS:
        values = features[coll] if isinstance(features[coll], ak.Array) else ak.Array(features[coll])
        content, offsets = flatten_collection(values, _n_features(values, coll))
        cap = (max_len or {}).get(coll)
        if cap and np.diff(offsets).max(initial=0) > cap:
            content = sort_by_pt(content, offsets, 0, longer_than=cap)
        out[coll], out[f"{coll}_mask"] = pad_rows(content, offsets, rows, cap)
    return out


def _n_features(values: ak.Array, coll: str) -> int:
    """F of a (n_jets, var, F) collection: from a regular inner dimension, the data, or FEATURE_NAMES."""
    form = values.layout.form
    depth = 0
    while hasattr(form, "content"):
        if depth == 1 and type(form).__name__ == "RegularForm":
            return int(form.size)
        form, depth = form.content, depth + 1
    n_entries = int(ak.sum(ak.num(values, axis=1)))
    if n_entries:
        return int(ak.count(values, axis=None)) // n_entries
    from physics.features import FEATURE_NAMES

    return len(FEATURE_NAMES[coll])


# --------------------------------------------------------------------------- loss

def masked_mae(y: np.ndarray, y_hat: np.ndarray, max_abs: float = 1.0) -> float:
    """Mean |y - y_hat| over the jets with |y| < max_abs only (DESIGN section 4)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    y_hat = np.asarray(y_hat, dtype=np.float64).reshape(-1)
    keep = np.abs(y) < max_abs
    return float(np.mean(np.abs(y[keep] - y_hat[keep]))) if keep.any() else float("nan")


# --------------------------------------------------------------------------- shards

@dataclass
class JetTable:
    """Jets of one split in memory: targets, globals and flat collections (pT-ordered per jet)."""

    target: np.ndarray
    globals: np.ndarray
    content: dict[str, np.ndarray] = field(default_factory=dict)
    offsets: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.target)

    def inputs(self, rows: np.ndarray, max_len: dict[str, int]) -> dict[str, np.ndarray]:
        out = {"globals": self.globals[rows]}
        for coll in COLLECTIONS:
            out[coll], out[f"{coll}_mask"] = pad_rows(self.content[coll], self.offsets[coll], rows, max_len.get(coll))
        return out


def read_shard_manifest(shard_dir: str | Path) -> dict:
    """manifest.json of a shard directory; BadInputError naming the path when missing, broken or empty."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        raise BadInputError(f"{shard_dir}: shard directory does not exist")
    manifest = read_manifest(shard_dir)
    for key in ("features", "norm", "shards"):
        if key not in manifest:
            raise BadInputError(f"{shard_dir / MANIFEST}: manifest lacks '{key}'")
    if not manifest["shards"]:
        raise BadInputError(f"{shard_dir}: the manifest lists no shards (empty fileset?)")
    return manifest


def check_features(shard_dir: str | Path, manifest: dict, expected: dict[str, list[str]], what: str) -> None:
    """BadInputError naming the shard directory and the differing features when they differ from ``expected``."""
    for coll in BLOCKS:
        have = list(manifest["features"].get(coll, []))
        want = list(expected.get(coll, []))
        if have != want:
            only_shards = [f for f in have if f not in want]
            only_model = [f for f in want if f not in have]
            detail = (f"shards only: {only_shards or 'none'}, {what} only: {only_model or 'none'}"
                      + ("" if only_shards or only_model else " (same names, other order)"))
            raise BadInputError(f"{shard_dir}: '{coll}' features of the shards differ from the {what} ({detail})")


def load_split(shard_dir: str | Path, manifest: dict, split: int, max_jets: int | None = None,
               max_abs_target: float | None = None) -> JetTable:
    """The jets of ``split`` (0 train, 1 validation, 2 test) from all shards, optionally only |y| < max_abs_target."""
    shard_dir = Path(shard_dir)
    names = {c: manifest["features"][c] for c in BLOCKS}
    parts = []
    n_total = 0
    for name in manifest["shards"]:
        path = shard_dir / name
        if not path.exists():
            raise BadInputError(f"{path}: shard listed in the manifest does not exist")
        try:
            arr = ak.from_parquet(path, columns=["target", "split", *BLOCKS])
        except Exception as err:  # noqa: BLE001 - any reader failure is a bad shard
            raise BadInputError(f"{path}: cannot read shard ({type(err).__name__}: {err})") from None
        keep = ak.to_numpy(arr.split) == split
        if max_abs_target is not None:
            keep &= np.abs(ak.to_numpy(arr.target)) < max_abs_target
        arr = arr[keep]
        if max_jets is not None:
            arr = arr[: max(0, max_jets - n_total)]
        n_total += len(arr)
        if len(arr):
            parts.append((path, arr))
        if max_jets is not None and n_total >= max_jets:
            break
    target = [ak.to_numpy(a.target).astype(np.float32) for _, a in parts]
    table = JetTable(target=np.concatenate(target) if target else np.zeros(0, np.float32),
                     globals=np.zeros((0, len(names["globals"])), np.float32))
    glob, content, counts = [], {c: [] for c in COLLECTIONS}, {c: [] for c in COLLECTIONS}
    for path, a in parts:
        g = ak.to_numpy(ak.flatten(a.globals, axis=None)).astype(np.float32)
        if g.size != len(a) * len(names["globals"]):
            raise BadInputError(f"{path}: 'globals' rows do not have {len(names['globals'])} features as the manifest says")
        glob.append(g.reshape(len(a), -1))
        for coll in COLLECTIONS:
            nf = len(names[coll])
            flat = ak.flatten(a[coll], axis=1)
            widths = ak.to_numpy(ak.num(flat, axis=1)) if len(flat) else np.zeros(0, int)
            if len(widths) and (widths != nf).any():
                raise BadInputError(f"{path}: '{coll}' entries have {int(widths[widths != nf][0])} features, "
                                    f"the manifest lists {nf}")
            c, o = flatten_collection(a[coll], nf)
            content[coll].append(c)
            counts[coll].append(np.diff(o))
    if glob:
        table.globals = np.concatenate(glob)
    for coll in COLLECTIONS:
        nf = len(names[coll])
        c = np.concatenate(content[coll]) if content[coll] else np.zeros((0, nf), np.float32)
        n = np.concatenate(counts[coll]) if counts[coll] else np.zeros(0, np.int64)
        offsets = np.zeros(len(n) + 1, dtype=np.int64)
        np.cumsum(n, out=offsets[1:])
        pt_col = names[coll].index("pt") if "pt" in names[coll] else 0
        table.content[coll] = sort_by_pt(c, offsets, pt_col) if len(c) else c
        table.offsets[coll] = offsets
    return table


# --------------------------------------------------------------------------- batches

def iterate_batches(table: JetTable, batch_size: int, max_len: dict[str, int], shuffle: bool,
                    rng: np.random.Generator | None = None) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """(inputs, target (B, 1)) batches; jets shuffled (by ``rng``) when ``shuffle``."""
    order = rng.permutation(len(table)) if shuffle else np.arange(len(table))
    for begin in range(0, len(order), batch_size):
        rows = np.sort(order[begin:begin + batch_size]) if shuffle else order[begin:begin + batch_size]
        yield table.inputs(rows, max_len), table.target[rows, None]


def make_dataset(table: JetTable, batch_size: int, max_len: dict[str, int], shuffle: bool, seed: int = 1):
    """tf.data pipeline: jets shuffled every epoch (seeded), batched, padded per batch, prefetched."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n_glob = table.globals.shape[1]
    spec = {"globals": tf.TensorSpec((None, n_glob), tf.float32)}
    for coll in COLLECTIONS:
        spec[coll] = tf.TensorSpec((None, None, table.content[coll].shape[1]), tf.float32)
        spec[f"{coll}_mask"] = tf.TensorSpec((None, None), tf.float32)
    signature = (spec, tf.TensorSpec((None, 1), tf.float32))
    ds = tf.data.Dataset.from_generator(lambda: iterate_batches(table, batch_size, max_len, shuffle, rng),
                                        output_signature=signature)
    n_batches = -(-len(table) // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)
