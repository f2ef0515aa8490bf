"""DNN jet corrections inside a processor: one model per worker process, kept on its device.

A ``ModelSpec`` (name + path) travels with the pickled processor; the Keras
model itself is loaded the first time a chunk needs it in a worker process and
reused by every later chunk there (on the GPU when TensorFlow sees one, on the
CPU otherwise). The correction is ``exp(y_hat) * pt_raw``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from core.errors import BadInputError


@dataclass(frozen=True)
class ModelSpec:
    """A trained jet model to apply: histogram row ``name``, file ``path`` (.keras)."""

    name: str
    path: str
    batch_size: int = 4096

    @classmethod
    def from_path(cls, path: str, name: str | None = None, batch_size: int = 4096) -> "ModelSpec":
        """Check the model file and its manifest exist; name defaults to the file stem."""
        p = Path(path)
        if not p.exists():
            raise BadInputError(f"{p}: model file does not exist")
        if p.suffix != ".keras":
            raise BadInputError(f"{p}: not a .keras model file")
        manifest = manifest_path(p)
        if not manifest.exists():
            raise BadInputError(f"{p}: no feature manifest next to it ({manifest.name})")
        check_feature_list(p)
        return cls(name=name or p.stem, path=str(p.resolve()), batch_size=batch_size)


def manifest_path(model_path: Path) -> Path:
    """``<name>.manifest.json`` next to ``<name>.keras``."""
    return model_path.with_name(model_path.stem + ".manifest.json")


def check_feature_list(model_path: Path) -> dict:
    """The model's manifest; BadInputError when its features differ from this code's feature builder."""
    from physics.features import FEATURE_NAMES

    try:
        manifest = json.loads(manifest_path(model_path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BadInputError(f"{manifest_path(model_path)}: cannot read the model manifest ({err})") from None
    features = manifest.get("features", {})
    for coll, names in FEATURE_NAMES.items():
        if list(features.get(coll, [])) != list(names):
            missing = sorted(set(names) - set(features.get(coll, [])))
            extra = sorted(set(features.get(coll, [])) - set(names))
            raise BadInputError(
                f"{model_path}: feature list of '{coll}' does not match the feature builder "
                f"(model lacks {missing or 'nothing'}, has extra {extra or 'nothing'}, or another order)")
    return manifest


_LOADED: dict[str, object] = {}


def cached_model(spec: ModelSpec):
    """The Keras model of ``spec``, loaded once per process."""
    if spec.path not in _LOADED:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from models.inference import load_model

        _LOADED[spec.path] = load_model(spec.path)
    return _LOADED[spec.path]


def model_corrected_pt(spec: ModelSpec, events: ak.Array, jets: ak.Array, pt_raw: ak.Array) -> ak.Array:
    """DNN-corrected pT (GeV), jagged like ``jets``: ``exp(y_hat) * pt_raw``."""
    from models.inference import predict_log_correction
    from physics.features import jet_features

    counts = ak.num(jets)
    flat_pt_raw = ak.to_numpy(ak.flatten(pt_raw)).astype(np.float64)
    if len(flat_pt_raw) == 0:
        return ak.unflatten(np.zeros(0), counts)
    features = jet_features(events, jets)
    y_hat = np.asarray(predict_log_correction(cached_model(spec), features, batch_size=spec.batch_size),
                       dtype=np.float64).reshape(-1)
    return ak.unflatten(np.exp(y_hat) * flat_pt_raw, counts)
