"""Train and evaluate the electron regression on Z->ee shards (MC truth and data Z-mass labels).

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

``python -m models.train_electrons evaluate ...`` fits m_ee (BW x CB) on held-out data
before and after each model, the same on MC with the effective-IQR resolution of
E/E_true, prints a table and draws the peaks.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from processors.electrons import CAND_FEATURES, LABEL_WINDOW, M_Z, SCALAR_FEATURES, mass_constraint_label, pair_mass

MODES = ("mc", "data", "simultaneous")
CONFIG_DEFAULT = Path(__file__).parent / "configs" / "electron.yaml"


def add_electron_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``runner.py train --task electrons``."""
    g = parser.add_argument_group("electron regression")
    g.add_argument("--mode", choices=MODES, default="simultaneous",
                   help="mc: MC truth only; data: Z-mass labels on data only; simultaneous: both losses")
    g.add_argument("--shards-mc", default=None, help="directory of MC electron shards (collect --processor electrons)")
    g.add_argument("--shards-data", default=None, help="directory of data electron shards")
    g.add_argument("--electron-config", default=None,
                   help=f"electron model YAML (default {CONFIG_DEFAULT.relative_to(Path(__file__).parents[1])})")
    g.add_argument("--w-mc", type=float, default=None, help="override the MC loss weight")
    g.add_argument("--w-data", type=float, default=None, help="override the data loss weight")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Standalone CLI (``python -m models.train_electrons train ...``)."""
    add_electron_arguments(parser)
    parser.add_argument("--config", default=None, help="alias of --electron-config")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--out", required=True, help="output .keras path")


# --------------------------------------------------------------------------- data

def pad_candidates(cands, max_cands: int) -> tuple[np.ndarray, np.ndarray]:
    """Jagged candidate records (per electron) -> (n, max_cands, F) float32 array and (n, max_cands) mask."""
    import awkward as ak

    n = len(cands)
    out = np.zeros((n, max_cands, len(CAND_FEATURES)), dtype=np.float32)
    if n == 0:
        return out, np.zeros((0, max_cands), np.float32)
    cands = cands[:, :max_cands]
    counts = ak.to_numpy(ak.num(cands)).astype(np.int64)
    mask = (np.arange(max_cands)[None, :] < counts[:, None]).astype(np.float32)
    fields = ak.fields(cands)
    for j, name in enumerate(CAND_FEATURES):
        if name not in fields:
            continue
        flat = ak.to_numpy(ak.flatten(cands[name])).astype(np.float32)
        out[:, :, j][mask.astype(bool)] = flat
    return out, mask


def load_shards(directory: str | Path, max_cands: int) -> dict:
    """All parquet shards in ``directory`` as numpy arrays, pairs adjacent (leg 0 then leg 1)."""
    import awkward as ak

    from processors.execution import BadInputError

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


def corrected_pair_labels(data: dict, corr: np.ndarray, window: tuple[float, float] = LABEL_WINDOW) -> np.ndarray:
    """Z-mass labels (GeV) of each electron from its partner's corrected energy; NaN outside the window.

    ``data`` rows are pairs (leg 0, leg 1) adjacent; ``corr`` the multiplicative corrections.
    """
    e = data["e_raw"] * corr
    eta, phi = data["eta"], data["phi"]
    e1, e2 = e[0::2], e[1::2]
    et1, et2 = e1 / np.cosh(eta[0::2]), e2 / np.cosh(eta[1::2])
    d_eta, d_phi = eta[0::2] - eta[1::2], phi[0::2] - phi[1::2]
    m = pair_mass(et1, eta[0::2], phi[0::2], et2, eta[1::2], phi[1::2])
    inside = (m > window[0]) & (m < window[1])
    lab = np.empty_like(e)
    lab[0::2] = np.where(inside, mass_constraint_label(et2, d_eta, d_phi) * np.cosh(eta[0::2]), np.nan)
    lab[1::2] = np.where(inside, mass_constraint_label(et1, d_eta, d_phi) * np.cosh(eta[1::2]), np.nan)
    return lab


def data_targets(e_raw: np.ndarray, corr: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Training target log(E_target / E_raw) for data: half way, in log, from the current
    corrected energy to its Z label built with the corrected partner.

    A label scales as 1 / (partner energy): training straight on it makes the
    scale iteration y <- D - y (D = log(M_Z^2 / m^2)) oscillate between D and 0.
    The half step y <- (y + (D - y)) / 2 = D / 2 is its fixed point (both legs scaled
    by M_Z / m), reached from the first round on.
    """
    return 0.5 * (np.log(label / e_raw) + np.log(corr))


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


def pair_masses(data: dict, corr: np.ndarray | None = None) -> np.ndarray:
    """m_ee (GeV) per pair with energies e_raw * corr."""
    e = data["e_raw"] * (1.0 if corr is None else corr)
    eta, phi = data["eta"], data["phi"]
    return pair_mass(e[0::2] / np.cosh(eta[0::2]), eta[0::2], phi[0::2], e[1::2] / np.cosh(eta[1::2]),
                     eta[1::2], phi[1::2])


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
    from processors.execution import BadInputError

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
            lab = corrected_pair_labels(train_data, corr_data, tuple(cfg.data_window)) * (m_ref / M_Z) ** 2
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


def main(args: argparse.Namespace) -> int:
    """``runner.py train --task electrons`` entry point."""
    from models.electron import ElectronModelConfig

    # --electron-config wins; a shared --config is used only when it names an electron config
    generic = getattr(args, "config", None)
    cfg_path = getattr(args, "electron_config", None) or (
        generic if generic and Path(generic).name.startswith("electron") else None) or CONFIG_DEFAULT
    cfg = ElectronModelConfig.from_yaml(cfg_path)
    if getattr(args, "epochs", None):
        cfg.epochs = args.epochs
    if getattr(args, "w_mc", None) is not None:
        cfg.w_mc = args.w_mc
    if getattr(args, "w_data", None) is not None:
        cfg.w_data = args.w_data
    # data-only mode uses MC shards, when given, only for the reference mass of the labels
    mc = load_shards(args.shards_mc, cfg.max_cands) if args.shards_mc else None
    data = load_shards(args.shards_data, cfg.max_cands) if args.shards_data and args.mode != "mc" else None
    train(args.mode, mc, data, cfg, args.out)
    return 0


# --------------------------------------------------------------------------- evaluation

def apply_model(path: str | Path, data: dict, kind: str) -> np.ndarray:
    """Multiplicative corrections of a saved model on ``data`` rows of ``kind``."""
    from models.electron import load_model, predict_log_correction

    info_path = Path(path).with_suffix(".json")
    on_data = json.loads(info_path.read_text()).get("trained_on_data", False) if info_path.exists() else False
    model = load_model(path)
    flag = np.full(len(data["e_raw"]), 1.0 if (kind == "data" and on_data) else 0.0)
    return np.exp(predict_log_correction(model, data["scalars"], data["cands"], data["mask"], flag))


def evaluate(models: dict[str, str], mc: dict | None, data: dict | None, outdir: str | Path, log=print,
             all_pairs: bool = False) -> dict:
    """BW x CB fits of held-out m_ee before/after each model; MC effective IQR of E/E_true; figure + JSON.

    ``all_pairs``: the shards are a dedicated held-out sample (else the test split of the
    training shards is used).
    """
    from models.zfit import effective_iqr, fit_masses, sigma_effective

    _configure_tf()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"data": {}, "mc": {}}
    masses: dict = {}
    for kind, sample in (("data", data), ("mc", mc)):
        if sample is None:
            continue
        test = sample if all_pairs else subset(sample, split_of(sample["pair_id"]) == 2)
        corrs = {"uncorrected": np.ones(len(test["e_raw"]))}
        for name, path in models.items():
            corrs[name] = apply_model(path, test, kind)
        masses[kind] = {}
        for name, corr in corrs.items():
            m = pair_masses(test, corr)
            masses[kind][name] = m
            fit = fit_masses(m)
            row = fit.as_dict()
            row["sigma_eff"] = sigma_effective(m)
            if kind == "mc":
                ok = np.isfinite(test["e_true"])
                row["iqr_resolution"] = effective_iqr(test["e_raw"][ok] * corr[ok] / test["e_true"][ok])
                row["median_response"] = float(np.median(test["e_raw"][ok] * corr[ok] / test["e_true"][ok]))
            results[kind][name] = row
            log(f"{kind:4s} {name:14s} {fit} sigma_eff {row['sigma_eff']:.3f}"
                + (f"  IQR res {row['iqr_resolution']:.4f}" if kind == "mc" else ""))
        results[kind]["n_pairs"] = int(len(test["e_raw"]) // 2)
    (outdir / "zee_eval.json").write_text(json.dumps(results, indent=1))
    if "data" in masses:
        draw_peaks(masses["data"], results["data"], outdir / "zee_peaks_data.png")
    if "mc" in masses:
        draw_peaks(masses["mc"], results["mc"], outdir / "zee_peaks_mc.png", title="held-out MC")
    write_table(results, outdir / "zee_table.md")
    return results


def draw_peaks(masses: dict, fits: dict, path: Path, title: str = "held-out 'data'") -> None:
    """m_ee histograms with the fitted BW x CB curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    from models.zfit import FIT_RANGE, bw_cb_density

    plt.style.use(hep.style.CMS)
    fig, ax = plt.subplots(figsize=(9, 7))
    edges = np.arange(FIT_RANGE[0], FIT_RANGE[1] + 0.25, 0.5)
    colours = {"uncorrected": "grey", "mc_only": "tab:blue", "data_only": "tab:green", "simultaneous": "tab:red"}
    for name, m in masses.items():
        counts, _ = np.histogram(m, bins=edges)
        c = colours.get(name)
        hep.histplot(counts, edges, ax=ax, label=None, color=c, histtype="errorbar", markersize=3, alpha=0.6)
        f = fits[name]
        grid, dens = bw_cb_density(edges, f["dm"], f["sigma_cb"], f["alpha"], f["n"], *FIT_RANGE)
        ax.plot(grid, dens * counts.sum() * 0.5, color=c,
                label=f"{name}: $\\sigma_{{CB}}$={f['sigma_cb']:.2f}$\\pm${f['sigma_cb_err']:.2f}, "
                      f"peak {f['peak']:.2f}$\\pm${f['peak_err']:.2f}")
    ax.set_xlim(*FIT_RANGE)
    ax.set_xlabel(r"$m_{ee}$ [GeV]")
    ax.set_ylabel("pairs / 0.5 GeV")
    ax.set_title(f"Z$\\to$ee, {title}", fontsize=16)
    ax.legend(fontsize=11, loc="upper left")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def write_table(results: dict, path: Path) -> None:
    lines = ["| sample | correction | peak [GeV] | sigma_CB [GeV] | sigma_eff 68% [GeV] | E/E_true IQR res. |",
             "|---|---|---|---|---|---|"]
    for kind in ("data", "mc"):
        for name, r in results.get(kind, {}).items():
            if not isinstance(r, dict):
                continue
            iqr = f"{r['iqr_resolution']:.4f}" if "iqr_resolution" in r else "n/a (no truth)"
            lines.append(f"| {kind} | {name} | {r['peak']:.3f} ± {r['peak_err']:.3f} | "
                         f"{r['sigma_cb']:.3f} ± {r['sigma_cb_err']:.3f} | {r['sigma_eff']:.3f} | {iqr} |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _cli(argv: list[str] | None = None) -> int:
    """``python -m models.train_electrons train|evaluate ...``."""
    import sys

    from models.electron import ElectronModelConfig
    from processors.execution import BadInputError

    parser = argparse.ArgumentParser(prog="python -m models.train_electrons")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_arguments(sub.add_parser("train", help="train one electron model"))
    ev = sub.add_parser("evaluate", help="fit held-out m_ee before/after models")
    ev.add_argument("--shards-mc", default=None)
    ev.add_argument("--shards-data", default=None)
    ev.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    ev.add_argument("--out", default="outputs/electrons")
    ev.add_argument("--all-pairs", action="store_true",
                    help="the shards are a dedicated held-out sample: use every pair, not the test split")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "train":
            return main(args)
        max_cands = ElectronModelConfig().max_cands
        mc = load_shards(args.shards_mc, max_cands) if args.shards_mc else None
        data = load_shards(args.shards_data, max_cands) if args.shards_data else None
        models = dict(item.split("=", 1) for item in args.model)
        evaluate(models, mc, data, args.out, all_pairs=args.all_pairs)
        return 0
    except BadInputError as err:
        print(f"train_electrons: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(_cli())
