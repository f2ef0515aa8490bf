"""Padded model inputs of flat jets: jets grouped by length, padded once, shared by models.

A chunk's jets differ a lot in size (at pileup 30 most jets have a few constituents, a few
have 50): padding a batch to its longest jet makes the network run mostly on padding. Here
the jets are grouped by their (capped) numbers of constituents (``plan_batches``); each batch pads
every collection only to the longest jet of that batch (``models.data.pad_rows``).
Predictions come back in the jets' original order. Models mask padded entries, so the
answer does not depend on the padded length (within float rounding of their sums).

The padded batches of the last chunk are kept (``PaddedCache``), so a second model with the
same inputs, padding caps and batch size costs only its own inference.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
#: upper edges of the length buckets (total capped constituents of a jet)
BUCKET_EDGES = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
#: the cost of one model call, in padded entries (~1 ms of TensorFlow call overhead on a CPU core)
CALL_COST = 4000
#: padded batches kept for the next model only up to this many bytes
CACHE_BYTES = 512 * 2**20


@dataclass
class BatchPlan:
    """Jets in padding order (``order``) and the length buckets (ranges of that order)."""

    order: np.ndarray
    buckets: list[tuple[int, int]]


def plan_batches(counts: dict[str, np.ndarray], caps: dict[str, int | None], batch_size: int = 4096,
                 call_cost: int = CALL_COST) -> BatchPlan:
    """Jets grouped so that padding and calls cost little: a group pads each collection to its longest jet.

    Jets start in groups of equal (``BUCKET_EDGES``) size class per collection; then the two groups whose
    merging saves the most are merged, while merging saves: the cost of a group is its padded entries
    (rows x sum of its padded lengths) plus ``call_cost`` entries per model call (a call per
    ``batch_size`` rows). Within a group jets are ordered by total size (batches of a big group pad less).
    """
    capped = [np.minimum(c, caps[coll]) if caps.get(coll) else np.asarray(c, dtype=np.int64)
              for coll, c in counts.items()]
    n = len(capped[0]) if capped else 0
    if n == 0:
        return BatchPlan(order=np.zeros(0, dtype=np.int64), buckets=[])
    edges = np.asarray(BUCKET_EDGES)
    key = np.zeros(n, dtype=np.int64)
    for c in capped:
        key = key * (len(edges) + 2) + np.searchsorted(edges, c, side="left")
    _, group_of = np.unique(key, return_inverse=True)
    group_of = group_of.reshape(-1)
    n_groups = int(group_of.max()) + 1
    rows = np.bincount(group_of, minlength=n_groups).astype(np.float64)
    by_group = np.argsort(group_of, kind="stable")
    starts = np.concatenate([[0], np.cumsum(rows[:-1])]).astype(np.int64)
    longest = np.maximum(np.stack([np.maximum.reduceat(c[by_group], starts) for c in capped], axis=1), 1).astype(np.float64)
    parent = _merge_groups(rows, longest, batch_size, call_cost)
    final = parent[group_of]
    total = np.sum(capped, axis=0)
    order = np.lexsort((total, final))
    cuts = np.flatnonzero(np.diff(final[order])) + 1
    bounds = np.concatenate([[0], cuts, [n]]).astype(np.int64)
    return BatchPlan(order=order, buckets=[(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a])


def _merge_groups(rows: np.ndarray, longest: np.ndarray, batch_size: int, call_cost: int) -> np.ndarray:
    """Greedy merging of groups (rows, per-collection longest) while it lowers the cost; the final
    group of each starting group."""
    n_groups = len(rows)
    parent = np.arange(n_groups)

    def cost(r, width):
        return r * width + call_cost * np.ceil(r / batch_size)

    alone = cost(rows, longest.sum(axis=1))
    gain = (alone[:, None] + alone[None, :]
            - cost(rows[:, None] + rows[None, :], np.maximum(longest[:, None, :], longest[None, :, :]).sum(axis=-1)))
    np.fill_diagonal(gain, -np.inf)
    alive = np.ones(n_groups, dtype=bool)
    while n_groups > 1:
        a, b = divmod(int(np.argmax(gain)), len(rows))
        if not gain[a, b] > 0:
            break
        rows[a] += rows[b]
        longest[a] = np.maximum(longest[a], longest[b])
        alone[a] = cost(rows[a], longest[a].sum())
        parent[parent == b] = a
        alive[b] = False
        gain[b, :] = gain[:, b] = -np.inf
        row = alone[a] + alone - cost(rows[a] + rows, np.maximum(longest[a], longest).sum(axis=1))
        row[~alive] = -np.inf
        row[a] = -np.inf
        gain[a, :] = gain[:, a] = row
        n_groups -= 1
    return parent


def run_plan(plan: BatchPlan, make_batch, run_batch, batch_size: int, is_oom) -> np.ndarray:
    """``run_batch(make_batch(begin, stop))`` over every bucket in batches of at most ``batch_size`` jets
    (``models.inference.predict_in_batches``: out-of-memory halves the batch); y_hat (n,) float32 in the
    jets' original order."""
    from models.inference import predict_in_batches

    y_sorted = np.zeros(len(plan.order), dtype=np.float32)
    for first, last in plan.buckets:
        y_sorted[first:last] = predict_in_batches(last - first, lambda b, s, f=first: make_batch(f + b, f + s),
                                                  run_batch, batch_size, is_oom)
    out = np.empty(len(plan.order), dtype=np.float32)
    out[plan.order] = y_sorted
    return out


def same_inputs(kept: tuple, arrays: tuple) -> bool:
    """Whether ``arrays`` are the inputs ``kept``: same shapes and dtypes, and each either the same
    buffer (the flat feature content: views of the chunk's features) or equal values (the per-jet
    counts, made anew at each call)."""
    if len(kept) != len(arrays):
        return False
    for a, b in zip(kept, arrays):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.__array_interface__["data"][0] != b.__array_interface__["data"][0] and not np.array_equal(a, b):
            return False
    return True


@dataclass
class PaddedCache:
    """The padded batches of one set of inputs (the last chunk), for the next model on the same inputs.

    ``key`` holds the settings (feature widths, caps, batch size), ``inputs`` the input arrays
    themselves (``same_inputs``; holding them, their buffers cannot be reused by other arrays while
    the entry lives); ``flat`` the per-collection flat content, offsets and caps.
    """

    key: tuple | None = None
    inputs: tuple = ()
    flat: dict = field(default_factory=dict)
    plan: BatchPlan | None = None
    batches: dict = field(default_factory=dict)
    nbytes: int = 0

    def reset(self, key: tuple | None = None, inputs: tuple = (), flat: dict | None = None,
              plan: BatchPlan | None = None) -> None:
        self.key, self.inputs, self.flat, self.plan, self.batches, self.nbytes = key, inputs, flat or {}, plan, {}, 0

    def store(self, begin: int, stop: int, batch: dict[str, np.ndarray]) -> None:
        size = sum(v.nbytes for v in batch.values())
        if self.nbytes + size <= CACHE_BYTES:
            self.batches[(begin, stop)] = batch
            self.nbytes += size


#: one per process: the padded inputs of the last chunk (replaced, never changed in place, when other inputs come)
PADDED = PaddedCache()
_LOCK = threading.Lock()


def padded_entry(key: tuple, inputs: tuple, make_flat) -> PaddedCache:
    """The kept entry when ``inputs`` are its inputs with the same ``key``, else a new entry (flat inputs from
    ``make_flat()``) that becomes the kept one. Safe with threads (dask's threaded scheduler runs partitions at
    once): each caller keeps working on the entry it got, whatever entry the other threads make current."""
    global PADDED
    with _LOCK:
        entry = PADDED
    if entry.key == key and same_inputs(entry.inputs, inputs):
        return entry
    entry = PaddedCache()
    entry.reset(key, inputs, make_flat())
    with _LOCK:
        PADDED = entry
    return entry


def clear_padded_cache() -> None:
    """Drop the kept padded batches (their memory) once every model of a chunk has run."""
    global PADDED
    with _LOCK:
        PADDED = PaddedCache()
