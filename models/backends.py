"""Jet-model inference backends built on ``coffea.ml_tools``: Keras (TensorFlow) and ONNX Runtime.

Both are ``coffea.ml_tools`` wrappers, so one object is called the same way on eager
(virtual) awkward arrays inside a processor and on dask-awkward arrays (``apply_to_fileset``):

    y_hat = correction(features)        # features: the ``jet_features`` layout

``prepare_awkward`` turns the jagged constituent blocks into flat content + counts (what
``ak.to_numpy`` / dask partitions can carry); ``numpy_call`` caps each jet at the model's
``max_constituents`` (hardest constituents kept), runs a Keras Deep Sets model on the flat
constituents (``models.flat_deepsets``: no padding, blocks counted in constituents) and any other
model padded per batch of ``batch_size`` jets (to the longest jet), through a fixed-signature
function (a traced ``tf.function`` / an ORT session), and halves the batch on an out-of-memory error.
The model is created once per process and path (``nonserializable_attribute`` keeps it out of the
pickle; a module cache shares it between wrapper instances in a worker). The ONNX backend never imports TensorFlow.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from core.errors import BadInputError
from physics.features import COLLECTIONS


def _ml_tools_helper():
    """``coffea.ml_tools.helper`` without the package ``__init__`` (which imports TensorFlow and torch
    through ``tf_wrapper``/``torch_wrapper``): the ONNX backend must not pay for, or print, a TF import."""
    import importlib.util

    name = "coffea.ml_tools.helper"
    if name not in sys.modules:
        import coffea

        spec = importlib.util.spec_from_file_location(name, Path(coffea.__file__).parent / "ml_tools" / "helper.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


nonserializable_attribute = _ml_tools_helper().nonserializable_attribute
numpy_call_wrapper = _ml_tools_helper().numpy_call_wrapper

#: per-process model cache: (backend, path) -> model or session
_MODELS: dict[tuple[str, str], object] = {}
#: flat Deep Sets functions (``KerasJetModel.flat_function``): (id(model), widths) -> (model, function or None)
_FLAT: dict[tuple, tuple] = {}


def _caps_from_config(path: Path, default: int = 128) -> dict[str, int]:
    """``max_constituents`` of ``<stem>.config.yaml`` next to the model, else ``default`` for each."""
    config = path.with_name(path.stem + ".config.yaml")
    if config.exists():
        from models.config import load_config

        return dict(load_config(config).max_constituents)
    return {c: default for c in COLLECTIONS}


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True):
    """Silence the C++ start-up lines (absl/cudart/oneDNN) TensorFlow writes to fd 2 before its logging is set up.

    Python exceptions are unaffected (raised after the descriptor is restored); ``CALIBER_VERBOSE=1``
    (``runner.py -v``) keeps everything.
    """
    if not enabled or os.environ.get("CALIBER_VERBOSE") == "1":
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _is_oom(err: Exception) -> bool:
    """Whether an inference error is an out-of-(device-)memory one."""
    name = type(err).__name__
    text = str(err).lower()
    return name == "ResourceExhaustedError" or "out of memory" in text or "failed to allocate" in text


class JetModelWrapper(nonserializable_attribute, numpy_call_wrapper):
    """Common part of the jet backends: argument layout, padding, batching, OOM halving."""

    backend = "?"

    def __init__(self, path: str | Path, batch_size: int = 4096, max_len: dict[str, int] | None = None):
        nonserializable_attribute.__init__(self, ["model"])
        numpy_call_wrapper.__init__(self)
        self.path = str(Path(path).resolve())
        self.batch_size = int(batch_size)
        self.max_len = dict(max_len) if max_len else _caps_from_config(Path(path))

    # ----------------------------------------------------------------- model side (per backend)
    def _create_model(self):
        key = (self.backend, self.path)
        if key not in _MODELS:
            _MODELS[key] = self._load()
        return _MODELS[key]

    def _load(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def input_widths(self) -> dict[str, int]:  # pragma: no cover - abstract
        """Feature count of each input (``globals``, ``charged``, ...)."""
        raise NotImplementedError

    def run_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        """y_hat (B,) of one padded batch."""
        raise NotImplementedError

    # ----------------------------------------------------------------- coffea.ml_tools interface
    def get_awkward_lib(self, *args, **kwargs):
        """awkward or dask_awkward, looking inside the features dict (coffea looks at top-level args only)."""
        flat = [v for a in (*args, *kwargs.values()) for v in (a.values() if isinstance(a, dict) else [a])]
        import awkward

        return numpy_call_wrapper.get_awkward_lib(self, *flat) or awkward

    def _call_dask(self, features: dict):
        """dask-awkward input: the eager path per partition (``dak.map_partitions``), y_hat float32 per jet.

        coffea's generic ``_call_dask`` evaluates the metadata on length-one stand-ins of each
        argument separately, which cannot describe flat content + counts of one partition.
        """
        import awkward as ak
        import dask_awkward as dak

        meta = ak.Array(ak.Array(np.zeros(0, np.float32)).layout.to_typetracer(forget_length=True))
        return dak.map_partitions(_PartitionCall(self), *(features[k] for k in ("globals",) + COLLECTIONS),
                                  meta=meta, label=f"{self.backend}-jet-model")

    def prepare_awkward(self, features: dict) -> tuple[tuple, dict]:
        """(globals flat, then per collection flat content and counts) from the ``jet_features`` layout."""
        import awkward as ak

        try:
            import dask_awkward as dak
        except ImportError:  # dask-awkward is only needed on the dask path
            dak = None
        lib = dak if dak is not None and isinstance(features["globals"], dak.Array) else ak
        if lib is ak:
            features = {k: v if isinstance(v, ak.Array) else ak.Array(v) for k, v in features.items()}
        args = [lib.flatten(features["globals"], axis=None)]
        for coll in COLLECTIONS:
            args += [lib.flatten(features[coll], axis=None), lib.num(features[coll], axis=1)]
        return tuple(args), {}

    def validate_numpy_input(self, globals_flat: np.ndarray, *blocks: np.ndarray) -> None:
        """Flat lengths must match the model's feature widths (one clear line otherwise)."""
        widths = self.input_widths()
        n_jets = len(blocks[1])
        if globals_flat.size != n_jets * widths["globals"]:
            raise BadInputError(f"{self.path}: model expects {widths['globals']} global features per jet, "
                                f"got {globals_flat.size} values for {n_jets} jets")
        for i, coll in enumerate(COLLECTIONS):
            content, counts = blocks[2 * i], blocks[2 * i + 1]
            if content.size != int(np.sum(counts)) * widths[coll]:
                raise BadInputError(f"{self.path}: input '{coll}' expects {widths[coll]} features per constituent")

    def numpy_call(self, globals_flat: np.ndarray, *blocks: np.ndarray) -> np.ndarray:
        """y_hat (n_jets,) float32 of flat jets, halved batches on out-of-memory.

        A Deep Sets model runs on the flat constituents (``flat_function``: no padding); any other is
        run padded per batch on jets ordered by length. The capped flat inputs and the padded batches
        are kept (``models.padding.PADDED``) for the next model called on the same inputs with the same
        caps and batch size, which then runs its inference only.
        """
        from models.data import pad_rows
        from models.padding import padded_entry, plan_batches, run_plan

        widths = self.input_widths()
        n = len(blocks[1])
        inputs = tuple(np.asarray(a) for a in (globals_flat,) + blocks)
        key = (tuple(sorted(widths.items())), tuple(sorted(self.max_len.items())), self.batch_size)
        entry = padded_entry(key, inputs, lambda: self._flat_inputs(widths, n, globals_flat, blocks))
        flat = entry.flat
        flat_fn = self.flat_function(widths)
        if flat_fn is not None:
            from models.flat_deepsets import predict_flat

            return predict_flat(flat_fn, flat, is_oom=_is_oom)
        if entry.plan is None:
            entry.plan = plan_batches({c: np.diff(flat[c][1]) for c in COLLECTIONS}, self.max_len, self.batch_size)
        plan = entry.plan

        def make_batch(begin: int, stop: int) -> dict[str, np.ndarray]:
            batch = entry.batches.get((begin, stop))
            if batch is None:
                rows = plan.order[begin:stop]
                batch = {"globals": flat["globals"][rows]}
                for coll in COLLECTIONS:
                    content, offsets, cap = flat[coll]
                    batch[coll], batch[f"{coll}_mask"] = pad_rows(content, offsets, rows, cap)
                entry.store(begin, stop, batch)
            return batch

        return run_plan(plan, make_batch, self.run_batch, self.batch_size, is_oom=_is_oom)

    def flat_function(self, widths: dict[str, int]):
        """A function running the model on flat constituents (``models.flat_deepsets``), or None: pad."""
        return None

    def _flat_inputs(self, widths: dict[str, int], n: int, globals_flat: np.ndarray, blocks: tuple) -> dict:
        """globals (n, G) and per collection (content (N, F) float32, offsets, cap) with at most ``cap``
        entries per jet, the hardest ones of a longer jet (``models.data.cap_rows``)."""
        from models.data import cap_rows

        flat: dict = {"globals": np.asarray(globals_flat, dtype=np.float32).reshape(n, widths["globals"])}
        for i, coll in enumerate(COLLECTIONS):
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.asarray(blocks[2 * i + 1], dtype=np.int64), out=offsets[1:])
            content = np.asarray(blocks[2 * i], dtype=np.float32).reshape(-1, widths[coll])
            cap = self.max_len.get(coll)
            flat[coll] = cap_rows(content, offsets, cap) + (cap,)
        return flat


class _PartitionCall:
    """Picklable per-partition call of a wrapper on eager awkward blocks."""

    def __init__(self, wrapper: JetModelWrapper):
        self.wrapper = wrapper

    def __call__(self, globals_, charged, neutral, sv):
        import awkward as ak

        blocks = (globals_, charged, neutral, sv)
        if any(isinstance(b, ak.Array) and ak.backend(b) == "typetracer" for b in blocks):
            for b in blocks:  # the model reads every column: tell dask-awkward's column projection
                ak.typetracer.touch_data(b)
            return ak.Array(ak.Array(np.zeros(0, np.float32)).layout.to_typetracer(forget_length=True))
        y = self.wrapper._call_awkward({"globals": globals_, "charged": charged, "neutral": neutral, "sv": sv})
        return ak.values_astype(ak.Array(np.asarray(y, dtype=np.float32)), np.float32)


class KerasJetModel(JetModelWrapper):
    """A ``.keras`` jet model through TensorFlow (GPU when TensorFlow sees one)."""

    backend = "keras"
    #: run a Deep Sets model on flat constituents (``flat_function``); False: always padded
    run_flat = True

    def _load(self):
        from models.inference import load_model

        with quiet_native_stderr():
            return load_model(self.path)

    def input_widths(self) -> dict[str, int]:
        return {inp.name.split(":")[0]: int(inp.shape[-1]) for inp in self.model.inputs
                if not inp.name.split(":")[0].endswith("_mask")}

    def flat_function(self, widths: dict[str, int]):
        """The model on flat constituents when it is a Deep Sets model (``models.flat_deepsets``), else None;
        made once per model (the key also holds the widths it was traced for)."""
        if not self.run_flat:
            return None
        key = (id(self.model), tuple(sorted(widths.items())))
        if key not in _FLAT or _FLAT[key][0] is not self.model:
            from models.flat_deepsets import flat_deepsets

            with quiet_native_stderr():
                _FLAT[key] = (self.model, flat_deepsets(self.model, widths))
        return _FLAT[key][1]

    def run_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        from models.inference import predict_function

        with quiet_native_stderr(not getattr(self, "_traced", False)):  # first call: device set-up lines
            y = np.asarray(predict_function(self.model)(batch)).reshape(-1)
        self._traced = True
        return y


class OnnxJetModel(JetModelWrapper):
    """An exported ``.onnx`` jet model through ONNX Runtime (CUDA provider when present, else CPU)."""

    backend = "onnx"

    def _load(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            return ort.InferenceSession(self.path, sess_options=options, providers=providers)
        except Exception as err:  # noqa: BLE001 - any unreadable ONNX file
            raise BadInputError(f"{self.path}: not a loadable ONNX model ({type(err).__name__}: "
                                f"{str(err).splitlines()[0][:200]})") from None

    def input_widths(self) -> dict[str, int]:
        return {i.name: int(i.shape[-1]) for i in self.model.get_inputs() if not i.name.endswith("_mask")}

    def run_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        names = [i.name for i in self.model.get_inputs()]
        return np.asarray(self.model.run(None, {k: batch[k] for k in names})[0]).reshape(-1)


def jet_model(path: str | Path, batch_size: int = 4096) -> JetModelWrapper:
    """The backend for a model file: ``.onnx`` -> ONNX Runtime, ``.keras`` -> Keras."""
    suffix = Path(path).suffix
    if suffix == ".onnx":
        return OnnxJetModel(path, batch_size)
    if suffix == ".keras":
        return KerasJetModel(path, batch_size)
    raise BadInputError(f"{path}: not a .keras or .onnx model file")
