"""The fair training protocol of the electron regression (issue 16).

Every mode (``mc``, ``data``, ``simultaneous``) gets the same optimiser-step budget
(``max_epochs`` x ``steps_per_epoch`` batches of ``batch_size``); a batch is drawn with
probability w_kind / N_kind per electron, so simultaneous training does not see more steps
than MC-only. The data labels (``models.zee_labels``) are recomputed with the corrected
partner every ``epochs_per_round`` epochs until the scale moves less than ``label_tol`` in
every E_T bin; from then on they are frozen and training stops early when the validation
loss (MC truth on the MC validation split, data labels on the data validation split) has not
improved for ``patience`` epochs; the best epoch's weights are kept. Every reference mass and
round is logged and returned.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from models.train_electrons import _configure_tf, _inputs, _norm_stats, split_of, subset
from models.zee_labels import corrected_pair_labels, data_targets, label_change, leg_et, load_reference


def _huber(y: np.ndarray, p: np.ndarray, delta: float) -> float:
    r = np.abs(y - p)
    return float(np.mean(np.where(r < delta, 0.5 * r**2, delta * (r - 0.5 * delta)))) if len(r) else 0.0


def _predict(model, d: dict, flag: float) -> np.ndarray:
    from models.electron import predict_log_correction

    return predict_log_correction(model, d["scalars"], d["cands"], d["mask"], np.full(len(d["e_raw"]), flag))


def train_fair(mode: str, mc: dict | None, data: dict | None, cfg, out: str | Path, log=print) -> dict:
    """Train one model under the fair protocol; writes ``out`` (.keras) and its .json sidecar; returns the info."""
    import keras

    from core.errors import BadInputError
    from models.electron import build_model

    _configure_tf()
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
    table = load_reference(cfg.label_reference) if "data" in sets else None
    window = tuple(cfg.data_window)
    flag = {"mc": 0.0, "data": 1.0 if cfg.use_kind else 0.0}
    allrows = {k: np.concatenate([s[0][k] for s in sets.values()]) for k in ("scalars", "cands", "mask")}
    norm_s, norm_c = _norm_stats(allrows)
    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 16])
    model = build_model(cfg, norm_s, norm_c)
    loss = keras.losses.Huber(delta=cfg.huber_delta) if cfg.loss == "huber" else keras.losses.MeanAbsoluteError()
    opt = keras.optimizers.Adam(cfg.learning_rate)
    model.compile(optimizer=opt, loss=loss)
    weights = {"mc": cfg.w_mc, "data": cfg.w_data}

    targets = {}
    if "mc" in sets:
        for part, d in zip(("train", "val"), sets["mc"]):
            y = np.log(d["e_true"] / d["e_raw"])
            targets[("mc", part)] = np.where(np.isfinite(y) & (np.abs(y) < cfg.max_abs_target), y, np.nan)
    corr = {p: np.ones(len(d["e_raw"])) for p, d in zip(("train", "val"), sets["data"])} if "data" in sets else {}
    converged = label_converged = "data" not in sets
    rounds, history = [], []
    best, best_weights, best_epoch, bad, steps = np.inf, None, -1, 0, 0
    start = time.perf_counter()
    halvings = 0
    for epoch in range(cfg.max_epochs):
        opt.learning_rate.assign(cfg.learning_rate * cfg.lr_decay**epoch * 0.5**halvings)
        if not converged and epoch % cfg.epochs_per_round == 0:
            if epoch > 0:
                new = {p: np.exp(_predict(model, d, flag["data"])) for p, d in zip(("train", "val"), sets["data"])}
                change = label_change(corr["train"], new["train"], leg_et(sets["data"][0], new["train"]))
                corr = new
                rounds[-1]["change_after"] = change
                label_converged = change < cfg.label_tol
                converged = label_converged or len(rounds) >= cfg.max_label_rounds
                log(f"  label round {len(rounds)} moved the data scale by {100 * change:.3f}% (max over E_T bins)"
                    + ("; labels frozen" if converged else ""))
            # (re)labelled with the latest corrections; after convergence these labels stay frozen
            for part, d in zip(("train", "val"), sets["data"]):
                lab, m_ref = corrected_pair_labels(d, corr[part], table, window)
                y = data_targets(d["e_raw"], corr[part], lab)
                targets[("data", part)] = np.where(np.isfinite(y) & (np.abs(y) < cfg.max_abs_target), y, np.nan)
                if part == "train":
                    ok = np.isfinite(targets[("data", part)])
                    rounds.append({"round": len(rounds) + 1, "epoch": epoch, "n_labels": int(ok.sum()),
                                   "m_ref_median": float(np.median(m_ref[ok])),
                                   "m_ref_range": [float(m_ref[ok].min()), float(m_ref[ok].max())]})
                    log(f"  round {len(rounds)} (epoch {epoch}): {ok.sum()} data labels, reference "
                        f"{table['sha1']} median m_ref {rounds[-1]['m_ref_median']:.3f} GeV")
        # one epoch = steps_per_epoch batches drawn with probability w_kind / N_kind
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
        steps += cfg.steps_per_epoch
        val = 0.0
        for kind, (_, va) in sets.items():
            yv = targets[(kind, "val")]
            ok = np.isfinite(yv)
            val += weights[kind] * _huber(yv[ok], _predict(model, subset(va, ok), flag[kind]), cfg.huber_delta)
        history.append({"epoch": epoch, "loss": float(h.history["loss"][-1]), "val": val, "labels_frozen": converged})
        if converged:
            if val < best - 1e-7:
                best, best_weights, best_epoch, bad = val, model.get_weights(), epoch, 0
            else:
                bad += 1
                halvings += 1
                if bad >= cfg.patience:
                    log(f"  early stop at epoch {epoch} (best {best_epoch}, val {best:.5f})")
                    break
    if best_weights is not None:
        model.set_weights(best_weights)
    seconds = time.perf_counter() - start
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    info = {"mode": mode, "trained_on_data": "data" in sets and cfg.use_kind, "config": cfg.as_dict(),
            "protocol": "fair", "optimiser_steps": steps, "best_epoch": best_epoch, "best_val": float(best),
            "labels_converged": bool(label_converged),
            "label_rounds": rounds, "label_reference": None if table is None else
            {"source": table["source"], "sha1": table["sha1"], "m_ref_inclusive": table.get("m_ref_inclusive")},
            "train_seconds": seconds, "history": history,
            "n_train": {k: int(np.isfinite(targets[(k, "train")]).sum()) for k in sets}}
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    log(f"saved {out}: {steps} steps, best epoch {best_epoch}, {seconds:.0f} s")
    return info
