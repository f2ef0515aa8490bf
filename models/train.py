"""Train a jet regression (Deep Sets / ParticleNet) from collected shards.

Reads the parquet shards of ``runner.py collect`` (split 0 trains, split 1 validates), feeds
them through tf.data (shuffled by jet, batched, padded per batch up to the config's caps,
prefetched), minimises the MAE on jets with |y| < max_abs_target with Adam, lowers the learning
rate on a plateau, stops early keeping the best weights, and writes ``NAME.keras`` with
``NAME.manifest.json``, ``NAME.config.yaml`` and ``NAME.history.json`` next to it.
The command line is ``commands.train``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from core.errors import BadInputError


def _loss_class():
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="caliber")
    class MaskedMAE(keras.losses.Loss):
        """Mean |y - y_hat| over jets with |y| < max_abs, averaged over those jets only."""

        def __init__(self, max_abs: float = 1.0, name: str = "masked_mae", **kwargs):
            super().__init__(name=name, **kwargs)
            self.max_abs = float(max_abs)

        def call(self, y_true, y_pred):
            y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1])
            y_pred = tf.reshape(tf.cast(y_pred, tf.float32), [-1])
            keep = tf.cast(tf.abs(y_true) < self.max_abs, tf.float32)
            n = tf.cast(tf.size(keep), tf.float32)
            # per-jet values whose batch mean is sum(keep * |d|) / n_keep
            return tf.abs(y_true - y_pred) * keep * n / tf.maximum(tf.reduce_sum(keep), 1.0)

        def get_config(self):
            return {**super().get_config(), "max_abs": self.max_abs}

    return MaskedMAE


def strategy():
    """MirroredStrategy over all GPUs when more than one is visible, the default strategy otherwise."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def output_paths(out: str | Path) -> dict[str, Path]:
    """DIR/NAME -> the model file and the files next to it."""
    out = Path(out)
    if out.suffix == ".keras":
        out = out.with_suffix("")
    return {"model": out.with_name(out.name + ".keras"), "manifest": out.with_name(out.name + ".manifest.json"),
            "config": out.with_name(out.name + ".config.yaml"), "history": out.with_name(out.name + ".history.json")}


class _Progress:
    """Keras callback printing one line per epoch (loss, val_loss, learning rate, jets/s)."""

    def __new__(cls, n_train: int, enabled: bool):
        import keras

        class Progress(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.tic = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                dt = time.perf_counter() - self.tic
                lr = float(np.asarray(self.model.optimizer.learning_rate))
                logs["learning_rate"] = lr
                logs["seconds"] = dt
                if enabled:
                    print(f"epoch {epoch + 1:3d}  loss {logs.get('loss', float('nan')):.5f}  "
                          f"val_loss {logs.get('val_loss', float('nan')):.5f}  lr {lr:.2e}  "
                          f"{dt:6.1f} s  {n_train / max(dt, 1e-9):8.0f} jets/s", flush=True)

        return Progress()


def train(shard_dir: str | Path, config, out: str | Path, epochs: int | None = None, max_jets: int | None = None,
          batch_size: int | None = None, progress: bool = True) -> dict:
    """Train ``config`` on the shards, save the model and its files; returns a summary dict.

    The summary holds ``val_loss`` (masked MAE of the best model on the validation split) and
    ``val_loss_constant`` (the same for the median of the training targets, the best constant).
    """
    import keras
    from models.data import check_features, load_split, make_dataset, masked_mae, read_shard_manifest
    from models.inference import set_model_max_len
    from models.networks import build_model
    from physics.features import FEATURE_NAMES

    shard_dir = Path(shard_dir)
    manifest = read_shard_manifest(shard_dir)
    check_features(shard_dir, manifest, FEATURE_NAMES, "model's feature builder (physics.features)")
    epochs = epochs or config.epochs
    batch_size = batch_size or config.batch_size
    keras.utils.set_random_seed(config.seed)

    t0 = time.perf_counter()
    cut = config.max_abs_target
    train_jets = load_split(shard_dir, manifest, 0, max_jets=max_jets, max_abs_target=cut)
    val_jets = load_split(shard_dir, manifest, 1, max_jets=None if max_jets is None else max(1, max_jets // 3),
                          max_abs_target=cut)
    if len(train_jets) == 0:
        raise BadInputError(f"{shard_dir}: no training jets (split 0, |y| < {cut}) in the shards")
    if len(val_jets) == 0:
        raise BadInputError(f"{shard_dir}: no validation jets (split 1, |y| < {cut}) in the shards")
    if progress:
        print(f"loaded {len(train_jets)} training and {len(val_jets)} validation jets (|y| < {cut}) "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)

    median = float(np.median(train_jets.target))
    caps = dict(config.max_constituents)
    with strategy().scope():
        model = build_model(config, manifest, output_bias=median)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                      loss=_loss_class()(max_abs=cut))
    train_ds = make_dataset(train_jets, batch_size, caps, shuffle=True, seed=config.seed)
    val_ds = make_dataset(val_jets, max(batch_size, 1024), caps, shuffle=False)
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.lr_factor, patience=config.lr_patience,
                                          min_lr=config.min_learning_rate, verbose=0),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        _Progress(len(train_jets), progress),
    ]
    tic = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=0,
                        shuffle=False)  # shuffled by jet in the pipeline
    train_seconds = time.perf_counter() - tic

    # the best model and the best constant, with the same masked MAE over the whole validation split
    set_model_max_len(model, caps)
    y_hat = _predict_table(model, val_jets, caps)
    val_loss = masked_mae(val_jets.target, y_hat, cut)
    val_loss_constant = masked_mae(val_jets.target, np.full(len(val_jets), median), cut)

    paths = output_paths(out)
    paths["model"].parent.mkdir(parents=True, exist_ok=True)
    model.save(paths["model"])
    from models.config import save_config

    save_config(config, paths["config"])
    model_manifest = {k: manifest[k] for k in ("version", "features", "norm", "target", "max_constituents") if k in manifest}
    model_manifest["ranges"] = manifest.get("ranges") or table_ranges(train_jets, manifest)
    model_manifest["target_range"] = target_range(train_jets.target)
    model_manifest["training"] = {"shards": str(shard_dir), "n_train": len(train_jets), "n_validation": len(val_jets),
                                  "val_loss": val_loss, "val_loss_constant": val_loss_constant,
                                  "constant": median, "max_abs_target": cut}
    paths["manifest"].write_text(json.dumps(model_manifest, indent=1))
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    summary = {"model": str(paths["model"]), "epochs_run": len(hist.get("loss", [])), "n_train": len(train_jets),
               "n_validation": len(val_jets), "val_loss": val_loss, "val_loss_constant": val_loss_constant,
               "constant": median, "train_seconds": train_seconds,
               "best_epoch": int(np.argmin(hist["val_loss"])) + 1 if hist.get("val_loss") else None}
    paths["history"].write_text(json.dumps({"history": hist, "summary": summary}, indent=1))
    return summary


def target_range(target: np.ndarray) -> dict:
    """min, max and the 0.1%/99.9% quantiles of the targets the model was trained on (log(pt_gen/pt_raw))."""
    from inputs.shards import RANGE_QUANTILES

    t = np.asarray(target, dtype=np.float64)
    t = t[np.isfinite(t)]
    q = np.quantile(t, RANGE_QUANTILES)
    return {"min": float(t.min()), "max": float(t.max()), "quantiles": list(RANGE_QUANTILES),
            "q_low": float(q[0]), "q_high": float(q[-1])}


def table_ranges(table, manifest: dict) -> dict:
    """Per-feature training range of a loaded JetTable (shards collected before ranges were stored)."""
    from inputs.shards import ranges_from_stats

    out = {}
    for coll in ("globals", "charged", "neutral", "sv"):
        flat = table.globals if coll == "globals" else table.content[coll]
        flat = np.asarray(flat, dtype=np.float64)
        st = {"min": [flat.min(axis=0)], "max": [flat.max(axis=0)], "sample": [flat],
              "sample_weight": [np.ones(len(flat))]} if len(flat) else {}
        out[coll] = ranges_from_stats(st, manifest["features"][coll], manifest["norm"][coll]["std"])
    return out


def _predict_table(model, table, caps: dict[str, int], batch_size: int = 4096) -> np.ndarray:
    """y_hat of every jet of a JetTable (already flat), batched through the compiled predict function."""
    from models.inference import predict_function

    predict = predict_function(model)
    out = np.zeros(len(table), dtype=np.float32)
    for begin in range(0, len(table), batch_size):
        rows = np.arange(begin, min(len(table), begin + batch_size))
        out[rows] = np.asarray(predict(table.inputs(rows, caps))).reshape(-1)
    return out


