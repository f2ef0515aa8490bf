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

#: a row with more than this fraction of its jets out of domain, clipped or non-finite is not to be trusted
TRUST_MAX_FRACTION = 0.01
#: cutflow counters (``<row>_<name>``) that make a row doubtful; ``undefined``: reference rows without a value
DOUBT_COUNTS = ("out_of_domain", "clipped", "nonfinite")
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


def trust_summary(cutflow: dict, corrections: list[str], max_fraction: float = TRUST_MAX_FRACTION) -> dict:
    """Per row with domain counts (summed over datasets): jets, counts, fractions and a verdict.

    ``trusted`` is False when any of out_of_domain, clipped, nonfinite exceeds ``max_fraction``
    of the row's jets; ``undefined`` (reference rows: no regression value, left out) is reported, not judged.
    """
    out = {}
    for corr in corrections:
        jets = sum(int(c.get(f"{corr}_jets", 0)) for c in cutflow.values())
        counts = {k: sum(int(c.get(f"{corr}_{k}", 0)) for c in cutflow.values()) for k in DOUBT_COUNTS + ("undefined",)}
        if not jets:
            continue
        fractions = {k: v / jets for k, v in counts.items()}
        out[corr] = {"jets": jets, "counts": counts, "fractions": fractions,
                     "trusted": all(fractions[k] <= max_fraction for k in DOUBT_COUNTS)}
    return out


def trust_lines(rep: dict) -> list[str]:
    """One line per row with domain counts: 'NOT TO BE TRUSTED' with the fractions, or what was left out."""
    lines = []
    for corr, t in rep.get("trust", {}).items():
        f, c = t["fractions"], t["counts"]
        if not t["trusted"]:
            lines.append(f"- **{corr}: NOT TO BE TRUSTED** on these jets: {100 * f['out_of_domain']:.1f}% out of the "
                         f"training domain, {100 * f['clipped']:.1f}% corrections clipped to the training range, "
                         f"{100 * f['nonfinite']:.1f}% non-finite (of {t['jets']} jets); its numbers below are not a result.")
        elif any(c[k] for k in DOUBT_COUNTS):
            lines.append(f"- {corr}: {c['out_of_domain']} out of domain, {c['clipped']} clipped, {c['nonfinite']} "
                         f"non-finite of {t['jets']} jets (within {100 * TRUST_MAX_FRACTION:g}%).")
        if c["undefined"]:
            lines.append(f"- {corr}: {c['undefined']} of {t['jets']} jets ({100 * f['undefined']:.1f}%) carry no "
                         f"regression value (factor <= 0 in the file) and are left out of this row.")
    return lines


def build_report(out: dict, baseline: str = "L1L2", n_boot: int = 200, pt_min: float = 30.0, seed: int = 1) -> dict:
    """The report as a JSON-ready dict."""
    h = out.get("response")
    if h is None or h.sum(flow=True) == 0:
        raise BadInputError("output has no filled response histogram (no generator-matched jets)")
    rng = np.random.default_rng(seed)
    edges = _flow_edges(h.axes["response"])
    corrections = list(h.axes["correction"])
    rep = {"baseline": baseline if baseline in corrections else None, "corrections": corrections,
           "pt_min": pt_min, "pooled": {}, "flavour": {}, "pt_bins": {}, "comparison": {},
           "trust": trust_summary(out.get("cutflow", {}), corrections)}
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


def _value_with_error(stats: dict, key: str) -> str:
    """``value ± error`` of a pooled region, the value alone without bootstrap (``n_boot=0``), or "no jets" when
    nothing was filled there (not ``nan ± nan``)."""
    if not stats["n"]:
        return "no jets"
    err = stats[key + "_err"]
    return f"{stats[key]:.4f} ± {err:.4f}" if np.isfinite(err) else f"{stats[key]:.4f}"


def to_markdown(rep: dict) -> str:
    """The report as markdown tables."""
    base = rep["baseline"]
    lines = [f"## Response summary (pt_gen > {rep['pt_min']:g} GeV)", "",
             "| correction | median R, abs(eta)<2.5 | resolution, abs(eta)<2.5 | resolution, abs(eta)>2.5 | flavour spread |"
             + (" improvement vs " + base + " | spread reduction |" if base else ""),
             "|---|---|---|---|---|" + ("---|---|" if base else "")]
    untrusted = {c for c, t in rep.get("trust", {}).items() if not t["trusted"]}
    for c in rep["corrections"]:
        p = rep["pooled"][c]
        row = (f"| {c} | {_value_with_error(p['barrel+endcap'], 'median')} "
               f"| {_value_with_error(p['barrel+endcap'], 'resolution')} "
               f"| {_value_with_error(p['forward'], 'resolution')} | {rep['flavour'][c]['spread']:.4f} |")
        if base:
            if c in untrusted:
                row += " not trusted (see below) | - |"
            elif c in rep["comparison"]:
                cm = rep["comparison"][c]
                row += (f" {100 * cm['improvement_barrel+endcap']:.1f}% ± {100 * cm['improvement_barrel+endcap_err']:.1f}% "
                        f"| {100 * cm['spread_reduction']:.0f}% |")
            else:
                row += " - | - |"
        lines.append(row)
    caveats = trust_lines(rep)
    if caveats:
        lines += ["", "## Trust (training domain of each model, values left out)", ""] + caveats
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


