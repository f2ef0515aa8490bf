"""The fair training protocol of the electron regression (issue 16).

Every mode (``mc``, ``data``, ``simultaneous``) gets the same optimiser-step budget
(``max_epochs`` x ``steps_per_epoch`` batches of ``batch_size``) and the same learning-rate
schedule: cosine cycles of ``epochs_per_round`` epochs (warm restarts, peak x ``lr_decay`` per
epoch, floor ``lr_floor`` x peak). A batch is drawn with probability w_kind / N_kind per electron,
so simultaneous training does not see more steps than MC-only.

Data labels (``models.zee_labels``) are a fixed-point problem: the label of an electron depends on
its partner's corrected energy, which depends on the network trained on the labels. The rounds:

1. labels (half-step targets) from the current per-electron scale ``s`` (1 at the start);
2. one LR cycle of training, warm-started from the previous round's weights;
3. the network's corrections ``f`` at the cycle's end (learning rate at its floor, so the SGD
   jitter does not masquerade as a label move); ``move`` = max over E_T bins of |median log(f / s)|;
4. ``s <- f``; converged when ``move < label_tol``, else the next round, at most ``max_label_rounds``.

After the rounds the labels are frozen and training continues until the step budget is spent or the
validation loss (checked at every cycle end) has not improved for ``patience`` cycles; the best
cycle's weights are kept. Every round's reference, label count, per-bin move and learning rate is
logged and returned; a model whose labels did not converge says so (``labels_converged`` False).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from models.train_electrons import _configure_tf, _inputs, _norm_stats, split_of, subset
from models.zee_labels import corrected_pair_labels, data_targets, label_moves, largest_move, leg_et, load_reference


def _huber(y: np.ndarray, p: np.ndarray, delta: float) -> float:
    """Mean Huber loss (log units) of predictions p against targets y."""
    r = np.abs(y - p)
    return float(np.mean(np.where(r < delta, 0.5 * r**2, delta * (r - 0.5 * delta)))) if len(r) else 0.0


def _predict(model, d: dict, flag: float) -> np.ndarray:
    """log(E_true / E_raw) predicted for every electron of ``d`` with the is_data flag ``flag``."""
    from models.electron import predict_log_correction

    return predict_log_correction(model, d["scalars"], d["cands"], d["mask"], np.full(len(d["e_raw"]), flag))


def lr_schedule(cfg):
    """The schedule of every mode: cosine cycles of ``epochs_per_round`` epochs, peak x lr_decay per epoch."""
    import keras

    cycle = max(cfg.epochs_per_round, 1) * cfg.steps_per_epoch
    return keras.optimizers.schedules.CosineDecayRestarts(
        cfg.learning_rate, cycle, t_mul=1.0, m_mul=cfg.lr_decay ** max(cfg.epochs_per_round, 1), alpha=cfg.lr_floor)


def _splits(mode: str, mc: dict | None, data: dict | None) -> dict:
    """{kind: (train, validation)} of the kinds ``mode`` trains on; one-line errors for missing inputs."""
    from core.errors import BadInputError

    sets = {}
    if mode in ("mc", "simultaneous"):
        if mc is None:
            raise BadInputError(f"--mode {mode} needs --shards-mc")
        if not np.isfinite(mc["e_true"]).any():
            raise BadInputError("MC shards have no true energy (e_true): data shards passed as MC?")
        sets["mc"] = (subset(mc, split_of(mc["pair_id"]) == 0), subset(mc, split_of(mc["pair_id"]) == 1))
    if mode in ("data", "simultaneous"):
        if data is None:
            raise BadInputError(f"--mode {mode} needs --shards-data")
        sets["data"] = (subset(data, split_of(data["pair_id"]) == 0), subset(data, split_of(data["pair_id"]) == 1))
    return sets


def _clip(y: np.ndarray, cfg) -> np.ndarray:
    """Targets with |y| >= max_abs_target (or non-finite) set to NaN (not trained on)."""
    return np.where(np.isfinite(y) & (np.abs(y) < cfg.max_abs_target), y, np.nan)


def _relabel(sets: dict, corr: dict, targets: dict, table: dict, cfg) -> dict:
    """Data targets of train and validation from the per-electron scales ``corr``; returns the round's record."""
    rec = {}
    for part, d in zip(("train", "val"), sets["data"]):
        lab, m_ref = corrected_pair_labels(d, corr[part], table, tuple(cfg.data_window))
        targets[("data", part)] = _clip(data_targets(d["e_raw"], corr[part], lab), cfg)
        if part == "train":
            ok = np.isfinite(targets[("data", part)])
            rec = {"n_labels": int(ok.sum()), "m_ref_median": float(np.median(m_ref[ok])),
                   "m_ref_range": [float(m_ref[ok].min()), float(m_ref[ok].max())]}
    return rec


def _epoch(model, sets: dict, targets: dict, flag: dict, weights: dict, cfg, rng) -> float:
    """One epoch: steps_per_epoch batches drawn with probability w_kind / N_kind; returns the training loss."""
    xs, ys, ps = [], [], []
    for kind, (tr, _) in sets.items():
        y = targets[(kind, "train")]
        ok = np.isfinite(y)
        xs.append({**subset(tr, ok), "flag": np.full(ok.sum(), flag[kind])})
        ys.append(y[ok])
        ps.append(np.full(ok.sum(), weights[kind] / max(ok.sum(), 1)))
    x = {k: np.concatenate([p[k] for p in xs]) for k in ("scalars", "cands", "mask", "flag")}
    y = np.concatenate(ys).astype(np.float32)
    p = np.concatenate(ps)
    idx = rng.choice(len(y), size=cfg.steps_per_epoch * cfg.batch_size, p=p / p.sum())
    batch = {"scalars": x["scalars"][idx], "cands": x["cands"][idx], "mask": x["mask"][idx]}
    h = model.fit(_inputs(batch, x["flag"][idx]), y[idx], batch_size=cfg.batch_size, epochs=1, shuffle=False,
                  verbose=0)
    return float(h.history["loss"][-1])


def _validation(model, sets: dict, targets: dict, flag: dict, weights: dict, cfg) -> float:
    """w_kind-weighted Huber loss on the validation splits (MC truth, frozen data labels)."""
    val = 0.0
    for kind, (_, va) in sets.items():
        yv = targets[(kind, "val")]
        ok = np.isfinite(yv)
        val += weights[kind] * _huber(yv[ok], _predict(model, subset(va, ok), flag[kind]), cfg.huber_delta)
    return val


def train_fair(mode: str, mc: dict | None, data: dict | None, cfg, out: str | Path, log=print) -> dict:
    """Train one model under the fair protocol; writes ``out`` (.keras) and its .json sidecar; returns the info."""
    import keras

    from models.electron import build_model

    _configure_tf()
    sets = _splits(mode, mc, data)
    table = load_reference(cfg.label_reference) if "data" in sets else None
    flag = {"mc": 0.0, "data": 1.0 if cfg.use_kind else 0.0}
    allrows = {k: np.concatenate([s[0][k] for s in sets.values()]) for k in ("scalars", "cands", "mask")}
    norm_s, norm_c = _norm_stats(allrows)
    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 16])
    model = build_model(cfg, norm_s, norm_c)
    loss = keras.losses.Huber(delta=cfg.huber_delta) if cfg.loss == "huber" else keras.losses.MeanAbsoluteError()
    schedule = lr_schedule(cfg)
    opt = keras.optimizers.Adam(schedule, use_ema=cfg.ema_momentum is not None, ema_momentum=cfg.ema_momentum or 0.99)
    model.compile(optimizer=opt, loss=loss)
    weights = {"mc": cfg.w_mc, "data": cfg.w_data}
    per_cycle = max(cfg.epochs_per_round, 1)

    targets = {}
    if "mc" in sets:
        for part, d in zip(("train", "val"), sets["mc"]):
            targets[("mc", part)] = _clip(np.log(d["e_true"] / d["e_raw"]), cfg)
    frozen = converged = "data" not in sets
    rounds, history = [], []
    best, best_weights, best_epoch, bad, steps = np.inf, None, -1, 0, 0
    start = time.perf_counter()
    if not frozen:
        corr = {p: np.ones(len(d["e_raw"])) for p, d in zip(("train", "val"), sets["data"])}
        rounds.append({"round": 1, "epoch": 0, **_relabel(sets, corr, targets, table, cfg)})
        log(f"  round 1 (epoch 0): {rounds[-1]['n_labels']} data labels, reference {table['sha1']} median m_ref "
            f"{rounds[-1]['m_ref_median']:.3f} GeV")
    for epoch in range(cfg.max_epochs):
        train_loss = _epoch(model, sets, targets, flag, weights, cfg, rng)
        steps += cfg.steps_per_epoch
        history.append({"epoch": epoch, "loss": train_loss, "labels_frozen": frozen})
        if (epoch + 1) % per_cycle:
            continue
        # a cycle ends here: the learning rate is at its floor
        if not frozen:
            log_f = {p: _predict(model, d, flag["data"]) for p, d in zip(("train", "val"), sets["data"])}
            # the round's move: the retrained network against the state its labels were built from
            moves = label_moves(corr["train"], np.exp(log_f["train"]), leg_et(sets["data"][0], corr["train"]))
            move = largest_move(moves)
            rounds[-1].update({"move": move, "moves_by_et": moves, "lr_end": float(schedule(steps - 1)),
                               "steps_end": steps})
            converged = move < cfg.label_tol
            frozen = converged or len(rounds) >= cfg.max_label_rounds or epoch + 1 >= cfg.max_epochs
            log(f"  label round {len(rounds)} moved the data scale by {100 * move:.3f}% (max over E_T bins)"
                + ("; converged, labels frozen" if converged else "; NOT converged, labels frozen" if frozen else ""))
            corr = {p: np.exp(v) for p, v in log_f.items()}
            rounds.append({"round": len(rounds) + 1, "epoch": epoch + 1, "final": frozen,
                           **_relabel(sets, corr, targets, table, cfg)})
            if not frozen:
                log(f"  round {len(rounds)} (epoch {epoch + 1}): {rounds[-1]['n_labels']} data labels, reference "
                    f"{table['sha1']} median m_ref {rounds[-1]['m_ref_median']:.3f} GeV")
            continue
        val = _validation(model, sets, targets, flag, weights, cfg)
        history[-1]["val"] = val
        if val < best - 1e-7:
            best, best_weights, best_epoch, bad = val, model.get_weights(), epoch, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                log(f"  early stop at epoch {epoch} (best {best_epoch}, val {best:.5f})")
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    seconds = time.perf_counter() - start
    label_rounds = [r for r in rounds if "move" in r]
    info = {"mode": mode, "trained_on_data": "data" in sets and cfg.use_kind, "config": cfg.as_dict(),
            "protocol": "fair", "optimiser_steps": steps, "best_epoch": best_epoch, "best_val": float(best),
            "labels_converged": bool(converged), "rounds_to_convergence": len(label_rounds) if converged and
            label_rounds else None, "label_rounds": rounds, "label_reference": None if table is None else
            {"source": table["source"], "sha1": table["sha1"], "m_ref_inclusive": table.get("m_ref_inclusive")},
            "train_seconds": seconds, "history": history,
            "n_train": {k: int(np.isfinite(targets[(k, "train")]).sum()) for k in sets}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    log(f"saved {out}: {steps} steps, best epoch {best_epoch}, {seconds:.0f} s"
        + ("" if "data" not in sets else f", labels {'converged in ' + str(len(label_rounds)) if converged else 'NOT converged after ' + str(len(label_rounds))} rounds"))
    return info
