"""Held-out evaluation of electron models: BW x CB fits of m_ee, E/E_true resolution, figures, table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.train_electrons import _configure_tf, split_of, subset
from models.zee_labels import pair_masses


def apply_model(path: str | Path, data: dict, kind: str) -> np.ndarray:
    """Multiplicative corrections of a saved model on ``data`` rows of ``kind``."""
    from models.electron import load_model, predict_log_correction

    info_path = Path(path).with_suffix(".json")
    on_data = json.loads(info_path.read_text()).get("trained_on_data", False) if info_path.exists() else False
    model = load_model(path)
    flag = np.full(len(data["e_raw"]), 1.0 if (kind == "data" and on_data) else 0.0)
    return np.exp(predict_log_correction(model, data["scalars"], data["cands"], data["mask"], flag))


def label_provenance(path: str | Path) -> dict:
    """How a saved model's data labels were made, from its .json sidecar.

    ``method``: "fixed generator-level reference, converged rounds" (the study's path, labels converged),
    "fixed generator-level reference, NOT converged", "legacy single reference mass" (the old epoch loop,
    E_T-biased labels), "MC truth only" or "unknown" (no sidecar).
    """
    info_path = Path(path).with_suffix(".json")
    if not info_path.exists():
        return {"method": "unknown"}
    info = json.loads(info_path.read_text())
    if not info.get("trained_on_data") and info.get("mode") == "mc":
        return {"method": "MC truth only", "protocol": info.get("protocol", "legacy")}
    if info.get("protocol") != "fair":
        return {"method": "legacy single reference mass", "label_reference_mass": info.get("label_reference_mass")}
    ref = info.get("label_reference") or {}
    ok = bool(info.get("labels_converged"))
    return {"method": "fixed generator-level reference, " + ("converged rounds" if ok else "NOT converged"),
            "reference_sha1": ref.get("sha1"), "rounds_to_convergence": info.get("rounds_to_convergence"),
            "label_rounds": sum("move" in r for r in info.get("label_rounds", []))}


def evaluate(models: dict[str, str], mc: dict | None, data: dict | None, outdir: str | Path, log=print,
             all_pairs: bool = False) -> dict:
    """BW x CB fits of held-out m_ee before/after each model; MC effective IQR of E/E_true; figure + JSON.

    ``all_pairs``: the shards are a dedicated held-out sample (else the test split of the
    training shards is used).
    """
    from results.zfit import effective_iqr, fit_masses, sigma_effective

    _configure_tf()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"data": {}, "mc": {}, "labels": {name: label_provenance(path) for name, path in models.items()}}
    for name, prov in results["labels"].items():
        log(f"{name}: labels {prov['method']}" + (f" ({prov['rounds_to_convergence']} rounds)"
                                                  if prov.get("rounds_to_convergence") else ""))
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

    from results.zfit import FIT_RANGE, bw_cb_density

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
