"""Train the electron regression on Z->ee shards (MC truth and data Z-mass labels).

``runner.py train --task electrons --mode mc|data|simultaneous --shards-mc DIR --shards-data DIR
--config models/configs/electron.yaml --out outputs/electrons/simultaneous.keras``

Loss = w_mc * L(MC: log(E_true/E_reco)) + w_data * L(data: log(E_label/E_reco)), L a
Huber loss with a small delta (MAE-like: robust against the long tails of the labels).

The data label of an electron is E_label,1 = M_Z^2 / (2 E_T,2 (cosh d_eta - cos d_phi)) cosh eta_1,
built from its partner. Why it is (nearly) unbiased, and how we keep it so:

  log E_label,1 = log E_true,1 + log(M_Z^2 / m_true^2) - log(E_2 / E_true,2)

* the Breit-Wigner term is symmetric around 0 near the peak, so it only adds noise;
* the partner term is the partner's residual: with the *raw* partner it carries the
  partner's scale offset and brem tail. The labels are therefore recomputed
  ``label_rounds`` times with the partner corrected by the current model, and the target
  is the half-way point (in log) between the electron's current corrected energy and
  its label (``data_targets``): a label scales as 1/(partner energy), so the plain
  label would make the common scale oscillate (2x, 0, 2x, ...); the half step
  converges to the energy scale that puts the pairs on M_Z;
* the 86-97 GeV window is applied to the mass recomputed with the corrected energies,
  so electrons with large (now corrected) losses re-enter the label set instead of
  being cut away (a one-sided selection would bias the scale);
* a median-type (MAE/Huber) loss on a target plus independent symmetric noise keeps the
  conditional median of the target;
* the Z line shape of the final-state electrons (FSR, parton luminosities) has its in-window
  median below M_Z (90.9 GeV here): the labels are scaled by (m_ref / M_Z)^2, with m_ref the
  in-window median of the MC pairs at their true energies (``reference_mass``) and, in
  simultaneous training, from round 2 on, of the MC pairs with their current corrections.

Evaluation (``runner.py evaluate-electrons``) lives in ``models.electron_evaluation``.

The default config (``configs/electron.yaml``, ``steps_per_epoch: 50``) does not come here: it trains with
``models.train_zee.train_fair``, the method of the Z->ee study. This epoch-based loop (config
``steps_per_epoch: 0``) is the legacy one: its single reference mass
leaves an E_T-dependent label bias and its steering follows the unconverged MC. A config with
``steps_per_epoch > 0`` (``configs/electron_study.yaml``) trains with ``models.train_zee``: equal
optimiser steps, early stopping, E_T-binned generator-level reference (``models.zee_labels``).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from core.constants import M_Z
from models.electron import pad_candidates
from models.zee_labels import corrected_pair_labels, data_targets, pair_masses
from physics.electrons import CAND_FEATURES, LABEL_WINDOW, SCALAR_FEATURES

MODES = ("mc", "data", "simultaneous")
CONFIG_DEFAULT = Path(__file__).parent / "configs" / "electron.yaml"


# --------------------------------------------------------------------------- data


def load_shards(directory: str | Path, max_cands: int) -> dict:
    """All parquet shards in ``directory`` as numpy arrays, pairs adjacent (leg 0 then leg 1)."""
    import awkward as ak

    from core.errors import BadInputError

    directory = Path(directory)
    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    if not files:
        raise BadInputError(f"{directory}: no electron shards (*.parquet) found; run "
                            "`runner.py collect --processor electrons` first")
    parts = []
    for f in files:
        try:
            parts.append(ak.from_parquet(f))
        except Exception as err:
            raise BadInputError(f"{f}: cannot be read as a parquet shard ({type(err).__name__}: {err})") from None
    table = ak.concatenate(parts)
    need = {"pair_id", "leg", "e_raw", "kind", "cands"} | {f"f_{k}" for k in SCALAR_FEATURES}
    missing = need - set(table.fields)
    if missing:
        raise BadInputError(f"{directory}: shards miss columns {sorted(missing)} (not electron shards?)")
    pair_id = ak.to_numpy(table.pair_id)
    leg = ak.to_numpy(table.leg)
    order = np.lexsort((leg, pair_id))
    table = table[order]
    pair_id, leg = pair_id[order], leg[order]
    # keep complete pairs only
    ok = np.zeros(len(pair_id), bool)
    full = (leg[:-1] == 0) & (leg[1:] == 1) & (pair_id[:-1] == pair_id[1:])
    ok[:-1] |= full
    ok[1:] |= full
    table = table[ok]
    cands, mask = pad_candidates(table.cands, max_cands)
    data = {k: ak.to_numpy(table[k]) for k in ("pair_id", "leg", "e_raw", "e_label", "e_true", "m_ee", "eta", "phi")}
    data["event"] = ak.to_numpy(table["event"]).astype(np.int64) if "event" in table.fields else np.zeros(len(table), np.int64)
    data["kind"] = np.asarray(ak.to_list(table.kind))
    data["scalars"] = np.stack([ak.to_numpy(table[f"f_{k}"]).astype(np.float32) for k in SCALAR_FEATURES], axis=1)
    data["cands"], data["mask"] = cands, mask
    return data


def split_of(pair_id: np.ndarray) -> np.ndarray:
    """0 train, 1 validation, 2 test, from the pair id (both legs of a pair in the same split)."""
    r = np.asarray(pair_id) % 10
    return np.where(r < 2, 2, np.where(r == 2, 1, 0))


def subset(data: dict, keep: np.ndarray) -> dict:
    return {k: v[keep] for k, v in data.items()}


def reference_mass(mc: dict, window: tuple[float, float] = LABEL_WINDOW) -> float:
    """Median m_ee (GeV) inside ``window`` of MC pairs with both legs at their true energies.

    The Z line shape of the final-state electrons (FSR, parton luminosities, gamma* interference)
    has its in-window median below M_Z; steering data labels to M_Z itself would put the
    corrected peak above the true one by that difference.
    """
    return in_window_median_mass(mc, mc["e_true"] / mc["e_raw"], window)  # NaN e_true: pair left out


def in_window_median_mass(data: dict, corr: np.ndarray, window: tuple[float, float] = LABEL_WINDOW) -> float:
    """Median m_ee (GeV) of the pairs inside ``window`` with energies e_raw * corr; M_Z when none is."""
    m = pair_masses(data, corr)
    m = m[(m > window[0]) & (m < window[1])]
    return float(np.median(m)) if len(m) else M_Z


def _norm_stats(data: dict) -> tuple[tuple, tuple]:
    s = data["scalars"]
    sm, ss = s.mean(axis=0), s.std(axis=0) + 1e-6
    m = data["mask"].astype(bool)
    c = data["cands"][m] if m.any() else np.zeros((1, len(CAND_FEATURES)), np.float32)
    return (sm, ss), (c.mean(axis=0), c.std(axis=0) + 1e-6)


def _inputs(data: dict, is_data: np.ndarray) -> dict:
    return {"scalars": data["scalars"], "cands": data["cands"], "mask": data["mask"],
            "is_data": is_data.reshape(-1, 1).astype(np.float32)}


# --------------------------------------------------------------------------- training

def _configure_tf(threads: int = 2) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised


def train(mode: str, mc: dict | None, data: dict | None, cfg, out: str | Path, log=print) -> dict:
    """Train one model; returns the metrics dict (also written next to the model as JSON)."""
    import keras

    from models.electron import build_model, predict_log_correction
    from core.errors import BadInputError

    _configure_tf()
    parts = []
    if mode in ("mc", "simultaneous"):
        if mc is None:
            raise BadInputError(f"--mode {mode} needs --shards-mc")
        parts.append(("mc", subset(mc, split_of(mc["pair_id"]) == 0)))
    if mode in ("data", "simultaneous"):
        if data is None:
            raise BadInputError(f"--mode {mode} needs --shards-data")
        parts.append(("data", subset(data, split_of(data["pair_id"]) == 0)))
    train_mc = dict(parts)["mc"] if "mc" in dict(parts) else None
    train_data = dict(parts)["data"] if "data" in dict(parts) else None
    if train_mc is not None and not np.isfinite(train_mc["e_true"]).any():
        raise BadInputError("MC shards have no true energy (e_true): data shards passed as MC?")
    allrows = {k: np.concatenate([p[k] for _, p in parts]) for k in parts[0][1]}
    norm_s, norm_c = _norm_stats(allrows)
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg, norm_s, norm_c)
    loss = keras.losses.Huber(delta=cfg.huber_delta) if cfg.loss == "huber" else keras.losses.MeanAbsoluteError()
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=loss)
    on_data = mode != "mc"
    flags = {"mc": np.zeros, "data": (np.ones if cfg.use_kind else np.zeros)}
    rounds = cfg.label_rounds if train_data is not None else 1
    epochs_per_round = [cfg.epochs // rounds + (1 if r < cfg.epochs % rounds else 0) for r in range(rounds)]
    corr_data = np.ones(len(train_data["e_raw"])) if train_data is not None else None
    m_ref = cfg.label_reference_mass or (
        reference_mass(subset(mc, split_of(mc["pair_id"]) == 0), tuple(cfg.data_window)) if mc is not None else M_Z)
    if train_data is not None:
        log(f"data labels steered to the in-window median m_ee {m_ref:.3f} GeV (M_Z = {M_Z} GeV)")
    history = []
    start = time.perf_counter()
    lr_sched = None
    for r, n_ep in enumerate(epochs_per_round):
        xs, ys, ws = [], [], []
        totals = {}
        if train_mc is not None:
            y = np.log(train_mc["e_true"] / train_mc["e_raw"])
            ok = np.isfinite(y) & (np.abs(y) < cfg.max_abs_target)
            xs.append(subset(train_mc, ok))
            ys.append(y[ok])
            ws.append(np.full(ok.sum(), cfg.w_mc / max(ok.sum(), 1)))
            totals["mc"] = int(ok.sum())
        if train_data is not None:
            # the legacy label: one reference mass for every leg (M_Z, rescaled to m_ref)
            lab = corrected_pair_labels(train_data, corr_data, None, tuple(cfg.data_window))[0] * (m_ref / M_Z) ** 2
            y = data_targets(train_data["e_raw"], corr_data, lab)
            ok = np.isfinite(y) & (np.abs(y) < cfg.max_abs_target)
            xs.append(subset(train_data, ok))
            ys.append(y[ok])
            ws.append(np.full(ok.sum(), cfg.w_data / max(ok.sum(), 1)))
            totals["data"] = int(ok.sum())
        x = {k: np.concatenate([p[k] for p in xs]) for k in xs[0]}
        kinds = np.concatenate([np.full(len(p["e_raw"]), 1.0 if (k == "data" and cfg.use_kind) else 0.0)
                                for (k, _), p in zip([(k, None) for k in totals], xs)])
        y = np.concatenate(ys).astype(np.float32)
        w = np.concatenate(ws)
        w = (w * len(w) / w.sum()).astype(np.float32)
        log(f"round {r + 1}/{rounds}: {n_ep} epochs on {totals}")
        if r == rounds - 1:
            # final round: decay the learning rate to sharpen the fit
            lr_sched = keras.callbacks.LearningRateScheduler(
                lambda ep, lr: float(cfg.learning_rate * (0.3 ** (ep / max(n_ep - 1, 1)))))
        h = model.fit(_inputs(x, kinds), y, sample_weight=w, batch_size=cfg.batch_size, epochs=n_ep,
                      shuffle=True, verbose=0, callbacks=[lr_sched] if lr_sched else [])
        history.extend(float(v) for v in h.history["loss"])
        log(f"  loss {h.history['loss'][0]:.5f} -> {h.history['loss'][-1]:.5f}")
        if train_data is not None:
            corr_data = np.exp(predict_log_correction(model, train_data["scalars"], train_data["cands"],
                                                      train_data["mask"],
                                                      np.full(len(train_data["e_raw"]), 1.0 if cfg.use_kind else 0.0)))
            if train_mc is not None and not cfg.label_reference_mass:
                # simultaneous: steer data to where the corrected MC pairs sit, resolution tails included
                corr_mc = np.exp(predict_log_correction(model, train_mc["scalars"], train_mc["cands"],
                                                        train_mc["mask"], np.zeros(len(train_mc["e_raw"]))))
                m_ref = in_window_median_mass(train_mc, corr_mc, tuple(cfg.data_window))
                log(f"  next round: data labels steered to the corrected-MC in-window median m_ee {m_ref:.3f} GeV")
    seconds = time.perf_counter() - start
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    info = {"mode": mode, "trained_on_data": on_data and cfg.use_kind, "config": cfg.as_dict(),
            "label_reference_mass": m_ref,
            "train_seconds": seconds, "loss_history": history, "n_train": totals}
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    log(f"saved {out} ({seconds:.0f} s)")
    return info
