"""Breit-Wigner (x) Crystal-Ball fit of the Z->ee mass peak, with iminuit.

The Z line shape is a Breit-Wigner with the PDG mass and width (fixed); the detector
response is a Crystal Ball (Gaussian core of width ``sigma_cb`` and mean shift ``dm``,
power-law low-mass tail for brem and FSR losses). The convolution is computed on a
fine grid with an FFT; the fit is a binned extended Poisson likelihood over the fit
range. The peak position is ``M_Z + dm`` (GeV).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.constants import GAMMA_Z, M_Z

FIT_RANGE = (80.0, 100.0)  # GeV, as in CMS EGM Z->ee fits: limits the far tail's leverage on the core


def breit_wigner(m: np.ndarray, mass: float = M_Z, width: float = GAMMA_Z) -> np.ndarray:
    """Non-relativistic Breit-Wigner (Cauchy) density in m (GeV^-1)."""
    return (width / (2 * np.pi)) / ((m - mass) ** 2 + width**2 / 4)


def crystal_ball(x: np.ndarray, mean: float, sigma: float, alpha: float, n: float) -> np.ndarray:
    """Unnormalised one-sided (low tail) Crystal Ball shape."""
    t = (np.asarray(x) - mean) / sigma
    alpha = abs(alpha)
    a = (n / alpha) ** n * np.exp(-0.5 * alpha**2)
    b = n / alpha - alpha
    tail = t <= -alpha
    out = np.empty_like(t, dtype=np.float64)
    out[~tail] = np.exp(-0.5 * t[~tail] ** 2)
    out[tail] = a * np.power(np.maximum(b - t[tail], 1e-12), -n)
    return out


def bw_cb_density(edges_or_grid: np.ndarray, dm: float, sigma: float, alpha: float, n: float,
                  lo: float, hi: float, step: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """BW (x) CB density on a grid covering [lo, hi], normalised to 1 over [lo, hi].

    Returns (grid, density).
    """
    from scipy.signal import fftconvolve

    margin = 30.0
    grid = np.arange(lo - margin, hi + margin + step / 2, step)
    bw = breit_wigner(grid)
    half = int(round(25.0 / step))
    u = np.arange(-half, half + 1) * step
    kernel = crystal_ball(u, dm, sigma, alpha, n)
    kernel /= kernel.sum()
    conv = fftconvolve(bw, kernel, mode="same")
    conv = np.maximum(conv, 0.0)
    inside = (grid >= lo) & (grid <= hi)
    norm = np.trapezoid(conv[inside], grid[inside])
    return grid, conv / max(norm, 1e-300)


def _bin_integrals(grid: np.ndarray, dens: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    return np.diff(np.interp(edges, grid, cdf))


@dataclass
class ZFitResult:
    """Fit values (GeV) with their uncertainties."""

    peak: float
    peak_err: float
    sigma_cb: float
    sigma_cb_err: float
    dm: float
    alpha: float
    n: float
    n_events: float
    valid: bool
    chi2_ndf: float

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"peak {self.peak:.3f} +- {self.peak_err:.3f} GeV, sigma_CB {self.sigma_cb:.3f} +- "
                f"{self.sigma_cb_err:.3f} GeV (alpha {self.alpha:.2f}, n {self.n:.1f}, N {self.n_events:.0f}, "
                f"chi2/ndf {self.chi2_ndf:.2f}{'' if self.valid else ', NOT CONVERGED'})")


def fit_histogram(counts: np.ndarray, edges: np.ndarray, fit_range: tuple[float, float] = FIT_RANGE,
                  fix_tail: tuple[float, float] | None = None) -> ZFitResult:
    """Extended binned Poisson fit of BW (x) CB to a m_ee histogram (counts per bin, bin edges in GeV).

    ``fix_tail``: (alpha, n) held fixed (e.g. from the MC fit), so that only the core width and
    the peak are free -- the CB tail trades off against sigma_CB in a free fit.
    """
    from iminuit import Minuit

    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    centres = 0.5 * (edges[1:] + edges[:-1])
    sel = (centres > fit_range[0]) & (centres < fit_range[1])
    c = counts[sel]
    e = np.concatenate([edges[:-1][sel], edges[1:][sel][-1:]])
    lo, hi = e[0], e[-1]
    total = c.sum()
    if total < 20:
        raise ValueError(f"too few events in the fit range {lo:.0f}-{hi:.0f} GeV: {total:.0f}")

    def nll(n_sig, dm, sigma, alpha, n):
        grid, dens = bw_cb_density(e, dm, sigma, alpha, n, lo, hi)
        mu = n_sig * np.maximum(_bin_integrals(grid, dens, e), 1e-300)
        return float(np.sum(mu - c * np.log(mu)))

    # starting values from the histogram
    mean = np.average(centres[sel], weights=np.maximum(c, 0))
    q = np.cumsum(c) / total
    rms = 0.5 * (np.interp(0.84, q, centres[sel]) - np.interp(0.16, q, centres[sel]))
    m = Minuit(nll, n_sig=total, dm=float(np.clip(centres[sel][np.argmax(c)] - M_Z, -5, 5)), sigma=float(np.clip(0.5 * rms, 0.5, 5.0)), alpha=1.0, n=3.0)
    m.errordef = Minuit.LIKELIHOOD
    m.limits["n_sig"] = (0.1 * total, 10 * total)
    m.limits["dm"] = (-10, 10)
    m.limits["sigma"] = (0.05, 15)
    m.limits["alpha"] = (0.4, 10)
    m.limits["n"] = (1.05, 40)
    if fix_tail is not None:
        m.values["alpha"], m.values["n"] = float(fix_tail[0]), float(fix_tail[1])
        m.fixed["alpha"] = m.fixed["n"] = True
    m.migrad()
    m.hesse()
    grid, dens = bw_cb_density(e, m.values["dm"], m.values["sigma"], m.values["alpha"], m.values["n"], lo, hi)
    mu = m.values["n_sig"] * _bin_integrals(grid, dens, e)
    ok = mu > 0
    chi2 = float(np.sum((c[ok] - mu[ok]) ** 2 / np.maximum(mu[ok], 1.0)))
    return ZFitResult(peak=M_Z + m.values["dm"], peak_err=m.errors["dm"], sigma_cb=m.values["sigma"],
                      sigma_cb_err=m.errors["sigma"], dm=m.values["dm"], alpha=m.values["alpha"], n=m.values["n"],
                      n_events=m.values["n_sig"], valid=bool(m.valid), chi2_ndf=chi2 / max(int(ok.sum()) - 5, 1))


def fit_masses(masses: np.ndarray, fit_range: tuple[float, float] = FIT_RANGE, bin_width: float = 0.25,
               fix_tail: tuple[float, float] | None = None) -> ZFitResult:
    """Histogram the masses (GeV) and fit them (``fix_tail``: CB (alpha, n) held fixed)."""
    masses = np.asarray(masses, dtype=np.float64)
    edges = np.arange(fit_range[0], fit_range[1] + bin_width / 2, bin_width)
    counts, _ = np.histogram(masses[np.isfinite(masses)], bins=edges)
    return fit_histogram(counts, edges, fit_range, fix_tail=fix_tail)


def sample_bw_cb(n_events: int, sigma: float, dm: float = 0.0, alpha: float = 1.2, n: float = 3.0,
                 seed: int = 1, fit_range: tuple[float, float] = FIT_RANGE) -> np.ndarray:
    """A toy m_ee sample (GeV) from BW (x) CB, drawn by inverse CDF on the grid, restricted to the range."""
    rng = np.random.default_rng(seed)
    grid, dens = bw_cb_density(np.array(fit_range), dm, sigma, alpha, n, *fit_range)
    inside = (grid >= fit_range[0]) & (grid <= fit_range[1])
    g, d = grid[inside], dens[inside]
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(g))])
    cdf /= cdf[-1]
    return np.interp(rng.uniform(size=n_events), cdf, g)


def effective_iqr(ratio: np.ndarray) -> float:
    """Relative resolution of a response sample: (q75 - q25) / 1.349 / median (Gaussian-equivalent sigma)."""
    r = np.asarray(ratio, dtype=np.float64)
    r = r[np.isfinite(r)]
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    return float((q75 - q25) / 1.349 / q50)


def sigma_effective(masses: np.ndarray, fit_range: tuple[float, float] = FIT_RANGE, coverage: float = 0.683) -> float:
    """Half-width (GeV) of the narrowest interval holding ``coverage`` of the masses inside ``fit_range``.

    A shape-free width to read next to sigma_CB (which trades off against the CB tail).
    """
    m = np.sort(np.asarray(masses, dtype=np.float64))
    m = m[(m > fit_range[0]) & (m < fit_range[1])]
    if len(m) < 2 or int(np.ceil(coverage * len(m))) < 2:
        raise ValueError(f"too few masses in {fit_range}: {len(m)}")
    return narrowest_half_width(m, coverage)


def narrowest_half_width(sorted_values: np.ndarray, coverage: float = 0.683) -> float:
    """Half-width of the narrowest interval holding ``coverage`` of ``sorted_values`` (ascending), same units."""
    k = int(np.ceil(coverage * len(sorted_values)))
    widths = sorted_values[k - 1:] - sorted_values[: len(sorted_values) - k + 1]
    return float(0.5 * widths.min())
