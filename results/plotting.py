"""Response, resolution and flavour figures with mplhep (``runner.py plot``).

Figures per |eta_gen| bin: median response and resolution (IQR / median) versus
pt_gen for every correction (with a ratio panel to the L1L2 baseline when it
is there), and flavour medians versus pt_gen for every correction. PNG and PDF.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import BadInputError

FLAVOUR_LABELS = {"uds": "uds", "c": "c", "b": "b", "g": "gluon"}


#: experiment label of every figure: "CMS Simulation Private work" (our own sample, not a CMS result)
CMS_TEXT = "Private work"
#: Poisson-bootstrap replicas behind the error bars (the report's method, ``results.report``)
N_BOOT = 100


def cms_label(ax, text: str = CMS_TEXT) -> None:
    """mplhep CMS label: "CMS", "Simulation", ``text``; no luminosity / energy (a generated sample)."""
    import mplhep

    mplhep.cms.label(text=text, data=False, ax=ax, rlabel="")


def pt_binned_errors(h, correction: str, abs_eta: tuple, n_boot: int = N_BOOT, seed: int = 1,
                     flavours=None, min_count: float = 10) -> dict:
    """Per pt_gen bin: median and resolution with Poisson-bootstrap standard deviations (as the report)."""
    from results.metrics import _flow_edges, response_distribution
    from results.report import _quantile_stats

    rng = np.random.default_rng(seed)
    edges = np.asarray(h.axes["pt_gen"].edges)
    flow_edges = _flow_edges(h.axes["response"])  # the same response edges (flow included) as the metrics
    out = {k: [] for k in ("median", "median_err", "resolution", "resolution_err", "n")}
    for lo, hi in zip(edges[:-1], edges[1:]):
        counts = response_distribution(h, correction, flavours=flavours, abs_eta=abs_eta, pt_gen=(lo, hi))
        st = _quantile_stats(counts, flow_edges, n_boot if counts.sum() >= min_count else 0, rng)
        ok = st["n"] >= min_count
        for k in ("median", "median_err", "resolution", "resolution_err"):
            out[k].append(st[k] if ok else np.nan)
        out["n"].append(st["n"])
    res = {k: np.asarray(v, dtype=float) for k, v in out.items()}
    res.update(edges=edges, centres=np.sqrt(edges[:-1] * edges[1:]))
    return res


def plot_resolution_summary(h, folder: Path, abs_eta: tuple = (0.0, 2.5)) -> list[Path]:
    """One figure: resolution (IQR / median) versus pt_gen for every correction, bootstrap error bars."""
    import matplotlib.pyplot as plt
    import mplhep

    mplhep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(9, 7))
    for i, c in enumerate(h.axes["correction"]):
        cur = pt_binned_errors(h, c, abs_eta=abs_eta)
        ax.errorbar(cur["centres"] * (1 + 0.015 * i), cur["resolution"], yerr=cur["resolution_err"], marker="o",
                    ms=4, capsize=2, ls="-", label=c)
    ax.set_xscale("log")
    ax.set_xlim(20, 3000)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(r"$p_{T}^{gen}$ [GeV]")
    ax.set_ylabel("Resolution (IQR / median)")
    ax.legend(title=rf"${abs_eta[0]:g} \leq |\eta_{{gen}}| < {abs_eta[1]:g}$, all flavours", fontsize=14)
    cms_label(ax)
    paths = _save(fig, folder, "summary_resolution")
    plt.close(fig)
    return paths


def _eta_bins(h) -> list[tuple[float, float]]:
    e = list(h.axes["abs_eta_gen"].edges)
    return list(zip(e[:-1], e[1:]))


def _save(fig, folder: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        p = folder / ext / f"{stem}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=120 if ext == "png" else None, bbox_inches="tight")
        paths.append(p)
    return paths


def ratio_limits(ratios: np.ndarray, default: tuple[float, float], margin: float = 0.05) -> tuple[float, float]:
    """y range of a ratio panel: ``default`` widened to hold every finite ratio (with a margin)."""
    finite = ratios[np.isfinite(ratios)]
    if not len(finite):
        return default
    return min(default[0], finite.min() - margin), max(default[1], finite.max() + margin)


def plot_response_and_resolution(h, folder: Path, baseline: str = "L1L2") -> list[Path]:
    """Median response and resolution versus pt_gen, one figure pair per |eta_gen| bin."""
    import matplotlib.pyplot as plt
    import mplhep

    mplhep.style.use("CMS")
    corrections = list(h.axes["correction"])
    written = []
    for lo, hi in _eta_bins(h):
        curves = {c: pt_binned_errors(h, c, abs_eta=(lo, hi)) for c in corrections}
        for quantity, ylabel, ylim in (("median", "Median response", (0.6, 1.3)),
                                       ("resolution", "Resolution (IQR / median)", (0.0, 0.6))):
            has_ratio = baseline in curves and len(curves) > 1
            fig, axes = plt.subplots(2 if has_ratio else 1, 1, figsize=(9, 9 if has_ratio else 7), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]} if has_ratio else None, squeeze=False)
            ax = axes[0, 0]
            for c, cur in curves.items():
                ax.errorbar(cur["centres"], cur[quantity], yerr=cur[f"{quantity}_err"], marker="o", ms=4,
                            capsize=2, label=c)
            cms_label(ax)
            if quantity == "median":
                ax.axhline(1.0, color="grey", ls="--", lw=1)
            ax.set_xscale("log")
            ax.set_xlim(20, 3000)
            ax.set_ylabel(ylabel)
            ax.set_ylim(*ylim)
            ax.legend(title=rf"${lo:g} < |\eta_{{gen}}| < {hi:g}$", fontsize=14)
            if has_ratio:
                rax = axes[1, 0]
                base = curves[baseline][quantity]
                ratios = []
                with np.errstate(invalid="ignore", divide="ignore"):
                    for c, cur in curves.items():
                        ratios.append(cur[quantity] / base)
                        rax.plot(cur["centres"], ratios[-1], marker="o", ms=3)
                rax.axhline(1.0, color="grey", ls="--", lw=1)
                rax.set_ylabel(f"/ {baseline}", fontsize=16)
                rax.set_ylim(*ratio_limits(np.concatenate(ratios), default=(0.6, 1.2)))
            axes[-1, 0].set_xlabel(r"$p_{T}^{gen}$ [GeV]")
            written += _save(fig, folder, f"{quantity}_eta{lo:g}-{hi:g}".replace(".", "p"))
            plt.close(fig)
    return written


def plot_flavour(h, folder: Path) -> list[Path]:
    """Median response per flavour versus pt_gen, one figure per correction and |eta_gen| bin."""
    import matplotlib.pyplot as plt
    import mplhep

    from results.metrics import pt_binned

    mplhep.style.use("CMS")
    written = []
    for c in h.axes["correction"]:
        for lo, hi in _eta_bins(h):
            fig, ax = plt.subplots(figsize=(9, 7))
            for f, label in FLAVOUR_LABELS.items():
                cur = pt_binned(h, c, abs_eta=(lo, hi), flavours=[f])
                ax.plot(cur["centres"], cur["median"], marker="o", ms=4, label=label)
            ax.axhline(1.0, color="grey", ls="--", lw=1)
            ax.set_xscale("log")
            ax.set_xlim(20, 3000)
            ax.set_xlabel(r"$p_{T}^{gen}$ [GeV]")
            ax.set_ylabel("Median response")
            ax.set_ylim(0.6, 1.3)
            ax.legend(title=rf"{c}, ${lo:g} < |\eta_{{gen}}| < {hi:g}$", fontsize=14)
            cms_label(ax)
            written += _save(fig, folder, f"flavour_{c}_eta{lo:g}-{hi:g}".replace(".", "p"))
            plt.close(fig)
    return written


def plot_reco_pt(h, folder: Path) -> list[Path]:
    """Reco-level corrected pT spectra (the view that also exists for collision data)."""
    import matplotlib.pyplot as plt
    import mplhep

    mplhep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(9, 7))
    for c in h.axes["correction"]:
        mplhep.histplot(h[{"correction": c, "abs_eta": sum}], ax=ax, label=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend()
    cms_label(ax)
    paths = _save(fig, folder, "reco_pt")
    plt.close(fig)
    return paths


def make_plots(out: dict, folder: Path, baseline: str = "L1L2") -> list[Path]:
    """Every figure the output supports; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if "reco_pt" in out:
        written += plot_reco_pt(out["reco_pt"], folder)
    h = out.get("response")
    if h is not None and h.sum() > 0:
        written += plot_resolution_summary(h, folder)
        written += plot_response_and_resolution(h, folder, baseline)
        written += plot_flavour(h, folder)
    return written


