"""Custom Keras layers of the jet models, registered so ``load_model(safe_mode=True)`` needs no custom_objects.

All layers take a mask (1 real entry, 0 padding) and make sure padded entries enter
neither pooling nor neighbour searches. TensorFlow backend.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from inputs.shards import STD_FLOOR

PACKAGE = "caliber"
#: distance added to padded points so that they are never nearer than a real point
PAD_DISTANCE = 1.0e9
#: distance added to a point itself (excluded from its own neighbours; still nearer than padding)
SELF_DISTANCE = 1.0e8


@keras.saving.register_keras_serializable(package=PACKAGE)
class Standardize(keras.layers.Layer):
    """(x - mean) / std with the manifest statistics; padded entries (mask 0) become exactly 0.

    A feature whose training std is below ``STD_FLOOR`` did not vary in training: it is not an
    input (its standardised value is 0 whatever x is), so a value never seen in training cannot
    blow up the network. This also holds for models saved before the floor existed (their
    manifests clamp such a std to 1e-6). Call on ``x`` (N, G) or on ``[x, mask]`` with x (N, P, F)
    and mask (N, P).
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.scale = [1.0 / s if s >= STD_FLOOR else 0.0 for s in self.std]

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, mask = inputs
        else:
            x, mask = inputs, None
        x = tf.cast(x, self.compute_dtype)
        y = (x - tf.constant(self.mean, dtype=x.dtype)) * tf.constant(self.scale, dtype=x.dtype)
        if mask is not None:
            y = y * tf.cast(mask, y.dtype)[..., None]
        return y

    def compute_output_shape(self, input_shape):
        return input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) else input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TakeFeatures(keras.layers.Layer):
    """The feature columns ``indices`` of x (..., F) -> (..., len(indices)); e.g. the (deta, dphi) coordinates."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, x):
        return tf.gather(tf.cast(x, self.compute_dtype), self.indices, axis=-1)

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedSum(keras.layers.Layer):
    """Sum over points of h (N, P, C) with weights mask (N, P) -> (N, C)."""

    def call(self, inputs):
        h, mask = inputs
        return tf.reduce_sum(h * tf.cast(mask, h.dtype)[..., None], axis=1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMean(keras.layers.Layer):
    """Mean over the real points of h (N, P, C) -> (N, C); 0 for a jet without real points."""

    def call(self, inputs):
        h, mask = inputs
        m = tf.cast(mask, h.dtype)
        return tf.reduce_sum(h * m[..., None], axis=1) / tf.maximum(tf.reduce_sum(m, axis=1, keepdims=True), 1.0)


def knn_indices(points: tf.Tensor, mask: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The k nearest neighbours of every point (itself excluded) and whether each is usable.

    points (N, P, D), mask (N, P) -> idx (N, P, min(k, P)) int32 and valid (N, P, min(k, P)) float:
    valid is 1 only for a real neighbour other than the point itself. Padded points are pushed
    PAD_DISTANCE away, so they are picked only when a jet has fewer than k other real points,
    and then ``valid`` is 0 for them.
    """
    points = tf.cast(points, tf.float32)
    m = tf.cast(mask, tf.float32)
    n_points = tf.shape(points)[1]
    sq = tf.reduce_sum(points * points, axis=-1, keepdims=True)                      # (N, P, 1)
    dist = sq - 2.0 * tf.matmul(points, points, transpose_b=True) + tf.transpose(sq, [0, 2, 1])
    dist = tf.maximum(dist, 0.0)
    dist += (1.0 - m)[:, None, :] * PAD_DISTANCE
    dist += tf.eye(n_points, dtype=dist.dtype)[None] * SELF_DISTANCE
    k_eff = tf.minimum(k, n_points)
    _, idx = tf.math.top_k(-dist, k=k_eff, sorted=True)
    not_self = tf.cast(tf.not_equal(idx, tf.range(n_points)[None, :, None]), tf.float32)
    valid = tf.gather(m, idx, batch_dims=1) * not_self
    return idx, valid


@keras.saving.register_keras_serializable(package=PACKAGE)
class EdgeConv(keras.layers.Layer):
    """ParticleNet EdgeConv block on [coordinates (N,P,D), features (N,P,F), mask (N,P)] -> (N,P,C).

    For each real point i: the edge MLP on [x_i, x_j - x_i] over its k nearest real neighbours j
    (in ``coordinates``), averaged over the usable neighbours only, plus a linear shortcut of x_i,
    then the activation. Padded points give 0.
    """

    def __init__(self, channels, k: int = 16, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.channels = [int(c) for c in channels]
        self.k = int(k)
        self.activation_name = activation
        self.edge_layers = [keras.layers.Dense(c, name=f"edge_dense_{i}") for i, c in enumerate(self.channels)]
        self.shortcut = keras.layers.Dense(self.channels[-1], name="shortcut")
        self.act = keras.activations.get(activation)

    def build(self, input_shape):
        n_features = input_shape[1][-1]
        width = 2 * n_features
        for layer in self.edge_layers:
            layer.build((None, None, None, width))
            width = layer.units
        self.shortcut.build((None, None, n_features))

    def call(self, inputs):
        coords, x, mask = inputs
        x = tf.cast(x, self.compute_dtype)
        idx, valid = knn_indices(coords, mask, self.k)
        neighbours = tf.gather(x, idx, batch_dims=1)                    # (N, P, k, F)
        centre = tf.broadcast_to(x[:, :, None, :], tf.shape(neighbours))
        h = tf.concat([centre, neighbours - centre], axis=-1)
        for layer in self.edge_layers:
            h = self.act(layer(h))
        valid = tf.cast(valid, h.dtype)
        agg = tf.reduce_sum(h * valid[..., None], axis=2) / tf.maximum(tf.reduce_sum(valid, axis=2), 1.0)[..., None]
        out = self.act(agg + self.shortcut(x))
        return out * tf.cast(mask, out.dtype)[..., None]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:-1]) + (self.channels[-1],)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "k": self.k, "activation": self.activation_name}
