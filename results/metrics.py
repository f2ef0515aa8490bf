"""Response metrics from the response histogram: medians, IQR, resolution, flavour spread.

Quantiles are read off the histogram's cumulative distribution with linear
interpolation inside a bin (bin width 0.005 in response).
"""
from __future__ import annotations

from dataclasses import dataclass

import hist
import numpy as np

QUARK_GLUON_FLAVOURS = ("uds", "c", "b", "g")


def hist_quantiles(counts: np.ndarray, edges: np.ndarray, qs) -> np.ndarray:
    """Quantiles ``qs`` of a 1D binned distribution (NaN when it is empty)."""
    counts = np.clip(np.asarray(counts, dtype=float), 0, None)
    total = counts.sum()
    if total <= 0:
        return np.full(len(np.atleast_1d(qs)), np.nan)
    cdf = np.concatenate([[0.0], np.cumsum(counts)]) / total
    out = []
    for q in np.atleast_1d(qs):
        i = int(np.searchsorted(cdf, q, side="left"))
        i = min(max(i, 1), len(edges) - 1)
        lo, hi = cdf[i - 1], cdf[i]
        frac = 0.0 if hi <= lo else (q - lo) / (hi - lo)
        out.append(edges[i - 1] + frac * (edges[i] - edges[i - 1]))
    return np.asarray(out)


@dataclass(frozen=True)
class ResponseSummary:
    """Median, inter-quartile range and resolution (IQR / median) of R in one selection."""

    n: float
    median: float
    iqr: float

    @property
    def resolution(self) -> float:
        return self.iqr / self.median if self.median and np.isfinite(self.median) else np.nan


def _pt_slice(axis, pt_min: float | None, pt_max: float | None) -> slice:
    lo = None if pt_min is None else hist.loc(pt_min)
    hi = None if pt_max is None else hist.loc(pt_max)
    return slice(lo, hi, sum)


def response_distribution(h: hist.Hist, correction: str, *, flavours=None, abs_eta=(0.0, 2.5),
                          pt_gen=(30.0, None)) -> np.ndarray:
    """Counts in response bins for one correction, pooled over a selection.

    ``abs_eta`` and ``pt_gen`` are (low, high) edges of the histogram's axes
    (None for open); ``flavours`` a list of flavour names (None for all).
    The response over- and underflow are kept, so quantiles stay honest.
    """
    sel = h[{"correction": correction}]
    sel = sel[{"abs_eta_gen": slice(hist.loc(abs_eta[0]), None if abs_eta[1] is None else hist.loc(abs_eta[1]), sum),
               "pt_gen": _pt_slice(sel.axes["pt_gen"], *pt_gen)}]
    values = sel.values(flow=True)  # (flavour + flow, response + flow)
    names = list(sel.axes["flavour"])
    if flavours is None:
        rows = values.sum(axis=0)
    else:
        idx = [names.index(f) for f in flavours if f in names]
        rows = values[idx].sum(axis=0) if idx else np.zeros(values.shape[1])
    return rows


def _flow_edges(axis) -> np.ndarray:
    e = np.asarray(axis.edges)
    return np.concatenate([[e[0] - (e[1] - e[0])], e, [e[-1] + (e[1] - e[0])]])


def summarize(h: hist.Hist, correction: str, **selection) -> ResponseSummary:
    """``ResponseSummary`` of one correction in a selection (see ``response_distribution``)."""
    counts = response_distribution(h, correction, **selection)
    q25, q50, q75 = hist_quantiles(counts, _flow_edges(h.axes["response"]), [0.25, 0.5, 0.75])
    return ResponseSummary(n=float(counts.sum()), median=float(q50), iqr=float(q75 - q25))


def pt_binned(h: hist.Hist, correction: str, abs_eta: tuple, flavours=None, min_count: float = 10) -> dict:
    """Per pt_gen bin: centres, medians, IQRs, resolutions (NaN where fewer than ``min_count`` jets)."""
    edges = np.asarray(h.axes["pt_gen"].edges)
    med, res, n = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        s = summarize(h, correction, flavours=flavours, abs_eta=abs_eta, pt_gen=(lo, hi))
        ok = s.n >= min_count
        med.append(s.median if ok else np.nan)
        res.append(s.resolution if ok else np.nan)
        n.append(s.n)
    return {"edges": edges, "centres": np.sqrt(edges[:-1] * edges[1:]), "median": np.array(med),
            "resolution": np.array(res), "n": np.array(n)}


def flavour_medians(h: hist.Hist, correction: str, **selection) -> dict[str, float]:
    """Median response per flavour (uds, c, b, g) in a selection."""
    return {f: summarize(h, correction, flavours=[f], **selection).median for f in QUARK_GLUON_FLAVOURS}


def flavour_spread(medians: dict[str, float]) -> float:
    """max - min of the flavour medians (NaN entries ignored)."""
    vals = [v for v in medians.values() if np.isfinite(v)]
    return float(max(vals) - min(vals)) if len(vals) >= 2 else float("nan")
