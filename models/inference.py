"""Loading saved jet models and applying them to flattened jets."""
from __future__ import annotations

import sys
from pathlib import Path

import awkward as ak
import numpy as np

from core.errors import BadInputError


def load_model(path: str | Path):
    """A saved ``.keras`` jet model, loaded with safe_mode=True; BadInputError naming the file otherwise."""
    import keras
    import models.layers  # noqa: F401 - registers the custom layers

    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: model file does not exist")
    if path.suffix != ".keras":
        raise BadInputError(f"{path}: not a .keras model file")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # noqa: BLE001 - anything that is not a loadable model
        raise BadInputError(f"{path}: not a loadable Keras model ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if not isinstance(model, keras.Model):
        raise BadInputError(f"{path}: does not hold a Keras model")
    config_path = path.with_name(path.stem + ".config.yaml")
    if config_path.exists():
        from models.config import load_config

        _MAX_LEN[id(model)] = dict(load_config(config_path).max_constituents)
    return model


#: padding caps of loaded models (from their config.yaml), by id(model)
_MAX_LEN: dict[int, dict[str, int]] = {}
#: compiled predict functions, by id(model): (model, tf.function)
_PREDICT: dict[int, tuple[object, object]] = {}


def model_max_len(model, default: int = 128) -> dict[str, int]:
    """Per-collection padding caps stored with the model (``max_constituents`` of its config), else ``default``."""
    caps = _MAX_LEN.get(id(model))
    return dict(caps) if caps else {"charged": default, "neutral": default, "sv": default}


def set_model_max_len(model, max_len: dict[str, int]) -> None:
    """Remember the padding caps of a model built in this process (a loaded one gets them from its config)."""
    _MAX_LEN[id(model)] = dict(max_len)


def predict_function(model):
    """A tf.function of the model in inference mode, traced once for any batch size and padded length."""
    import tensorflow as tf

    if id(model) not in _PREDICT or _PREDICT[id(model)][0] is not model:
        spec = {inp.name.split(":")[0]: tf.TensorSpec((None,) + tuple(inp.shape[1:]), tf.float32)
                for inp in model.inputs}
        fn = tf.function(lambda batch: model(batch, training=False), input_signature=[spec])
        _PREDICT[id(model)] = (model, fn)
    return _PREDICT[id(model)][1]


def _check_widths(model, batch: dict[str, np.ndarray]) -> None:
    for inp in model.inputs:
        name = inp.name.split(":")[0]
        if name in batch and inp.shape[-1] is not None and batch[name].shape[-1] != inp.shape[-1]:
            raise BadInputError(f"model '{model.name}': input '{name}' expects {inp.shape[-1]} features, "
                                f"got {batch[name].shape[-1]}")


def predict_log_correction(model, features: dict[str, ak.Array | np.ndarray], batch_size: int = 4096,
                           max_len: dict[str, int] | None = None) -> np.ndarray:
    """y_hat = predicted log(pt_gen/pt_raw) (n_jets,) of flattened jets, in batches.

    ``features``: the ``jet_features`` layout (RAW features). On a GPU out-of-memory error the
    batch size is halved (and said so on stderr) until it fits.
    """
    if hasattr(model, "prepare_awkward"):  # a models.backends wrapper (Keras or ONNX Runtime)
        model.batch_size = batch_size
        if max_len:
            model.max_len = dict(max_len)
        return np.asarray(model(features), dtype=np.float32).reshape(-1)
    import tensorflow as tf

    from models.data import pad_batch

    caps = max_len or model_max_len(model)
    predict = predict_function(model)

    def make_batch(begin: int, stop: int) -> dict[str, np.ndarray]:
        batch = pad_batch({k: features[k][begin:stop] for k in ("globals", "charged", "neutral", "sv")}, caps)
        if begin == 0:
            _check_widths(model, batch)
        return batch

    return predict_in_batches(len(features["globals"]), make_batch, predict, batch_size,
                              is_oom=lambda err: isinstance(err, tf.errors.ResourceExhaustedError))


def predict_in_batches(n: int, make_batch, run_batch, batch_size: int, is_oom) -> np.ndarray:
    """``run_batch(make_batch(begin, stop))`` over ``n`` jets, y_hat (n,) float32.

    On an error that ``is_oom`` calls out-of-(device-)memory the batch size is halved (and said so on
    stderr) until the batch fits; any other error is raised.
    """
    out = np.zeros(n, dtype=np.float32)
    begin = 0
    while begin < n:
        stop = min(n, begin + batch_size)
        batch = make_batch(begin, stop)
        try:
            y = run_batch(batch)
        except Exception as err:  # noqa: BLE001 - only out-of-memory is retried
            if not is_oom(err) or batch_size <= 1:
                raise
            batch_size //= 2
            print(f"caliber: out of device memory, inference batch size halved to {batch_size}", file=sys.stderr)
            continue
        out[begin:stop] = np.asarray(y).reshape(-1)
        begin = stop
    return out
