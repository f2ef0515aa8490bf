"""Training and inference throughput (jets/s) of Deep Sets and ParticleNet at batch sizes 256 and 4096.

``python bench/model_bench.py [--shards DIR] [--models deepsets_lite particlenet ...]`` or
``runner.py bench models ...``. Without ``--shards`` it draws realistic random jets
(``models.synthetic``: falling pT spectrum, multiplicities growing with log pT). Runs on the
CPU and, when TensorFlow sees one, on the GPU. Training: Adam steps on batches already padded
by the pipeline; inference: ``predict_log_correction`` from the awkward feature layout
(padding included). Each figure is timed after one warm-up batch (tracing excluded).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODELS = ("deepsets_lite", "deepsets", "particlenet_lite", "particlenet")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", default=None, help="shard directory (else random jets)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="config names in models/configs")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--jets", type=int, default=8192, help="jets per inference measurement (at least one batch)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each figure over at least this long")
    parser.add_argument("--devices", nargs="+", default=None, help="e.g. CPU GPU (default: CPU, plus GPU if seen)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime (CPU) inference column")


def _jets(shards: str | None, n: int) -> tuple[dict, np.ndarray, dict]:
    """(features in the jet_features layout, targets, manifest) from shards or random jets."""
    import awkward as ak

    from physics.features import FEATURE_NAMES

    if shards:
        from models.data import load_split, read_shard_manifest

        man = read_shard_manifest(shards)
        table = load_split(shards, man, 0, max_jets=n)
        feats = {"globals": table.globals}
        for coll in ("charged", "neutral", "sv"):
            feats[coll] = ak.unflatten(table.content[coll], np.diff(table.offsets[coll]))
        return feats, table.target, man
    from models.synthetic import random_jets

    feats, y, _ = random_jets(n, seed=1)
    norm = {}
    for coll, names in FEATURE_NAMES.items():
        flat = np.asarray(feats[coll] if coll == "globals" else ak.to_numpy(ak.flatten(feats[coll], axis=None)),
                          np.float64).reshape(-1, len(names))
        norm[coll] = {"mean": flat.mean(0).tolist(), "std": np.maximum(flat.std(0), 1e-6).tolist()}
    return feats, y, {"features": FEATURE_NAMES, "norm": norm}


def _timed(step, n_per_call: int, min_seconds: float) -> float:
    """jets/s of ``step()`` after one warm-up call, over at least min_seconds (and at least one call)."""
    step()
    calls, tic = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        dt = time.perf_counter() - tic
        if dt >= min_seconds:
            return calls * n_per_call / dt


def edge_memory_bytes(cfg, n_features: dict[str, int], batch_size: int, training: bool) -> float:
    """Rough peak memory (bytes) of ParticleNet's edge tensors (N, P, k, C) at the padding caps; 0 for Deep Sets.

    Training keeps every edge activation for the backward pass; inference needs about one block.
    """
    if cfg.architecture != "particlenet":
        return 0.0
    per_block = []
    for coll in ("charged", "neutral"):
        width = n_features[coll]
        for channels in cfg.edge_blocks:
            edges = batch_size * cfg.max_constituents[coll] * min(cfg.k, cfg.max_constituents[coll])
            per_block.append(edges * (2 * width + 2 * sum(channels)) * 4.0)
            width = channels[-1]
    return 1.5 * sum(per_block) if training else 2.0 * max(per_block)


def physical_memory_bytes() -> float:
    return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def bench_model(name: str, feats: dict, y: np.ndarray, manifest: dict, batch_size: int, device: str,
                n_inference: int, min_seconds: float, onnx: bool = True) -> tuple[float, float, int, float]:
    """(training jets/s, inference jets/s, parameters, ONNX Runtime CPU inference jets/s) of config ``name``."""
    import keras
    import tensorflow as tf

    from models.config import load_config
    from models.data import pad_batch
    from models.inference import predict_log_correction, set_model_max_len
    from models.networks import build_model
    from models.train import _loss_class

    cfg = load_config(ROOT / "models" / "configs" / f"{name}.yaml")
    widths = {c: len(v) for c, v in manifest["features"].items()}
    limit = 0.6 * physical_memory_bytes() if device == "CPU" else float("inf")
    need_train, need_infer = (edge_memory_bytes(cfg, widths, batch_size, t) for t in (True, False))
    with tf.device(f"/{device}:0"):
        keras.utils.set_random_seed(1)
        model = build_model(cfg, manifest, output_bias=float(np.median(y)))
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=_loss_class()())
        set_model_max_len(model, cfg.max_constituents)
        n = len(y)
        # a few batches padded to one common length, so that the train step is traced once
        n_batches = max(1, min(4, n // batch_size))
        padded = pad_batch({k: feats[k][: n_batches * batch_size] for k in ("globals", "charged", "neutral", "sv")},
                           cfg.max_constituents)
        batches = [({k: v[b * batch_size:(b + 1) * batch_size] for k, v in padded.items()},
                    y[b * batch_size:(b + 1) * batch_size].reshape(-1, 1)) for b in range(n_batches)]
        state = {"i": 0}

        def train_step():
            x, t = batches[state["i"] % len(batches)]
            state["i"] += 1
            model.train_on_batch(x, t)

        train_rate = _timed(train_step, len(batches[0][1]), min_seconds) if need_train < limit else float("nan")
        sub = {k: feats[k][: max(n_inference, batch_size)] for k in ("globals", "charged", "neutral", "sv")}
        n_inf = len(sub["globals"])
        infer_rate = (_timed(lambda: predict_log_correction(model, sub, batch_size=batch_size), n_inf, min_seconds)
                      if need_infer < limit else float("nan"))
    for what, need, rate in (("training", need_train, train_rate), ("inference", need_infer, infer_rate)):
        if np.isnan(rate):
            print(f"  ({name} {what} at batch {batch_size} on {device} skipped: needs ~{need / 1e9:.0f} GB "
                  f"of edge tensors, over 60% of this machine's {physical_memory_bytes() / 1e9:.0f} GB)")
    onnx_rate = (onnx_inference_rate(model, cfg.max_constituents, sub, batch_size, min_seconds)
                 if onnx and device == "CPU" and need_infer < limit else float("nan"))
    return train_rate, infer_rate, model.count_params(), onnx_rate


def onnx_inference_rate(model, max_len: dict[str, int], sub: dict, batch_size: int, min_seconds: float) -> float:
    """CPU jets/s of ``model`` exported to ONNX and run by ONNX Runtime (``models.backends.OnnxJetModel``),
    on the same jets, padding and batch size as the Keras figure."""
    import tempfile
    import warnings

    from models.backends import OnnxJetModel
    from models.export import keras_to_onnx

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = keras_to_onnx(model, Path(tmp) / "bench.onnx")
        wrapper = OnnxJetModel(path, batch_size=batch_size, max_len=max_len)
        return _timed(lambda: wrapper(sub), len(sub["globals"]), min_seconds)


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from models.backends import quiet_native_stderr

    with quiet_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # device set-up lines, silenced

    devices = args.devices or (["CPU"] + (["GPU"] if tf.config.list_physical_devices("GPU") else []))
    n = max(args.jets, max(args.batch_sizes) * 2)
    feats, y, manifest = _jets(args.shards, n)
    source = args.shards or "random jets (models.synthetic)"
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    print(f"model throughput, jets from {source}; CPU threads: intra {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} "
          f"(os.cpu_count() = {os.cpu_count()}); GPUs: {gpus or 'none'}")
    print(f"{'model':18s} {'params':>9s} {'device':6s} {'batch':>6s} {'train jets/s':>13s} {'infer jets/s':>13s}"
          f" {'ORT-CPU jets/s':>15s} {'ORT/TF':>7s}")
    for device in devices:
        for name in args.models:
            for bs in args.batch_sizes:
                tr, inf, params, ort = bench_model(name, feats, y, manifest, bs, device, args.jets, args.min_seconds,
                                                   onnx=not args.no_onnx)
                fmt = lambda r, w=13: f"{r:{w}.0f}" if np.isfinite(r) else f"{'-':>{w}s}"  # noqa: E731
                ratio = f"{ort / inf:7.2f}" if np.isfinite(ort) and np.isfinite(inf) else f"{'-':>7s}"
                print(f"{name:18s} {params:9d} {device:6s} {bs:6d} {fmt(tr)} {fmt(inf)} {fmt(ort, 15)} {ratio}",
                      flush=True)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    sys.exit(main(p.parse_args()))
