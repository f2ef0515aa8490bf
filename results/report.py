"""Every correction against the L1L2 baseline (``runner.py report``).

Resolution (IQR / median of R) per pt_gen bin and pooled (pt_gen > 30 GeV in
|eta_gen| < 2.5 and 2.5-5), improvement ``1 - res / res_L1L2``, flavour medians,
flavour spread and its reduction, residual responses between flavour pairs.
Uncertainties come from a Poisson bootstrap of the histogram counts (the
correlation between a model and the baseline on the same jets is ignored, so
uncertainties on differences are conservative).
"""
from __future__ import annotations

import numpy as np

from core.errors import BadInputError
from results.metrics import QUARK_GLUON_FLAVOURS, _flow_edges, flavour_spread, hist_quantiles, response_distribution

REGIONS = {"barrel+endcap": (0.0, 2.5), "forward": (2.5, None)}
FLAVOUR_PAIRS = (("g", "uds"), ("b", "uds"), ("c", "uds"), ("g", "b"))


def _quantile_stats(counts: np.ndarray, edges: np.ndarray, n_boot: int, rng) -> dict:
    """Median, IQR, resolution with bootstrap standard deviations."""
    def stats(c):
        q25, q50, q75 = hist_quantiles(c, edges, [0.25, 0.5, 0.75])
        return np.array([q50, q75 - q25, (q75 - q25) / q50 if q50 else np.nan])

    central = stats(counts)
    if n_boot > 0 and counts.sum() > 0:
        reps = np.array([stats(rng.poisson(counts)) for _ in range(n_boot)])
        err = np.nanstd(reps, axis=0)
    else:
        err = np.full(3, np.nan)
    return {"n": float(counts.sum()), "median": float(central[0]), "median_err": float(err[0]),
            "iqr": float(central[1]), "resolution": float(central[2]), "resolution_err": float(err[2])}


def _ratio_err(a: float, ea: float, b: float, eb: float) -> float:
    return float(abs(a / b) * np.hypot(ea / a, eb / b)) if a and b else float("nan")


def build_report(out: dict, baseline: str = "L1L2", n_boot: int = 200, pt_min: float = 30.0, seed: int = 1) -> dict:
    """The report as a JSON-ready dict."""
    h = out.get("response")
    if h is None or h.sum(flow=True) == 0:
        raise BadInputError("output has no filled response histogram (no generator-matched jets)")
    rng = np.random.default_rng(seed)
    edges = _flow_edges(h.axes["response"])
    corrections = list(h.axes["correction"])
    rep = {"baseline": baseline if baseline in corrections else None, "corrections": corrections,
           "pt_min": pt_min, "pooled": {}, "flavour": {}, "pt_bins": {}, "comparison": {}}
    for corr in corrections:
        rep["pooled"][corr] = {
            region: _quantile_stats(response_distribution(h, corr, abs_eta=eta, pt_gen=(pt_min, None)), edges, n_boot, rng)
            for region, eta in REGIONS.items()}
        fl = {f: _quantile_stats(response_distribution(h, corr, flavours=[f], abs_eta=(0.0, 2.5), pt_gen=(pt_min, None)),
                                 edges, n_boot, rng) for f in QUARK_GLUON_FLAVOURS}
        medians = {f: s["median"] for f, s in fl.items()}
        rep["flavour"][corr] = {
            "median": medians, "median_err": {f: s["median_err"] for f, s in fl.items()},
            "spread": flavour_spread(medians),
            "residual": {f"{a}-{b}": medians[a] - medians[b] for a, b in FLAVOUR_PAIRS},
            "residual_err": {f"{a}-{b}": float(np.hypot(fl[a]["median_err"], fl[b]["median_err"])) for a, b in FLAVOUR_PAIRS},
        }
        pt_edges = np.asarray(h.axes["pt_gen"].edges)
        rep["pt_bins"][corr] = [
            {"pt_gen": [float(lo), float(hi)],
             **_quantile_stats(response_distribution(h, corr, abs_eta=(0.0, 2.5), pt_gen=(lo, hi)), edges, 0, rng)}
            for lo, hi in zip(pt_edges[:-1], pt_edges[1:])]
    if rep["baseline"]:
        b = rep["pooled"][baseline]
        for corr in corrections:
            if corr == baseline:
                continue
            comp = {}
            for region in REGIONS:
                m, ref = rep["pooled"][corr][region], b[region]
                comp[f"improvement_{region}"] = 1 - m["resolution"] / ref["resolution"]
                comp[f"improvement_{region}_err"] = _ratio_err(m["resolution"], m["resolution_err"],
                                                               ref["resolution"], ref["resolution_err"])
            s, s0 = rep["flavour"][corr]["spread"], rep["flavour"][baseline]["spread"]
            comp["flavour_spread"] = s
            comp["flavour_spread_baseline"] = s0
            comp["spread_reduction"] = 1 - s / s0 if s0 else float("nan")
            rep["comparison"][corr] = comp
    return rep


def to_markdown(rep: dict) -> str:
    """The report as markdown tables."""
    base = rep["baseline"]
    lines = [f"## Response summary (pt_gen > {rep['pt_min']:g} GeV)", "",
             "| correction | median R, abs(eta)<2.5 | resolution, abs(eta)<2.5 | resolution, abs(eta)>2.5 | flavour spread |"
             + (" improvement vs " + base + " | spread reduction |" if base else ""),
             "|---|---|---|---|---|" + ("---|---|" if base else "")]
    for c in rep["corrections"]:
        p = rep["pooled"][c]
        row = (f"| {c} | {p['barrel+endcap']['median']:.4f} ± {p['barrel+endcap']['median_err']:.4f} "
               f"| {p['barrel+endcap']['resolution']:.4f} ± {p['barrel+endcap']['resolution_err']:.4f} "
               f"| {p['forward']['resolution']:.4f} ± {p['forward']['resolution_err']:.4f} "
               f"| {rep['flavour'][c]['spread']:.4f} |")
        if base:
            if c in rep["comparison"]:
                cm = rep["comparison"][c]
                row += (f" {100 * cm['improvement_barrel+endcap']:.1f}% ± {100 * cm['improvement_barrel+endcap_err']:.1f}% "
                        f"| {100 * cm['spread_reduction']:.0f}% |")
            else:
                row += " - | - |"
        lines.append(row)
    lines += ["", "## Flavour medians (abs(eta) < 2.5)", "",
              "| correction | " + " | ".join(QUARK_GLUON_FLAVOURS) + " | " + " | ".join(f"{a}-{b}" for a, b in FLAVOUR_PAIRS) + " |",
              "|---|" + "---|" * (len(QUARK_GLUON_FLAVOURS) + len(FLAVOUR_PAIRS))]
    for c in rep["corrections"]:
        f = rep["flavour"][c]
        lines.append(f"| {c} | " + " | ".join(f"{f['median'][k]:.4f} ± {f['median_err'][k]:.4f}" for k in QUARK_GLUON_FLAVOURS)
                     + " | " + " | ".join(f"{f['residual'][k]:+.4f}" for k in f["residual"]) + " |")
    lines += ["", "## Resolution per pt_gen bin (abs(eta) < 2.5)", "",
              "| pt_gen [GeV] | " + " | ".join(rep["corrections"]) + " |", "|---|" + "---|" * len(rep["corrections"])]
    for i, b in enumerate(rep["pt_bins"][rep["corrections"][0]]):
        cells = []
        for c in rep["corrections"]:
            s = rep["pt_bins"][c][i]
            cells.append(f"{s['resolution']:.4f}" if s["n"] >= 20 else "-")
        if any(x != "-" for x in cells):
            lines.append(f"| {b['pt_gen'][0]:.0f}-{b['pt_gen'][1]:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


