"""Deep Sets and ParticleNet jet regressions (Keras 3 functional models).

Inputs (a dict, RAW features: the manifest normalisation is inside the model):
``globals`` (N, G), ``charged`` (N, Pc, Fc), ``charged_mask`` (N, Pc), ``neutral`` (N, Pn, Fn),
``neutral_mask`` (N, Pn), ``sv`` (N, Ps, Fs), ``sv_mask`` (N, Ps); mask 1 real, 0 padding.
Output (N, 1): y_hat = predicted log(pt_gen / pt_raw).

ParticleNet choice: charged and neutral candidates are two separate point clouds (their
feature lists differ), each with its own EdgeConv stack (first block: kNN in the raw
(deta, dphi) columns, found by name; later blocks: kNN in the previous block's features),
pooled with a masked mean. SVs (few per jet) go through a Deep Sets branch (shared MLP,
masked sum). The head MLP sees [charged, neutral, SV pooled, standardised globals].
"""
from __future__ import annotations

import keras

from models.config import ModelConfig
from models.layers import EdgeConv, MaskedMean, MaskedSum, Standardize, TakeFeatures
from core.errors import BadInputError

COLLECTIONS = ("charged", "neutral", "sv")
COORDINATES = ("deta", "dphi")


def model_inputs(features: dict[str, list[str]]) -> dict[str, keras.KerasTensor]:
    """Named Keras inputs of the shared interface for the feature lists of a manifest."""
    inputs = {"globals": keras.Input(shape=(len(features["globals"]),), name="globals")}
    for coll in COLLECTIONS:
        inputs[coll] = keras.Input(shape=(None, len(features[coll])), name=coll)
        inputs[f"{coll}_mask"] = keras.Input(shape=(None,), name=f"{coll}_mask")
    return inputs


def _mlp(h, widths: list[int], activation: str, prefix: str, dropout: float = 0.0):
    for i, w in enumerate(widths):
        h = keras.layers.Dense(w, activation=activation, name=f"{prefix}_{i}")(h)
        if dropout > 0:
            h = keras.layers.Dropout(dropout, name=f"{prefix}_dropout_{i}")(h)
    return h


def _standardised(inputs, manifest: dict, coll: str):
    norm = manifest["norm"][coll]
    if coll == "globals":
        return Standardize(norm["mean"], norm["std"], name="std_globals")(inputs["globals"])
    return Standardize(norm["mean"], norm["std"], name=f"std_{coll}")([inputs[coll], inputs[f"{coll}_mask"]])


def _head(pooled: list, globals_std, config: ModelConfig, output_bias: float):
    z = keras.layers.Concatenate(name="pooled_and_globals")(pooled + [globals_std])
    z = _mlp(z, config.head_layers, config.activation, "head", config.dropout)
    return keras.layers.Dense(1, name="y_hat", bias_initializer=keras.initializers.Constant(output_bias))(z)


def build_deepsets(config: ModelConfig, manifest: dict, output_bias: float = 0.0) -> keras.Model:
    """Deep Sets: per collection a shared MLP over constituents and a masked sum; head on [pooled, globals]."""
    inputs = model_inputs(manifest["features"])
    pooled = []
    for coll in COLLECTIONS:
        h = _standardised(inputs, manifest, coll)
        h = _mlp(h, config.phi_layers, config.activation, f"phi_{coll}")
        pooled.append(MaskedSum(name=f"sum_{coll}")([h, inputs[f"{coll}_mask"]]))
    y = _head(pooled, _standardised(inputs, manifest, "globals"), config, output_bias)
    return keras.Model(inputs=inputs, outputs=y, name=config.name)


def coordinate_indices(names: list[str], coll: str) -> list[int]:
    """Columns of (deta, dphi) in a collection's feature list; BadInputError if absent."""
    missing = [c for c in COORDINATES if c not in names]
    if missing:
        raise BadInputError(f"ParticleNet needs features {list(COORDINATES)} in '{coll}'; missing {missing}")
    return [names.index(c) for c in COORDINATES]


def build_particlenet(config: ModelConfig, manifest: dict, output_bias: float = 0.0) -> keras.Model:
    """ParticleNet: EdgeConv blocks (kNN in (deta, dphi), then in feature space), masked mean pooling."""
    inputs = model_inputs(manifest["features"])
    pooled = []
    for coll in ("charged", "neutral"):
        mask = inputs[f"{coll}_mask"]
        coords = TakeFeatures(coordinate_indices(manifest["features"][coll], coll), name=f"coords_{coll}")(inputs[coll])
        h = _standardised(inputs, manifest, coll)
        for b, channels in enumerate(config.edge_blocks):
            h = EdgeConv(channels, k=config.k, activation=config.activation, name=f"edgeconv_{coll}_{b}")([coords, h, mask])
            coords = h
        pooled.append(MaskedMean(name=f"mean_{coll}")([h, mask]))
    h = _mlp(_standardised(inputs, manifest, "sv"), config.sv_layers, config.activation, "phi_sv")
    pooled.append(MaskedSum(name="sum_sv")([h, inputs["sv_mask"]]))
    y = _head(pooled, _standardised(inputs, manifest, "globals"), config, output_bias)
    return keras.Model(inputs=inputs, outputs=y, name=config.name)


def build_model(config: ModelConfig, manifest: dict, output_bias: float = 0.0) -> keras.Model:
    """The model of ``config.architecture`` for the features and normalisation of ``manifest``."""
    builder = {"deepsets": build_deepsets, "particlenet": build_particlenet}[config.architecture]
    return builder(config, manifest, output_bias)
