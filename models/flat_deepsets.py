"""Deep Sets inference on flat constituents: the trained layers, no padding.

A Deep Sets model (``models.networks.build_deepsets``) applies one MLP to every constituent and sums
the outputs of the real ones (``MaskedSum``); padded entries contribute exactly 0. So the same
layers run on the flat constituents of a block of jets, followed by a sorted segment sum per jet,
give the padded model's answer without the padding: no padded copies, no network work on padding
entries, one call per block of jets; the standardisation is folded into the first Dense layer.
The sums add the same terms in another order (float rounding: |dy| < 1e-6 on the bench sample). Any other model (ParticleNet, a changed graph) gets None from
``flat_deepsets`` and runs padded.
"""
from __future__ import annotations

import numpy as np

from physics.features import COLLECTIONS

#: layer classes a flat-capable Deep Sets model may hold
DEEPSETS_LAYER_CLASSES = {"InputLayer", "Standardize", "Dense", "Dropout", "MaskedSum", "Concatenate"}
#: |y_flat - y_padded| above this on the self-check batch: the model is not run flat
SELF_CHECK_TOLERANCE = 1e-4
#: constituents (all collections together) in one flat block: memory grows with them, not with jets, and
#: large matrix products keep TensorFlow's threads busy (5000-event bench file at pileup 30, blocks of
#: 4096 -> ~32k jets: median 0.390 -> 0.272 s, 8 alternated rounds); about 100 MB per 48-wide layer output
FLAT_BLOCK_CONSTITUENTS = 1 << 19


def _chain(layers: dict, prefix: str) -> list:
    """The layers ``prefix_0``, ``prefix_1``, ... of an MLP, in order."""
    out = []
    while f"{prefix}_{len(out)}" in layers:
        out.append(layers[f"{prefix}_{len(out)}"])
    return out


def deepsets_layers(model) -> dict | None:
    """The layers of a ``build_deepsets`` model by role (``std``/``phi`` per collection, ``std_globals``,
    ``concat``, ``head``, ``y_hat``), or None when the model is anything else."""
    layers = {layer.name: layer for layer in model.layers}
    if {type(layer).__name__ for layer in model.layers} - DEEPSETS_LAYER_CLASSES:
        return None
    needed = [f"{p}_{c}" for c in COLLECTIONS for p in ("std", "sum")] + ["std_globals", "pooled_and_globals", "y_hat"]
    if any(name not in layers for name in needed) or any(not _chain(layers, f"phi_{c}") for c in COLLECTIONS):
        return None
    return {"std": {c: layers[f"std_{c}"] for c in COLLECTIONS}, "phi": {c: _chain(layers, f"phi_{c}") for c in COLLECTIONS},
            "std_globals": layers["std_globals"], "concat": layers["pooled_and_globals"],
            "head": _chain(layers, "head") + [layers["y_hat"]]}


def _folded_first_layer(std, dense) -> tuple:
    """The standardisation folded into the first Dense layer of a collection: (x - mean) * scale @ W + b =
    x @ (scale W) + (b - (mean scale) @ W), computed in float64 and rounded to float32 (one pass less over
    the constituents; the sums round differently: |dy| ~1e-7)."""
    import tensorflow as tf

    weights = [np.asarray(v, np.float64) for v in dense.get_weights()]
    kernel, bias = weights[0], (weights[1] if len(weights) > 1 else np.zeros(weights[0].shape[1]))
    scale, mean = np.asarray(std.scale, np.float64), np.asarray(std.mean, np.float64)
    return (tf.constant((scale[:, None] * kernel).astype(np.float32)),
            tf.constant((bias - (mean * scale) @ kernel).astype(np.float32)), dense.activation)


def _flat_forward(parts: dict):
    """The Deep Sets forward pass on flat inputs: globals (B, G), then per collection content (N, F) and
    the sorted jet (0..B-1) of each entry; y_hat (B, 1)."""
    import tensorflow as tf

    first = {coll: _folded_first_layer(parts["std"][coll], parts["phi"][coll][0]) for coll in COLLECTIONS}

    def forward(globals_, *blocks):
        n = tf.shape(globals_)[0]
        pooled = []
        for i, coll in enumerate(COLLECTIONS):
            kernel, bias, activation = first[coll]
            h, jet = activation(tf.matmul(blocks[2 * i], kernel) + bias), blocks[2 * i + 1]
            for layer in parts["phi"][coll][1:]:
                h = layer(h)
            summed = tf.math.segment_sum(h, jet)  # rows up to the last jet that has entries
            pooled.append(tf.pad(summed, [[0, n - tf.shape(summed)[0]], [0, 0]]))
        z = parts["concat"](pooled + [parts["std_globals"](globals_)])
        for layer in parts["head"]:
            z = layer(z)
        return z

    return forward


def flat_deepsets(model, widths: dict[str, int]):
    """A traced ``f(globals, content_charged, jet_charged, ...) -> y_hat`` running ``model`` flat, or None
    when the model is not a Deep Sets model or disagrees with its padded self on a random check batch."""
    import tensorflow as tf

    parts = deepsets_layers(model)
    if parts is None:
        return None
    signature = [tf.TensorSpec((None, widths["globals"]), tf.float32)]
    for coll in COLLECTIONS:
        signature += [tf.TensorSpec((None, widths[coll]), tf.float32), tf.TensorSpec((None,), tf.int32)]
    fn = tf.function(_flat_forward(parts), input_signature=signature)
    if not _agrees_with_padded(model, fn, widths):
        return None
    return fn


def _agrees_with_padded(model, fn, widths: dict[str, int]) -> bool:
    """Whether ``fn`` gives the padded model's predictions on a small random batch (some jets empty)."""
    from models.data import pad_rows

    rng = np.random.default_rng(0)
    n = 7
    padded = {"globals": rng.normal(size=(n, widths["globals"])).astype(np.float32)}
    flat = [padded["globals"]]
    for coll in COLLECTIONS:
        counts = rng.integers(0, 4, n)
        counts[-1] = 0
        offsets = np.concatenate([[0], np.cumsum(counts)])
        content = rng.normal(size=(int(offsets[-1]), widths[coll])).astype(np.float32)
        padded[coll], padded[f"{coll}_mask"] = pad_rows(content, offsets, np.arange(n), None)
        flat += [content, jet_of_entries(counts)]
    y_padded = np.asarray(model(padded, training=False)).reshape(-1)
    y_flat = np.asarray(fn(*flat)).reshape(-1)
    return bool(np.all(np.abs(y_flat - y_padded) <= SELF_CHECK_TOLERANCE * np.maximum(1.0, np.abs(y_padded))))


def jet_of_entries(counts: np.ndarray) -> np.ndarray:
    """The jet (0..n-1, int32) of each flat entry, from the entries per jet."""
    return np.repeat(np.arange(len(counts), dtype=np.int32), counts)


def flat_block_jets(flat: dict, constituents: int = FLAT_BLOCK_CONSTITUENTS) -> int:
    """Jets per flat block: as many as hold about ``constituents`` entries of all collections on average."""
    n = len(flat["globals"])
    entries = sum(int(flat[coll][1][-1]) for coll in COLLECTIONS)
    return max(1, min(n, constituents * n // max(entries, 1)))


def predict_flat(fn, flat: dict, is_oom, constituents: int = FLAT_BLOCK_CONSTITUENTS) -> np.ndarray:
    """y_hat (n,) float32 of ``fn`` (``flat_deepsets``) over blocks of jets in their own order, each block
    about ``constituents`` entries (``flat_block_jets``; halved on out-of-memory like padded batches).

    ``flat``: "globals" (n, G) and per collection (content, offsets, cap) with at most ``cap`` entries per
    jet (``models.data.cap_rows``); a block's entries are slices of the content (no copy).
    """
    from models.inference import predict_in_batches

    jets = {coll: jet_of_entries(np.diff(flat[coll][1])) for coll in COLLECTIONS}

    def make_batch(begin: int, stop: int) -> tuple:
        args = [flat["globals"][begin:stop]]
        for coll in COLLECTIONS:
            content, offsets, _ = flat[coll]
            first, last = offsets[begin], offsets[stop]
            args += [content[first:last], jets[coll][first:last] - np.int32(begin)]
        return tuple(args)

    return predict_in_batches(len(flat["globals"]), make_batch, lambda args: np.asarray(fn(*args)),
                              flat_block_jets(flat, constituents), is_oom)
