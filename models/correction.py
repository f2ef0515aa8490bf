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
        if p.suffix not in (".keras", ".onnx"):
            raise BadInputError(f"{p}: not a .keras or .onnx model file")
        manifest = manifest_path(p)
        if not manifest.exists():
            raise BadInputError(f"{p}: no feature manifest next to it ({manifest.name})")
        check_feature_list(p)
        return cls(name=name or p.stem, path=str(p.resolve()), batch_size=batch_size)

    @classmethod
    def from_argument(cls, item: str, batch_size: int = 4096) -> "ModelSpec":
        """A ``--model [NAME=]PATH`` command-line value."""
        name, _, path = item.rpartition("=")
        return cls.from_path(path, name=name or None, batch_size=batch_size)


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
    """The inference backend of ``spec`` (``models.backends``: Keras for .keras, ONNX Runtime for .onnx),
    one per process; its model is loaded on first use and kept (on the GPU when there is one)."""
    if spec.path not in _LOADED:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from models.backends import jet_model

        _LOADED[spec.path] = jet_model(spec.path, batch_size=spec.batch_size)
    return _LOADED[spec.path]


_MANIFESTS: dict[str, dict] = {}


def cached_manifest(spec: ModelSpec) -> dict:
    """The model's manifest (features, norm, training ranges), read once per process."""
    if spec.path not in _MANIFESTS:
        _MANIFESTS[spec.path] = check_feature_list(Path(spec.path))
    return _MANIFESTS[spec.path]


def model_correction(spec: ModelSpec, events: ak.Array, jets: ak.Array, pt_raw: ak.Array,
                     features: dict | None = None) -> tuple[ak.Array, dict[str, int]]:
    """DNN-corrected pT (GeV, jagged like ``jets``) and the chunk's domain counts.

    pT = ``exp(y) * pt_raw`` with y the prediction clipped to the training target range
    (``models.domain``); NaN for a jet whose prediction or raw pT is not finite (the processor
    leaves those out of the histograms). Counts: ``out_of_domain`` (any used input far outside the
    training range), ``clipped``, ``nonfinite``, ``jets``. A file that cannot feed the model
    raises BadInputError naming the file, the model and what is missing. ``features``: the chunk's
    ``jet_features(events, jets)`` when the caller built them already (shared by every model).
    """
    from models.domain import bounded_log_correction, out_of_domain
    from physics.features import check_branches, jet_features

    counts = ak.num(jets)
    flat_pt_raw = ak.to_numpy(ak.flatten(pt_raw)).astype(np.float64)
    tally = {"jets": len(flat_pt_raw), "out_of_domain": 0, "clipped": 0, "nonfinite": 0}
    check_branches(events, needed_by=f"model '{spec.name}'")
    if len(flat_pt_raw) == 0:
        return ak.unflatten(np.zeros(0), counts), tally
    if features is None:
        features = jet_features(events, jets)
    manifest = cached_manifest(spec)
    y_hat = np.asarray(cached_model(spec)(features), dtype=np.float64).reshape(-1)
    y, clipped, nonfinite = bounded_log_correction(y_hat, manifest)
    nonfinite |= ~np.isfinite(flat_pt_raw)
    tally["out_of_domain"] = int(np.sum(out_of_domain(features, manifest)))
    tally["clipped"] = int(np.sum(clipped & ~nonfinite))
    tally["nonfinite"] = int(np.sum(nonfinite))
    pt = np.where(nonfinite, np.nan, np.exp(np.where(nonfinite, 0.0, y)) * np.nan_to_num(flat_pt_raw))
    return ak.unflatten(pt, counts), tally


def model_corrected_pt(spec: ModelSpec, events: ak.Array, jets: ak.Array, pt_raw: ak.Array) -> ak.Array:
    """DNN-corrected pT (GeV), jagged like ``jets`` (``model_correction`` without the counts)."""
    return model_correction(spec, events, jets, pt_raw)[0]
