"""``runner.py zee-study STEP``: the Z->ee electron study of issue 16, one step per table.

Steps (each writes ``STEP.json`` with numbers, seeds, sample sizes and the code version, and a
Markdown table ``STEP.md``, under ``--results``, default docs/results/zee/):

  reference   generator-level E_T-binned label reference (also models/configs/zee_label_reference.json)
  label-bias  median log(E_label/E_true) per E_T bin with a perfect partner, old vs new label
  train       modes x seeds under the fair protocol, plus the closure model (label path on MC as data)
  truth       median / eIQR / sigma_eff of E/E_true on held-out 'data' with its hidden truth; bootstrap gains
  zfit        BW x CB of held-out data m_ee, CB tail fixed from MC, fit-range / binning systematics
  closure     the label path trained on MC passed as data vs the MC-truth path, per E_T bin
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

STEPS = ("reference", "label-bias", "train", "truth", "zfit", "closure")
NAMES = {"mc": "MC-only", "data": "data-only", "simultaneous": "simultaneous"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--results", default="docs/results/zee", help="folder of the JSON + Markdown tables")
    parser.add_argument("--events", type=int, default=300_000, help="reference / label-bias: generator events")
    parser.add_argument("--seed", type=int, default=101, help="reference / label-bias: Pythia seed")
    parser.add_argument("--shards-mc", default="cache/zee_v2/shards_mc")
    parser.add_argument("--shards-data", default="cache/zee_v2/shards_data")
    parser.add_argument("--data-files", default="cache/zee_v2/data", help="'data' ROOT files + *.truth.parquet")
    parser.add_argument("--models", default="outputs/zee_v2", help="folder of the trained study models")
    parser.add_argument("--config", default="models/configs/electron_study.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--modes", nargs="+", default=["mc", "data", "simultaneous", "closure"])
    parser.add_argument("--n-boot", type=int, default=200)


def code_version() -> str:
    """git rev-parse HEAD of the checkout (read only), or 'unknown'."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _write(args, step: str, payload: dict, table: list[str]) -> None:
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"step": step, "code_version": code_version(), **payload}
    (out / f"{step}.json").write_text(json.dumps(payload, indent=1, default=float))
    (out / f"{step}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    print(f"wrote {out / (step + '.json')} and {out / (step + '.md')}")


def main(args: argparse.Namespace) -> int:
    return {"reference": _reference, "label-bias": _label_bias, "train": _train, "truth": _truth,
            "zfit": _zfit, "closure": _closure}[args.step](args)


def _reference(args) -> int:
    from models.zee_labels import DEFAULT_REFERENCE, generator_acceptance
    from physics.electrons import pair_mass, reference_table
    from samples.zee import generator_pairs

    g = generator_pairs(args.events, args.seed)
    acc = generator_acceptance(g)
    g = {k: v[acc] for k, v in g.items()}
    m = pair_mass(g["pt1"], g["eta1"], g["phi1"], g["pt2"], g["eta2"], g["phi2"])
    table = reference_table(np.concatenate([g["pt1"], g["pt2"]]), np.concatenate([m, m]))
    table.update({"generator": "Pythia 8 ffbar2gmZ, bare final-state electrons", "events": args.events,
                  "seed": args.seed, "pairs_in_acceptance": int(acc.sum())})
    DEFAULT_REFERENCE.write_text(json.dumps(table, indent=1))
    lines = ["| leg E_T bin median [GeV] | m_ref [GeV] | legs |", "|---|---|---|"]
    lines += [f"| {c:.1f} | {r:.3f} | {n} |" for c, r, n in zip(table["et_centre"], table["m_ref"], table["n_legs"])]
    _write(args, "reference", table, lines)
    return 0


def _label_bias(args) -> int:
    from models.zee_labels import load_reference, perfect_partner_bias
    from samples.zee import generator_pairs

    table = load_reference()
    g = generator_pairs(args.events, args.seed)
    res = {"events": args.events, "seed": args.seed, "reference_sha1": table["sha1"],
           "reference_seed": table.get("seed"), "rows": {}}
    for name, tab, smear in (("PDG M_Z", None, 0.0), ("E_T-binned m_ref", table, 0.0),
                             ("E_T-binned m_ref, leg smeared 2%", table, 0.02)):
        res["rows"][name] = perfect_partner_bias(g, tab, smear)
    bins = list(res["rows"]["E_T-binned m_ref"])
    lines = ["| label (perfect partner) | " + " | ".join(f"E_T {b}" for b in bins) + " |",
             "|---|" + "---|" * len(bins)]
    for name, rows in res["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * rows[b]['median_log_bias']:+.2f} ± {100 * rows[b]['stat']:.2f}%"
                                                  for b in bins) + " |")
    _write(args, "label-bias", res, lines)
    return 0


def _load(args, kinds=("mc", "data")) -> dict:
    from models.electron import ElectronModelConfig
    from models.train_electrons import load_shards

    cfg = ElectronModelConfig.from_yaml(args.config)
    return {k: load_shards(getattr(args, f"shards_{k}"), cfg.max_cands) for k in kinds}


def _train(args) -> int:
    from models.electron import ElectronModelConfig
    from models.train_zee import train_fair

    s = _load(args)
    runs = []
    for seed in args.seeds:
        for mode in args.modes:
            cfg = ElectronModelConfig.from_yaml(args.config)
            cfg.seed = seed
            out = Path(args.models) / f"{mode}_s{seed}.keras"
            print(f"== {mode} seed {seed}")
            if mode == "closure":  # the data-label path on MC passed as data (truth hidden)
                as_data = {**s["mc"], "e_true": np.full(len(s["mc"]["e_raw"]), np.nan)}
                info = train_fair("data", None, as_data, cfg, out)
            else:
                info = train_fair(mode, s["mc"], s["data"], cfg, out)
            sidecars = Path(args.results) / "models"  # committed copies of the model sidecars (outputs/ is ignored)
            sidecars.mkdir(parents=True, exist_ok=True)
            (sidecars / out.with_suffix(".json").name).write_text(out.with_suffix(".json").read_text())
            runs.append({"mode": mode, "seed": seed, "model": str(out), "steps": info["optimiser_steps"],
                         "best_epoch": info["best_epoch"], "labels_converged": info["labels_converged"],
                         "label_rounds": sum("move" in r for r in info["label_rounds"]),
                         "rounds_to_convergence": info.get("rounds_to_convergence"),
                         "last_move": next((r["move"] for r in reversed(info["label_rounds"]) if "move" in r), None),
                         "seconds": info["train_seconds"],
                         "n_train": info["n_train"]})
    previous = Path(args.results) / "train.json"
    if previous.exists():  # steps run in several calls (e.g. one mode at a time) add up in one table
        done = {(r["mode"], r["seed"]) for r in runs}
        runs = [r for r in json.loads(previous.read_text()).get("runs", []) if (r["mode"], r["seed"]) not in done] + runs
        runs.sort(key=lambda r: (["mc", "data", "simultaneous", "closure"].index(r["mode"])
                                 if r["mode"] in NAMES or r["mode"] == "closure" else 9, r["seed"]))
    lines = ["| mode | seed | optimiser steps | best epoch | label rounds | converged | last move | s |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['seed']} | {r['steps']} | {r['best_epoch']} | {r['label_rounds']} | "
              f"{r['labels_converged']} | {_percent(r.get('last_move'))} | {r['seconds']:.0f} |" for r in runs]
    labelled = [r for r in runs if r["mode"] != "mc"]
    summary = {"label_trained": len(labelled), "converged": sum(bool(r["labels_converged"]) for r in labelled),
               "not_converged": [f"{r['mode']}_s{r['seed']}" for r in labelled if not r["labels_converged"]]}
    lines += ["", f"Labels converged (< {100 * ElectronModelConfig.from_yaml(args.config).label_tol:.2f}% in every E_T bin) "
              f"in {summary['converged']} of {summary['label_trained']} label-trained models; not converged: "
              f"{', '.join(summary['not_converged']) or 'none'}."]
    _write(args, "train", {"config": args.config, "runs": runs, "convergence": summary}, lines)
    return 0


def _percent(x: float | None) -> str:
    """A fraction as '0.123%' (empty for None)."""
    return "" if x is None else f"{100 * x:.3f}%"


def _corrections(args, test: dict, kind: str, modes) -> dict:
    from models.electron_evaluation import apply_model

    return {m: [apply_model(Path(args.models) / f"{m}_s{s}.keras", test, kind) for s in args.seeds] for m in modes}


def _tests(args):
    from models.train_electrons import split_of, subset
    from models.zee_study import attach_hidden_truth

    s = _load(args)
    data_test = subset(s["data"], split_of(s["data"]["pair_id"]) == 2)
    matched = attach_hidden_truth(data_test, args.data_files)
    mc_test = subset(s["mc"], split_of(s["mc"]["pair_id"]) == 2)
    return mc_test, data_test, matched


def _truth(args) -> int:
    from models.zee_study import bootstrap_gain, truth_table

    _, test, matched = _tests(args)
    corrs = {"uncorrected": [np.ones(len(test["e_raw"]))] * len(args.seeds)}
    for m, c in _corrections(args, test, "data", ("mc", "data", "simultaneous")).items():
        corrs[NAMES[m]] = c
    table = truth_table(test, corrs)
    gains = {f"{a} vs {b}": bootstrap_gain(test, corrs[a], corrs[b], args.n_boot)
             for a, b in (("simultaneous", "MC-only"), ("data-only", "MC-only"), ("simultaneous", "data-only"),
                          ("MC-only", "uncorrected"))}
    cells = ["inclusive"] + [c for c in table["uncorrected"] if c != "inclusive" and "," not in c]
    lines = ["| cell | electrons | " + " | ".join(corrs) + " |", "|---|---|" + "---|" * len(corrs)]
    for key, label in (("eiqr", "eIQR"), ("sigma_eff", "sigma_eff"), ("median", "median")):
        for cell in cells:
            vals = " | ".join(f"{100 * table[n][cell][key]:.2f} ± {100 * table[n][cell][key + '_std']:.2f}"
                              if key != "median" else f"{table[n][cell][key]:.4f} ± {table[n][cell][key + '_std']:.4f}"
                              for n in corrs)
            lines.append(f"| {label} {cell} | {table['uncorrected'][cell]['n']} | {vals} |")
    lines += ["", "| gain in eIQR (same electrons) | mean over seeds | bootstrap σ | seed σ |", "|---|---|---|---|"]
    lines += [f"| {k} | {100 * g['gain']:+.1f}% | {100 * g['boot_std']:.1f}% | {100 * g['seed_std']:.1f}% |"
              for k, g in gains.items()]
    _write(args, "truth", {"seeds": args.seeds, "n_test_pairs": len(test["e_raw"]) // 2,
                           "electrons_with_hidden_truth": matched, "table": table, "gains": gains}, lines)
    return 0


def _zfit(args) -> int:
    from models.zee_study import zfit_rows

    mc_test, data_test, _ = _tests(args)
    ones = {"mc": np.ones(len(mc_test["e_raw"])), "data": np.ones(len(data_test["e_raw"]))}
    cm = _corrections(args, mc_test, "mc", ("mc", "data", "simultaneous"))
    cd = _corrections(args, data_test, "data", ("mc", "data", "simultaneous"))
    rows = {"uncorrected": [zfit_rows(mc_test, data_test, ones["mc"], ones["data"], True)]}
    for m in ("mc", "data", "simultaneous"):
        rows[NAMES[m]] = [zfit_rows(mc_test, data_test, cm[m][i], cd[m][i], i == 0) for i in range(len(args.seeds))]
    lines = ["| correction | peak [GeV] | sigma_CB [GeV] (tail from MC) | sigma_CB syst (range, binning) | "
             "sigma_CB free tail | sigma_eff [GeV] | MC alpha at limit |", "|---|---|---|---|---|---|---|"]
    for name, per_seed in rows.items():
        def ms(f):
            v = np.array([f(r) for r in per_seed])
            return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"
        r0 = per_seed[0]
        lines.append(f"| {name} | {ms(lambda r: r['nominal']['data']['peak'])} | {ms(lambda r: r['nominal']['data']['sigma_cb'])} | "
                     f"± {r0['sigma_cb_syst']:.3f} | {ms(lambda r: r['nominal']['data_free_tail']['sigma_cb'])} | "
                     f"{ms(lambda r: r['sigma_eff_data'])} | {r0['alpha_at_limit']}/{len(r0['variations'])} |")
    _write(args, "zfit", {"seeds": args.seeds, "n_test_pairs": {"mc": len(mc_test["e_raw"]) // 2,
                                                              "data": len(data_test["e_raw"]) // 2}, "rows": rows}, lines)
    return 0


def _closure(args) -> int:
    from models.train_electrons import split_of, subset
    from models.zee_study import closure_rows

    s = _load(args, ("mc",))
    test = subset(s["mc"], split_of(s["mc"]["pair_id"]) == 2)
    lab = _corrections(args, test, "data", ("closure",))["closure"]
    tru = _corrections(args, test, "mc", ("mc",))["mc"]
    rows = closure_rows(test, lab, tru)
    lines = ["| E_T bin | electrons | median E/E_true label path | MC-truth path | max shift (seeds) | eIQR label / truth / uncorr. |",
             "|---|---|---|---|---|---|"]
    for k, r in rows.items():
        lines.append(f"| {k} | {r['n']} | {np.mean(r['label_path_median']):.4f} ± {np.std(r['label_path_median'], ddof=1):.4f} | "
                     f"{np.mean(r['truth_path_median']):.4f} ± {np.std(r['truth_path_median'], ddof=1):.4f} | "
                     f"{100 * r['max_abs_shift']:.2f}% | {100 * np.mean(r['label_path_eiqr']):.2f} / "
                     f"{100 * np.mean(r['truth_path_eiqr']):.2f} / {100 * r['uncorrected_eiqr']:.2f}% |")
    _write(args, "closure", {"seeds": args.seeds, "n_test_pairs": len(test["e_raw"]) // 2, "rows": rows}, lines)
    return 0
