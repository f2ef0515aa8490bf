"""ONNX export of the jet and electron models (for CMSSW / Triton / ONNX Runtime).

The exported graph takes the same named inputs as the Keras model (``globals``,
``charged``, ``charged_mask``, ... for jets; ``scalars``, ``cands``, ``mask``,
``is_data`` for electrons) with a dynamic batch dimension and, where the Keras
model has one, a dynamic constituent dimension; its one output is y_hat, the
predicted log correction (n, 1). The manifest and config of the model are copied
next to the ``.onnx`` file, so an exported model is used exactly like a ``.keras`` one.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.errors import BadInputError

#: ONNX opset of the exported graphs (ONNX Runtime >= 1.17 and CMSSW 14 read it)
OPSET = 17


def sidecar_files(model_path: Path) -> list[Path]:
    """Files that travel with a model: ``<stem>.manifest.json``, ``<stem>.config.yaml`` when present."""
    return [p for p in (model_path.with_name(model_path.stem + ".manifest.json"),
                        model_path.with_name(model_path.stem + ".config.yaml")) if p.exists()]


def input_specs(model) -> list:
    """One ``tf.TensorSpec`` per Keras input, named like it, batch (and constituent) dims dynamic."""
    import tensorflow as tf

    return [tf.TensorSpec((None,) + tuple(inp.shape[1:]), tf.float32, name=inp.name.split(":")[0])
            for inp in model.inputs]


def keras_to_onnx(model, out_path: str | Path, opset: int = OPSET) -> Path:
    """Write ``model`` (a functional Keras model) as ONNX at ``out_path`` with tf2onnx."""
    import tensorflow as tf
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    patch_tf2onnx()  # numpy 2 compatibility of tf2onnx, as Keras' own ONNX export does
    specs = input_specs(model)
    names = [s.name for s in specs]

    @tf.function(input_signature=specs)
    def y_hat(*tensors):
        return {"y_hat": model(dict(zip(names, tensors)), training=False)}

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    proto, _ = tf2onnx.convert.from_function(y_hat, input_signature=specs, opset=opset,
                                             custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])})
    _freeze_captured_constants(proto, y_hat.get_concrete_function(), set(names))
    import onnx

    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))
    return out_path


def _freeze_captured_constants(proto, concrete, keep: set[str]) -> None:
    """Constant tensors a layer captured (e.g. a Normalization built with mean/variance) become
    graph inputs in tf2onnx; turn them back into initializers holding their values."""
    import numpy as np
    from onnx import numpy_helper

    values = {}
    for external, internal in concrete.graph.captures:
        if getattr(external, "dtype", None) is not None and external.dtype.name != "resource":
            values[internal.name] = np.asarray(external.numpy())
    graph = proto.graph
    for inp in list(graph.input):
        if inp.name in keep:
            continue
        if inp.name not in values:
            raise ValueError(f"ONNX export: unexpected free input {inp.name!r}")
        graph.initializer.append(numpy_helper.from_array(values[inp.name], name=inp.name))
        graph.input.remove(inp)


def _erfc_as_one_minus_erf(ctx, node, name, args) -> None:
    """tf2onnx handler: TensorFlow's Erfc (exact GELU) as ``1 - Erf(x)`` (ONNX has Erf, not Erfc)."""
    import numpy as np
    from tf2onnx import utils

    erf = ctx.make_node("Erf", [node.input[0]])
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1.0, dtype=np.float32))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def load_any_model(path: Path):
    """A ``.keras`` jet model or electron model (the electron one has a ``scalars`` input)."""
    from models.inference import load_model

    try:
        return load_model(path)
    except BadInputError:
        from models.electron import load_model as load_electron

        return load_electron(path)


def export_model(model_path: str | Path, out_dir: str | Path, opset: int = OPSET) -> Path:
    """Export ``model_path`` (.keras) to ``out_dir/<stem>.onnx`` with its manifest/config next to it."""
    model_path = Path(model_path)
    if not model_path.exists():
        raise BadInputError(f"{model_path}: model file does not exist")
    if model_path.suffix != ".keras":
        raise BadInputError(f"{model_path}: not a .keras model file")
    model = load_any_model(model_path)
    out_dir = Path(out_dir)
    out = keras_to_onnx(model, out_dir / f"{model_path.stem}.onnx", opset=opset)
    for side in sidecar_files(model_path):
        if side.resolve() != (out_dir / side.name).resolve():
            shutil.copyfile(side, out_dir / side.name)
    info = {"source": str(model_path), "opset": opset,
            "inputs": {s.name: [d if d is not None else "dynamic" for d in s.shape] for s in input_specs(model)},
            "output": "y_hat (n, 1): predicted log correction"}
    (out_dir / f"{model_path.stem}.onnx.json").write_text(json.dumps(info, indent=1))
    return out
