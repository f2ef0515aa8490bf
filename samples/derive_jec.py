"""``runner.py derive-jec``: derive L1FastJet + L2Relative for this detector, the CMS way.

L1FastJet (pileup offset): the same hard-scatter events are generated with and
without pileup, reco jets are matched between the two (dR < 0.2), and the offset
``O = pt_raw(PU) - pt_raw(noPU)`` is fitted per eta bin with the standard form

    O(rho, A, pt) = A * (p0 + p1 * (rho - p3)) * (1 + p2 * ln pt)     [GeV]

so the correction factor is ``max(0.0001, 1 - O / pt)`` at the raw pT.

L2Relative (relative response): after L1, the response ``R = pt_L1 / pt_gen`` is
measured (median) in |eta| x pt_gen bins and numerically inverted: the correction
``C = 1 / R`` is attributed to the median ``pt_L1`` of the bin and fitted with a
polynomial in log10(pt_L1); the inversion is iterated on the residual so that the
median response in pt_gen bins closes. pT outside the fitted range is clamped.

Both levels are written as standard JEC text files that coffea's ``extractor`` +
``JECStack`` read. Pure functions work on numpy / awkward arrays; reading and the
command live at the end of the module.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: |eta| edges of both levels (fit bins); the files mirror them to negative eta
ABS_ETA_EDGES = (0.0, 0.5, 1.0, 1.3, 1.7, 2.0, 2.5, 3.0, 3.5, 4.0, 4.7)
#: the text files extend the outermost bin to this |eta| (as CMS files do)
ETA_MAX_FILE = 5.191
#: reference rho (GeV per unit area) of the L1 formula's [3]
RHO_REF = 20.0
#: L1 evaluation ranges written in the file (clamps): rho (GeV), pT (GeV), area
L1_CLAMPS = {"Rho": (0.0, 200.0), "JetPt": (1.0, 6500.0), "JetA": (0.0, 10.0)}
#: x = Rho, y = JetPt, z = JetA (coffea substitutes the template letters in this order)
L1_FORMULA = "max(0.0001,1-(z/y)*([0]+[1]*(x-[3]))*(1+[2]*log(y)))"
#: flavour groups of the closure table
FLAVOUR_GROUPS = ("uds", "c", "b", "g")
MAX_MATCH_DR = 0.2


# --------------------------------------------------------------------------- corrections

@dataclass
class JECLevel:
    """One JEC level binned in signed eta: what the text file holds.

    ``eta_edges`` (n+1,) signed; ``clamps`` (n, n_vars, 2) evaluation ranges of
    ``variables``; ``params`` (n, n_params); ``formula`` in the text-file syntax.
    """

    level: str  # "L1FastJet" or "L2Relative"
    variables: tuple[str, ...]
    formula: str
    eta_edges: np.ndarray
    clamps: np.ndarray
    params: np.ndarray
    info: dict = field(default_factory=dict)

    def bin_index(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bin index, inside) of each eta; outside the edges the factor is 1, as in coffea."""
        eta = np.asarray(eta, dtype=np.float64)
        idx = np.clip(np.searchsorted(self.eta_edges, eta, side="right") - 1, 0, len(self.eta_edges) - 2)
        inside = (eta >= self.eta_edges[0]) & (eta <= self.eta_edges[-1])
        return idx, inside

    def clamp(self, name: str, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        j = self.variables.index(name)
        return np.clip(np.asarray(values, dtype=np.float64), self.clamps[idx, j, 0], self.clamps[idx, j, 1])

    def factor(self, eta, pt, rho=None, area=None) -> np.ndarray:
        """Correction factor at (eta, pT [GeV], rho [GeV], area), evaluated like the text file."""
        idx, inside = self.bin_index(eta)
        p = self.params[idx].astype(np.float64)
        pt_c = self.clamp("JetPt", pt, idx)
        if self.level == "L1FastJet":
            rho_c = self.clamp("Rho", rho, idx)
            area_c = self.clamp("JetA", area, idx)
            f = np.maximum(0.0001, 1.0 - area_c / pt_c * (p[:, 0] + p[:, 1] * (rho_c - p[:, 3]))
                           * (1.0 + p[:, 2] * np.log(pt_c)))
        elif self.level == "L2Relative":
            f = poly_log10(p, pt_c)
        else:
            raise ValueError(f"unknown level {self.level}")
        return np.where(inside, f, 1.0)


def poly_log10(params: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """sum_k params[:, k] * log10(pt)^k, row by row."""
    x = np.log10(pt)
    out = np.zeros_like(x)
    for k in range(params.shape[1] - 1, -1, -1):
        out = out * x + params[:, k]
    return out


def l2_formula(degree: int) -> str:
    """Horner form of a degree-``degree`` polynomial in log10(x) in the text-file syntax."""
    s = f"[{degree}]"
    for k in range(degree - 1, -1, -1):
        s = f"[{k}]+log10(x)*({s})"
    return s


def mirrored_edges(abs_edges=ABS_ETA_EDGES, eta_max: float = ETA_MAX_FILE) -> np.ndarray:
    """Signed eta edges of the files: -eta_max ... 0 ... eta_max."""
    pos = list(abs_edges[1:-1]) + [eta_max]
    return np.array([-e for e in reversed(pos)] + [0.0] + pos, dtype=np.float64)


def mirror_rows(rows_abs: np.ndarray) -> np.ndarray:
    """Per-|eta|-bin rows to per-signed-bin rows (negative side reversed)."""
    return np.concatenate([rows_abs[::-1], rows_abs], axis=0)


def abs_bin(eta: np.ndarray, abs_edges=ABS_ETA_EDGES) -> np.ndarray:
    """|eta| bin index (the last bin takes everything beyond), -1 never."""
    return np.clip(np.searchsorted(np.asarray(abs_edges), np.abs(eta), side="right") - 1, 0, len(abs_edges) - 2)


# --------------------------------------------------------------------------- matching

def delta_r(eta1, phi1, eta2, phi2):
    """Distance in (eta, phi) with the azimuth difference wrapped to [-pi, pi)."""
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi**2)


def match_pileup_jets(jets_pu, jets_nopu, max_dr: float = MAX_MATCH_DR):
    """Index of the noPU jet matched to each PU jet (None if none), event by event.

    ``jets_pu`` and ``jets_nopu`` are jagged (events x jets) with eta and phi, the
    same events in the same order. A pair is kept when each jet is the other's
    nearest neighbour and dR < ``max_dr``.
    """
    import awkward as ak

    pairs = ak.cartesian({"pu": jets_pu, "nopu": jets_nopu}, axis=1, nested=True)
    dr = delta_r(pairs.pu.eta, pairs.pu.phi, pairs.nopu.eta, pairs.nopu.phi)  # [ev][pu][nopu]
    best_nopu = ak.argmin(dr, axis=2)  # per PU jet
    best_dr = ak.min(dr, axis=2)
    best_pu = ak.argmin(dr, axis=1)  # per noPU jet
    # an event without noPU jets has no best_pu entry: pad with -1 so that nothing matches there
    best_pu = ak.fill_none(ak.pad_none(best_pu, 1, axis=1), -1)
    back = best_pu[ak.fill_none(best_nopu, 0)]  # the PU jet nearest to my nearest noPU jet
    mine = ak.local_index(jets_pu, axis=1)
    ok = ak.fill_none((best_dr < max_dr) & (back == mine), False)
    return ak.mask(best_nopu, ok)


# --------------------------------------------------------------------------- L1FastJet

def offset_model(params, rho, area, pt, rho_ref: float = RHO_REF):
    """Offset O (GeV) = area * (p0 + p1 (rho - rho_ref)) * (1 + p2 ln pt)."""
    p0, p1, p2 = params[:3]
    return area * (p0 + p1 * (rho - rho_ref)) * (1.0 + p2 * np.log(pt))


def offset_profile(offset: np.ndarray, rho: np.ndarray, area: np.ndarray, pt_raw: np.ndarray,
                   pt_nopu: np.ndarray, n_rho: int = 8, pt_edges=None, min_count: int = 20,
                   n_sigma_clip: float = 5.0) -> dict[str, np.ndarray]:
    """Mean offset density (GeV per unit area) in cells of rho (quantiles) x pt_noPU (GeV).

    Binning in the noPU pT keeps the pileup fluctuation out of the cell choice, so
    the cell mean is the true mean offset; each cell carries its mean rho and mean
    ln pt_raw (the PU pT, where the correction is applied). Entries beyond
    ``n_sigma_clip`` robust sigmas of their cell's median (mismatches) are dropped.
    """
    pt_edges = np.geomspace(5.0, 5000.0, 19) if pt_edges is None else np.asarray(pt_edges)
    density = offset / area
    rho_edges = np.unique(np.quantile(rho, np.linspace(0.0, 1.0, n_rho + 1)))
    ib = np.clip(np.searchsorted(rho_edges, rho, side="right") - 1, 0, len(rho_edges) - 2)
    jb = np.searchsorted(pt_edges, pt_nopu, side="right") - 1
    cell = np.where((jb >= 0) & (jb < len(pt_edges) - 1), ib * (len(pt_edges) - 1) + jb, -1)
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(-1, (len(rho_edges) - 1) * (len(pt_edges) - 1) + 1))
    out = {k: [] for k in ("density", "err", "rho", "log_pt", "n")}
    for c in range(1, len(bounds) - 1):
        sel = order[bounds[c]:bounds[c + 1]]
        if len(sel) < min_count:
            continue
        d = density[sel]
        med = np.median(d)
        sigma = 1.4826 * np.median(np.abs(d - med))
        ok = np.abs(d - med) <= n_sigma_clip * max(sigma, 1e-6)
        sel, d = sel[ok], d[ok]
        if len(sel) < min_count:
            continue
        out["density"].append(d.mean())
        out["err"].append(max(d.std(ddof=1) / math.sqrt(len(d)), 1e-3))
        out["rho"].append(rho[sel].mean())
        out["log_pt"].append(np.log(np.maximum(pt_raw[sel], L1_CLAMPS["JetPt"][0])).mean())
        out["n"].append(len(sel))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def fit_offset(offset: np.ndarray, rho: np.ndarray, area: np.ndarray, pt_raw: np.ndarray, pt_nopu: np.ndarray,
               rho_ref: float = RHO_REF, **profile_options) -> tuple[np.ndarray, dict]:
    """Fit (p0, p1, p2) of ``offset_model`` to the mean offsets of ``offset_profile`` (flat arrays, GeV).

    Weighted least squares of (p0 + p1 (rho - rho_ref)) (1 + p2 ln pt) to the cell
    means of offset / area; returns the parameters and fit information.
    """
    from scipy.optimize import least_squares

    offset, rho, area, pt_raw, pt_nopu = (np.asarray(a, dtype=np.float64) for a in (offset, rho, area, pt_raw, pt_nopu))
    good = np.isfinite(offset) & (area > 0) & np.isfinite(pt_raw) & (pt_raw > 0)
    prof = offset_profile(offset[good], rho[good], area[good], pt_raw[good], pt_nopu[good], **profile_options)
    if len(prof["n"]) < 3:
        raise ValueError(f"too few populated (rho, pT) cells ({len(prof['n'])}) for the offset fit")
    x = prof["rho"] - rho_ref
    a = np.column_stack([np.ones_like(x), x]) / prof["err"][:, None]
    start = np.linalg.lstsq(a, prof["density"] / prof["err"], rcond=None)[0]

    def resid(p):
        return ((p[0] + p[1] * x) * (1.0 + p[2] * prof["log_pt"]) - prof["density"]) / prof["err"]

    fit = least_squares(resid, np.array([start[0], start[1], 0.0]), method="lm")
    chi2 = float(np.sum(fit.fun**2))
    return fit.x, {"n": int(prof["n"].sum()), "cells": len(prof["n"]), "chi2_ndf": chi2 / max(len(prof["n"]) - 3, 1)}


def derive_l1(offset, rho, area, pt_raw, pt_nopu, eta, abs_edges=ABS_ETA_EDGES, rho_ref: float = RHO_REF,
              min_jets: int = 100) -> JECLevel:
    """L1FastJet from matched PU/noPU jets (flat arrays; pT in GeV); one fit per |eta| bin.

    A bin with fewer than ``min_jets`` jets takes the parameters of its nearest fitted bin.
    """
    b = abs_bin(eta, abs_edges)
    nb = len(abs_edges) - 1
    rows = np.full((nb, 4), np.nan)
    info = {"n": [], "chi2_ndf": [], "copied": []}
    for i in range(nb):
        m = b == i
        fi = {"chi2_ndf": float("nan")}
        if m.sum() >= min_jets:
            try:
                p, fi = fit_offset(offset[m], rho[m], area[m], pt_raw[m], pt_nopu[m], rho_ref)
                rows[i] = [p[0], p[1], p[2], rho_ref]
            except ValueError:
                pass
        info["chi2_ndf"].append(fi["chi2_ndf"])
        info["n"].append(int(m.sum()))
    _fill_missing_rows(rows, info)
    clamps_one = np.array([L1_CLAMPS[v] for v in ("Rho", "JetPt", "JetA")])
    rows_s = mirror_rows(rows)
    return JECLevel("L1FastJet", ("Rho", "JetPt", "JetA"), L1_FORMULA, mirrored_edges(abs_edges),
                    np.repeat(clamps_one[None], len(rows_s), axis=0), rows_s, info)


def _fill_missing_rows(rows: np.ndarray, info: dict) -> None:
    fitted = np.flatnonzero(np.isfinite(rows).all(axis=1))
    if len(fitted) == 0:
        raise ValueError("no eta bin has enough jets to fit")
    for i in range(len(rows)):
        if not np.isfinite(rows[i]).all():
            j = fitted[np.argmin(np.abs(fitted - i))]
            rows[i] = rows[j]
            info["copied"].append((i, int(j)))


# --------------------------------------------------------------------------- L2Relative

def binned_medians(values: np.ndarray, x: np.ndarray, edges: np.ndarray, min_count: int):
    """Median of ``values`` in bins of ``x``; returns (median, median error, count, bin index array)."""
    b = np.searchsorted(edges, x, side="right") - 1
    nb = len(edges) - 1
    med = np.full(nb, np.nan)
    err = np.full(nb, np.nan)
    cnt = np.zeros(nb, dtype=np.int64)
    for i in range(nb):
        v = values[b == i]
        cnt[i] = len(v)
        if len(v) >= min_count:
            q1, q2, q3 = np.quantile(v, [0.25, 0.5, 0.75])
            med[i] = q2
            err[i] = 1.2533 * (q3 - q1) / 1.349 / math.sqrt(len(v))
    return med, err, cnt


def invert_response(pt_l1: np.ndarray, pt_gen: np.ndarray, pt_gen_edges: np.ndarray, degree: int = 4,
                    iterations: int = 4, min_count: int = 30) -> tuple[np.ndarray, tuple[float, float], dict]:
    """Numerical inversion of the median response in pt_gen bins to C(pt_L1), in one eta bin.

    Iteration k: with C_k applied, the median r_b of C_k(pt_L1) pt_L1 / pt_gen in each
    pt_gen bin is measured and C_{k+1}(x_b) = C_k(x_b) / r_b is fitted (polynomial of
    ``degree`` in log10 x, weighted by the median errors) at x_b = median pt_L1 of the bin.
    Returns (params low to high order, (pt_min, pt_max) clamp in GeV, info).
    """
    pt_l1 = np.asarray(pt_l1, dtype=np.float64)
    pt_gen = np.asarray(pt_gen, dtype=np.float64)
    params = np.zeros(degree + 1)
    params[0] = 1.0
    r_raw, _, cnt = binned_medians(pt_l1 / pt_gen, pt_gen, pt_gen_edges, min_count)
    x_b, _, _ = binned_medians(pt_l1, pt_gen, pt_gen_edges, min_count)
    good = np.isfinite(r_raw) & np.isfinite(x_b) & (x_b > 0)
    if good.sum() < 2:
        raise ValueError(f"too few populated pt_gen bins ({int(good.sum())}) for the L2 inversion")
    x_b = x_b[good]
    lo, hi = float(x_b.min()), float(x_b.max())
    # a polynomial needs more points than parameters
    deg = int(min(degree, max(good.sum() - 2, 0)))
    history, chi2_ndf = [], float("nan")
    for it in range(iterations + 1):
        corr = poly_log10(params[None].repeat(len(pt_l1), 0), np.clip(pt_l1, lo, hi))
        r, r_err, _ = binned_medians(corr * pt_l1 / pt_gen, pt_gen, pt_gen_edges, min_count)
        r, r_err = r[good], r_err[good]
        history.append(float(np.nanmax(np.abs(r - 1.0))))
        chi2_ndf = float(np.nansum(((r - 1.0) / r_err) ** 2) / max(len(r) - deg - 1, 1))
        if it == iterations:
            break
        c_now = poly_log10(params[None].repeat(len(x_b), 0), x_b)
        target = c_now / r
        w = 1.0 / np.maximum(target * r_err / r, 1e-3)
        coef = np.polyfit(np.log10(x_b), target, deg, w=w)[::-1]
        params = np.zeros(degree + 1)
        params[: deg + 1] = coef
    return params, (lo, hi), {"max_nonclosure_by_iteration": history, "chi2_ndf": chi2_ndf,
                              "n_bins": int(good.sum()), "n_jets": int(cnt.sum())}


def default_pt_gen_edges(pt_min: float = 15.0, pt_max: float = 4000.0, n: int = 30) -> np.ndarray:
    """Geometric pt_gen bins (GeV) of the L2 inversion."""
    return np.geomspace(pt_min, pt_max, n + 1)


def efficiency_turn_on(gen_pt: np.ndarray, gen_abs_eta: np.ndarray, has_reco: np.ndarray, pt_gen_edges: np.ndarray,
                       abs_edges=ABS_ETA_EDGES, relative: float = 0.98, min_count: int = 30) -> np.ndarray:
    """Per |eta| bin, the lowest pt_gen edge (GeV) above which the gen-jet reconstruction efficiency
    stays at least ``relative`` times its plateau (median over bins above 100 GeV).

    Below it the reco pT threshold cuts the low-response tail and biases the median
    response upwards, so the L2 inversion starts there.
    """
    gen_pt, gen_abs_eta, has_reco = (np.asarray(a) for a in (gen_pt, gen_abs_eta, has_reco))
    b = abs_bin(gen_abs_eta, abs_edges)
    out = np.full(len(abs_edges) - 1, float(pt_gen_edges[0]))
    for i in range(len(abs_edges) - 1):
        m = b == i
        n_all = np.histogram(gen_pt[m], pt_gen_edges)[0]
        n_reco = np.histogram(gen_pt[m & has_reco], pt_gen_edges)[0]
        ok = n_all >= min_count
        if not ok.any():
            continue
        eff = np.where(ok, n_reco / np.maximum(n_all, 1), np.nan)
        high = ok & (pt_gen_edges[:-1] >= 100.0)
        plateau = np.nanmedian(eff[high]) if high.any() else np.nanmax(eff)
        bad = np.flatnonzero(ok & (eff < relative * plateau))
        if len(bad):
            out[i] = float(pt_gen_edges[bad.max() + 1])
    return out


def derive_l2(pt_l1, pt_gen, eta, abs_edges=ABS_ETA_EDGES, pt_gen_edges=None, degree: int = 4,
              iterations: int = 4, min_count: int = 30, min_jets: int = 300,
              pt_gen_min: np.ndarray | None = None) -> JECLevel:
    """L2Relative from L1-corrected jets matched to gen jets (flat arrays, GeV), per |eta| bin.

    ``pt_gen_min`` (per |eta| bin, GeV) drops pt_gen bins below it (see ``efficiency_turn_on``).
    """
    pt_gen_edges = default_pt_gen_edges() if pt_gen_edges is None else np.asarray(pt_gen_edges)
    b = abs_bin(eta, abs_edges)
    nb = len(abs_edges) - 1
    rows = np.full((nb, degree + 1), np.nan)
    ranges = np.full((nb, 2), np.nan)
    info = {"n": [], "bins": [], "nonclosure": [], "chi2_ndf": [], "copied": []}
    for i in range(nb):
        m = b == i
        info["n"].append(int(m.sum()))
        fit = None
        if m.sum() >= min_jets:
            try:
                edges = pt_gen_edges if pt_gen_min is None else pt_gen_edges[pt_gen_edges >= pt_gen_min[i] - 1e-9]
                fit = invert_response(pt_l1[m], pt_gen[m], edges, degree, iterations, min_count)
            except ValueError:
                fit = None
        if fit is not None:
            rows[i], ranges[i], fi = fit
            info["bins"].append(fi["n_bins"])
            info["nonclosure"].append(fi["max_nonclosure_by_iteration"])
            info["chi2_ndf"].append(fi["chi2_ndf"])
        else:
            info["bins"].append(0)
            info["nonclosure"].append([])
            info["chi2_ndf"].append(float("nan"))
    _fill_missing_rows(rows, info)
    for i, j in info["copied"]:
        ranges[i] = ranges[j]
    rows_s = mirror_rows(rows)
    clamps = mirror_rows(ranges)[:, None, :]
    return JECLevel("L2Relative", ("JetPt",), l2_formula(degree), mirrored_edges(abs_edges), clamps, rows_s, info)


def apply_l1l2(l1: JECLevel, l2: JECLevel, pt_raw, eta, rho, area) -> tuple[np.ndarray, np.ndarray]:
    """(pt_L1, pt_L1L2) in GeV, levels applied in sequence like FactorizedJetCorrector."""
    pt_l1 = l1.factor(eta, pt_raw, rho=rho, area=area) * pt_raw
    return pt_l1, l2.factor(eta, pt_l1) * pt_l1


# --------------------------------------------------------------------------- text files

def format_jec_text(level: JECLevel) -> str:
    """The standard JEC text file of one level (header line, one row per eta bin)."""
    nvars = len(level.variables)
    header = (f"{{1 JetEta {nvars} {' '.join(level.variables)} {level.formula} Correction {level.level}}}")
    lines = [header]
    npar = level.params.shape[1]
    for i in range(len(level.eta_edges) - 1):
        cols = [f"{level.eta_edges[i]:.4f}", f"{level.eta_edges[i + 1]:.4f}", str(2 * nvars + npar)]
        for j in range(nvars):
            cols += [f"{level.clamps[i, j, 0]:.6g}", f"{level.clamps[i, j, 1]:.6g}"]
        cols += [f"{p:.9g}" for p in level.params[i]]
        lines.append(" ".join(cols))
    return "\n".join(lines) + "\n"


def write_jec_files(outdir: str | Path, name: str, levels: list[JECLevel], algorithm: str = "AK4PF") -> list[str]:
    """Write ``<name>_<level>_<algorithm>.txt`` for each level; returns the paths.

    ``name`` must be ``<campaign>_<era>_<MC|DATA>`` (coffea's FactorizedJetCorrector
    parses the file name into five underscore-separated fields).
    """
    parts = name.split("_")
    if len(parts) not in (3, 4) or "." in name:
        raise ValueError(f"JEC era name {name!r} must look like Campaign_Era_MC (3 or 4 fields, no dots)")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for level in levels:
        path = outdir / f"{name}_{level.level}_{algorithm}.txt"
        path.write_text(format_jec_text(level))
        paths.append(str(path))
    return paths


def coffea_l1l2_pt(paths: list[str], pt_raw, eta, rho, area) -> np.ndarray:
    """Corrected pT (GeV) through coffea's extractor + JECStack + CorrectedJetsFactory (flat arrays)."""
    import awkward as ak
    from coffea.jetmet_tools import CorrectedJetsFactory, JECStack
    from coffea.lookup_tools import extractor

    ext = extractor()
    ext.add_weight_sets([f"* * {p}" for p in paths])
    ext.finalize()
    evaluator = ext.make_evaluator()
    names = [Path(p).name.split(".")[0] for p in paths]
    stack = JECStack({n: evaluator[n] for n in names})
    name_map = {"JetPt": "pt", "JetMass": "mass", "JetEta": "eta", "JetA": "area", "ptRaw": "pt_raw",
                "massRaw": "mass_raw", "Rho": "rho", "ptGenJet": "pt_gen"}
    n = len(pt_raw)
    zeros = np.zeros(n)
    table = ak.zip({"pt": np.asarray(pt_raw, dtype=np.float64), "mass": zeros,
                    "pt_raw": np.asarray(pt_raw, dtype=np.float64), "mass_raw": zeros,
                    "eta": np.asarray(eta, dtype=np.float64), "area": np.asarray(area, dtype=np.float64),
                    "rho": np.asarray(rho, dtype=np.float64), "pt_gen": zeros})
    jagged = ak.unflatten(table, np.array([n]))
    corrected = CorrectedJetsFactory(name_map, stack).build(jagged)
    return ak.to_numpy(ak.flatten(corrected["pt"]))


# --------------------------------------------------------------------------- closure

def closure_table(response: dict[str, np.ndarray], pt_gen, eta_gen, flavour, pt_gen_min: float = 30.0,
                  abs_eta_max: float = 2.5, abs_edges=ABS_ETA_EDGES) -> dict:
    """Median responses for each correction in ``response`` (name -> R per jet).

    Pooled over pt_gen > ``pt_gen_min`` GeV: per |eta_gen| bin, and for |eta_gen| <
    ``abs_eta_max`` all flavours together and per flavour (uds, c, b, g) with the spread.
    """
    from processors.jets import flavour_category

    pt_gen, eta_gen = np.asarray(pt_gen), np.abs(np.asarray(eta_gen))
    groups = flavour_category(flavour)
    sel_pt = pt_gen > pt_gen_min
    out: dict = {"eta_edges": list(abs_edges), "corrections": {}}
    for name, r in response.items():
        r = np.asarray(r)
        row = {"eta_bins": [], "eta_counts": []}
        for lo, hi in zip(abs_edges[:-1], abs_edges[1:]):
            m = sel_pt & (eta_gen >= lo) & (eta_gen < hi)
            row["eta_bins"].append(float(np.median(r[m])) if m.sum() else float("nan"))
            row["eta_counts"].append(int(m.sum()))
        central = sel_pt & (eta_gen < abs_eta_max)
        row["all"] = float(np.median(r[central])) if central.sum() else float("nan")
        row["n_central"] = int(central.sum())
        row["flavours"] = {}
        row["flavour_counts"] = {}
        for g in FLAVOUR_GROUPS:
            m = central & (groups == g)
            row["flavours"][g] = float(np.median(r[m])) if m.sum() else float("nan")
            row["flavour_counts"][g] = int(m.sum())
        vals = [v for v in row["flavours"].values() if np.isfinite(v)]
        row["spread"] = float(max(vals) - min(vals)) if len(vals) >= 2 else float("nan")
        out["corrections"][name] = row
    return out


def pt_closure(r: np.ndarray, pt_gen, eta_gen, pt_edges, abs_eta_max: float = 2.5, min_count: int = 30):
    """Median response in pt_gen bins for |eta_gen| < ``abs_eta_max`` (NaN where fewer than min_count)."""
    m = np.abs(np.asarray(eta_gen)) < abs_eta_max
    med, _, cnt = binned_medians(np.asarray(r)[m], np.asarray(pt_gen)[m], np.asarray(pt_edges), min_count)
    return med, cnt


def format_closure(table: dict, pt_rows: dict | None = None) -> str:
    """The closure table as text (medians of R = pt / pt_gen)."""
    edges = table["eta_edges"]
    names = list(table["corrections"])
    lines = ["median response R = pT / pT_gen, pT_gen > 30 GeV"]
    head = f"{'|eta_gen|':>12} " + " ".join(f"{n:>9}" for n in names) + f" {'jets':>8}"
    lines.append(head)
    first = table["corrections"][names[0]]
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        vals = " ".join(f"{table['corrections'][n]['eta_bins'][k]:9.4f}" for n in names)
        lines.append(f"{lo:5.1f}-{hi:<6.1f} {vals} {first['eta_counts'][k]:8d}")
    lines.append(f"{'<2.5 all':>12} " + " ".join(f"{table['corrections'][n]['all']:9.4f}" for n in names)
                 + f" {first['n_central']:8d}")
    for g in FLAVOUR_GROUPS:
        lines.append(f"{'<2.5 ' + g:>12} " + " ".join(f"{table['corrections'][n]['flavours'][g]:9.4f}" for n in names)
                     + f" {first['flavour_counts'][g]:8d}")
    lines.append(f"{'spread':>12} " + " ".join(f"{table['corrections'][n]['spread']:9.4f}" for n in names))
    if pt_rows:
        lines.append("")
        lines.append("median response in pt_gen bins, |eta_gen| < 2.5")
        edges_pt = pt_rows["edges"]
        lines.append(f"{'pt_gen':>14} " + " ".join(f"{n:>9}" for n in pt_rows["medians"]) + f" {'jets':>8}")
        for k in range(len(edges_pt) - 1):
            if pt_rows["counts"][k] == 0:
                continue
            vals = " ".join(f"{pt_rows['medians'][n][k]:9.4f}" for n in pt_rows["medians"])
            lines.append(f"{edges_pt[k]:6.0f}-{edges_pt[k + 1]:<7.0f} {vals} {pt_rows['counts'][k]:8d}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- reading (I/O edge)

JET_BRANCHES = ("Jet_pt", "Jet_rawFactor", "Jet_eta", "Jet_phi", "Jet_area", "Jet_genJetIdx",
                "Jet_hadronFlavour", "Jet_partonFlavour", "GenJet_pt", "GenJet_eta", "GenJet_phi")


def read_jet_events(paths: list[str], treename: str = "Events"):
    """Events (jagged jets with pt_raw, eta, phi, area, gen match, flavour; rho; event id) from PFNano files."""
    import awkward as ak
    import uproot

    from processors.execution import BadInputError

    parts = []
    for path in paths:
        if not Path(path).exists():
            raise BadInputError(f"{path}: file does not exist")
        try:
            with uproot.open(path) as f:
                if treename not in f:
                    raise BadInputError(f"{path}: no '{treename}' tree")
                tree = f[treename]
                rho_name = next((n for n in ("fixedGridRhoFastjetAll", "Rho_fixedGridRhoFastjetAll") if n in tree), None)
                missing = [b for b in JET_BRANCHES if b not in tree] + ([] if rho_name else ["fixedGridRhoFastjetAll"])
                if missing:
                    raise BadInputError(f"{path}: missing branch(es) {', '.join(missing)}")
                extra = ["event"] if "event" in tree else []
                arr = tree.arrays(list(JET_BRANCHES) + [rho_name] + extra)
        except BadInputError:
            raise
        except Exception as err:  # uproot raises many kinds for damaged files
            raise BadInputError(f"{path}: cannot be read ({type(err).__name__}: {str(err)[:160]})") from None
        pt_raw = (1.0 - arr["Jet_rawFactor"]) * arr["Jet_pt"]
        gen = ak.zip({"pt": arr["GenJet_pt"], "eta": arr["GenJet_eta"], "phi": arr["GenJet_phi"]})
        idx = arr["Jet_genJetIdx"]
        valid = (idx >= 0) & (idx < ak.num(gen))
        g = gen[ak.mask(idx, valid)]
        dr = delta_r(arr["Jet_eta"], arr["Jet_phi"], g.eta, g.phi)
        matched = ak.fill_none(dr < MAX_MATCH_DR, False)
        had = ak.values_astype(arr["Jet_hadronFlavour"], np.int32)
        par = abs(ak.values_astype(arr["Jet_partonFlavour"], np.int32))
        jets = ak.zip({
            "pt_raw": pt_raw, "eta": arr["Jet_eta"], "phi": arr["Jet_phi"], "area": arr["Jet_area"],
            "pt_gen": ak.where(matched, ak.fill_none(g.pt, -1.0), -1.0),
            "eta_gen": ak.where(matched, ak.fill_none(g.eta, 0.0), 0.0),
            "flavour": ak.where(had != 0, had, par),
        })
        reco_idx = idx[matched]
        gen_local = ak.local_index(gen.pt, axis=1)
        pairs = ak.cartesian({"g": gen_local, "r": reco_idx}, axis=1, nested=True)
        has_reco = ak.any(pairs.g == pairs.r, axis=2)
        genjets = ak.zip({"pt": gen.pt, "eta": gen.eta, "has_reco": ak.fill_none(has_reco, False)})
        ev = {"jets": jets, "genjets": genjets, "rho": arr[rho_name]}
        if extra:
            ev["event"] = arr["event"]
        parts.append(ak.zip(ev, depth_limit=1))
    if not parts:
        raise BadInputError("no input files")
    return ak.concatenate(parts)


def flatten_jets(events) -> dict[str, np.ndarray]:
    """Flat per-jet arrays with the event's rho broadcast to each jet."""
    import awkward as ak

    jets = events.jets
    rho = ak.broadcast_arrays(events.rho, jets.pt_raw)[0]
    out = {f: ak.to_numpy(ak.flatten(jets[f])).astype(np.float64) for f in jets.fields}
    out["rho"] = ak.to_numpy(ak.flatten(rho)).astype(np.float64)
    out["flavour"] = out["flavour"].astype(np.int64)
    return out


def pileup_offsets(events_pu, events_nopu, pt_nopu_min: float = 5.0) -> dict[str, np.ndarray]:
    """Matched PU/noPU jets: offset = pt_raw(PU) - pt_raw(noPU) with rho, area, eta, pt_raw(PU) (flat)."""
    import awkward as ak

    from processors.execution import BadInputError

    if len(events_pu) != len(events_nopu):
        raise BadInputError(f"PU and noPU samples have different numbers of events ({len(events_pu)} vs {len(events_nopu)})")
    if "event" in events_pu.fields and "event" in events_nopu.fields:
        if not np.array_equal(ak.to_numpy(events_pu.event), ak.to_numpy(events_nopu.event)):
            raise BadInputError("PU and noPU samples are not the same events (event numbers differ)")
    idx = match_pileup_jets(events_pu.jets, events_nopu.jets)
    partner = events_nopu.jets[idx]
    ok = ~ak.is_none(idx, axis=1)
    pu = events_pu.jets[ok]
    nopu = partner[ok]
    rho = ak.broadcast_arrays(events_pu.rho, pu.pt_raw)[0]
    flat = {
        "pt_raw": ak.flatten(pu.pt_raw), "pt_raw_nopu": ak.flatten(nopu.pt_raw), "eta": ak.flatten(pu.eta),
        "area": ak.flatten(pu.area), "rho": ak.flatten(rho),
    }
    flat = {k: ak.to_numpy(v).astype(np.float64) for k, v in flat.items()}
    keep = flat["pt_raw_nopu"] > pt_nopu_min
    flat = {k: v[keep] for k, v in flat.items()}
    flat["offset"] = flat["pt_raw"] - flat["pt_raw_nopu"]
    flat["n_pu_jets"] = int(ak.sum(ak.num(events_pu.jets)))
    return flat


# --------------------------------------------------------------------------- command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    from processors.execution import add_executor_arguments

    parser.add_argument("--events", type=int, default=20000, help="events to generate (each of PU and noPU)")
    parser.add_argument("--events-per-file", type=int, default=2000, help="events per generated file")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (the same for PU and noPU)")
    parser.add_argument("--pileup", type=float, default=30.0, help="mean pileup of the PU sample")
    parser.add_argument("--process", default="qcd", help="generator process")
    parser.add_argument("--out", default="outputs/jec", help="folder for the text files")
    parser.add_argument("--name", default="Caliber_V1_MC", help="era name, Campaign_Era_MC")
    parser.add_argument("--algorithm", default="AK4PF", help="jet algorithm field of the file names")
    parser.add_argument("--workdir", default="cache/derive_jec", help="where generated samples go")
    parser.add_argument("--fileset-pu", nargs="+", help="existing PU sample (ROOT files or a fileset JSON)")
    parser.add_argument("--fileset-nopu", nargs="+", help="the same events without pileup")
    parser.add_argument("--degree", type=int, default=4, help="L2Relative polynomial degree in log10 pT")
    parser.add_argument("--iterations", type=int, default=4, help="L2 numerical-inversion iterations")
    parser.add_argument("--min-pt-gen", type=float, default=10.0, help="lowest pt_gen (GeV) of the L2 inversion")
    parser.add_argument("--min-efficiency", type=float, default=0.98,
                        help="start the L2 inversion where the gen-jet reconstruction efficiency reaches this "
                             "fraction of its plateau (avoids the reco-threshold bias)")
    add_executor_arguments(parser)


def write_jec_config(outdir: str | Path, name: str, paths: list[str]) -> Path:
    """Write ``<name>.yaml`` (the ``--jec`` config of ``runner.py run``) naming ``paths`` relative to it."""
    out = Path(outdir) / f"{name}.yaml"
    lines = [f"# L1FastJet + L2Relative derived by runner.py derive-jec ({name}); paths relative to this file.",
             "jec:", "  name: L1L2", "  text_files:"] + [f"    - {Path(p).name}" for p in paths]
    out.write_text("\n".join(lines) + "\n")
    return out


def _paths(specs: list[str]) -> list[str]:
    from processors.execution import load_fileset

    fs = load_fileset(specs)
    return [p for entry in fs.values() for p in entry["files"]]


def _generate(args, pileup: float, sub: str) -> list[str]:
    from processors.execution import BadInputError

    try:
        from samples.generate import generate_sample
    except ImportError as err:
        raise BadInputError(f"samples/generate.py is not usable ({err}); give --fileset-pu and --fileset-nopu") from None
    outdir = Path(args.workdir) / f"{args.process}_seed{args.seed}_n{args.events}" / sub
    return list(generate_sample(str(outdir), n_events=args.events, events_per_file=args.events_per_file,
                                seed=args.seed, pileup_mean=pileup, process=args.process,
                                executor=args.executor, workers=args.workers))


def main(args) -> int:
    from processors.execution import BadInputError

    t0 = time.time()
    if bool(args.fileset_pu) != bool(args.fileset_nopu):
        raise BadInputError("give both --fileset-pu and --fileset-nopu (the same events with and without pileup)")
    if args.fileset_pu:
        files_pu, files_nopu = _paths(args.fileset_pu), _paths(args.fileset_nopu)
    else:
        print(f"generating {args.events} events with pileup {args.pileup} and without (seed {args.seed})")
        files_pu = _generate(args, args.pileup, "pu")
        files_nopu = _generate(args, 0.0, "nopu")
    t_gen = time.time()
    events_pu = read_jet_events(files_pu)
    events_nopu = read_jet_events(files_nopu)

    # L1FastJet from matched PU / noPU jets
    off = pileup_offsets(events_pu, events_nopu)
    l1 = derive_l1(off["offset"], off["rho"], off["area"], off["pt_raw"], off["pt_raw_nopu"], off["eta"])
    # L2Relative from L1-corrected jets matched to gen jets
    jets = flatten_jets(events_pu)
    gm = jets["pt_gen"] > 0
    jets = {k: v[gm] for k, v in jets.items()}
    pt_l1 = l1.factor(jets["eta"], jets["pt_raw"], rho=jets["rho"], area=jets["area"]) * jets["pt_raw"]
    edges = default_pt_gen_edges(args.min_pt_gen)
    import awkward as ak

    gen = events_pu.genjets
    turn_on = efficiency_turn_on(ak.to_numpy(ak.flatten(gen.pt)), np.abs(ak.to_numpy(ak.flatten(gen.eta))),
                                 ak.to_numpy(ak.flatten(gen.has_reco)), edges, relative=args.min_efficiency)
    l2 = derive_l2(pt_l1, jets["pt_gen"], jets["eta"], pt_gen_edges=edges, degree=args.degree,
                   iterations=args.iterations, pt_gen_min=turn_on)
    try:
        paths = write_jec_files(args.out, args.name, [l1, l2], args.algorithm)
    except ValueError as err:
        raise BadInputError(str(err)) from None

    pt_corr = coffea_l1l2_pt(paths, jets["pt_raw"], jets["eta"], jets["rho"], jets["area"])
    _, pt_own = apply_l1l2(l1, l2, jets["pt_raw"], jets["eta"], jets["rho"], jets["area"])
    max_diff = float(np.max(np.abs(pt_corr / pt_own - 1.0))) if len(pt_own) else 0.0

    responses = {"raw": jets["pt_raw"] / jets["pt_gen"], "L1": pt_l1 / jets["pt_gen"], "L1L2": pt_corr / jets["pt_gen"]}
    table = closure_table(responses, jets["pt_gen"], jets["eta_gen"], jets["flavour"])
    pt_edges = np.geomspace(20.0, 3000.0, 21)
    pt_rows = {"edges": pt_edges, "medians": {}, "counts": None}
    for n, r in responses.items():
        pt_rows["medians"][n], pt_rows["counts"] = pt_closure(r, jets["pt_gen"], jets["eta_gen"], pt_edges)

    print(f"input: {len(events_pu)} events, {off['n_pu_jets']} PU jets, {len(off['offset'])} matched to noPU, "
          f"{len(jets['pt_raw'])} matched to gen jets")
    print("L1FastJet  |eta| bin: jets, p0 [GeV], p1, p2, chi2/ndf (offset = A (p0 + p1 (rho - 20)) (1 + p2 ln pT))")
    nb = len(ABS_ETA_EDGES) - 1
    for i in range(nb):
        p = l1.params[nb + i]
        print(f"  {ABS_ETA_EDGES[i]:.1f}-{ABS_ETA_EDGES[i + 1]:.1f}: {l1.info['n'][i]:7d}  "
              f"{p[0]:8.3f} {p[1]:8.4f} {p[2]:8.4f} {l1.info['chi2_ndf'][i]:7.2f}")
    print("L2Relative |eta| bin: jets, lowest pt_gen [GeV] (efficiency), pT_L1 range [GeV], "
          "closure chi2/ndf, max |median R - 1| per iteration")
    for i in range(nb):
        lo, hi = l2.clamps[nb + i, 0]
        hist_ = " ".join(f"{v:.3f}" for v in l2.info["nonclosure"][i])
        print(f"  {ABS_ETA_EDGES[i]:.1f}-{ABS_ETA_EDGES[i + 1]:.1f}: {l2.info['n'][i]:7d}  {turn_on[i]:6.1f}  "
              f"{lo:7.1f}-{hi:<7.1f} {l2.info['chi2_ndf'][i]:6.2f}  {hist_}")
    if l1.info["copied"] or l2.info["copied"]:
        print(f"bins without enough jets (copied from neighbours): L1 {l1.info['copied']}, L2 {l2.info['copied']}")
    print(format_closure(table, pt_rows))
    row = table["corrections"]["L1L2"]
    print(f"closure (pt_gen > 30 GeV, |eta| < 2.5, all flavours): median R = {row['all']:.4f} "
          f"({'within' if abs(row['all'] - 1) < 0.01 else 'OUTSIDE'} 1%); flavour spread {row['spread']:.4f}")
    print(f"coffea JECStack vs own evaluation: max relative difference {max_diff:.2e}")
    summary = {"name": args.name, "files": [Path(p).name for p in paths], "events": int(len(events_pu)),
               "pu_jets": off["n_pu_jets"], "matched_pu_nopu": int(len(off["offset"])),
               "matched_gen": int(len(jets["pt_raw"])), "pileup_mean": args.pileup, "seed": args.seed,
               "closure": table, "pt_closure": {"edges": pt_edges.tolist(),
                                                "medians": {k: v.tolist() for k, v in pt_rows["medians"].items()},
                                                "counts": pt_rows["counts"].tolist()},
               "l2_pt_gen_min": turn_on.tolist(), "coffea_max_rel_diff": max_diff}
    config_path = write_jec_config(args.out, args.name, paths)
    summary_path = Path(args.out) / f"{args.name}_closure.json"
    summary_path.write_text(json.dumps(summary, indent=1, default=float))
    paths += [str(config_path), str(summary_path)]
    print(f"wrote {', '.join(paths)}")
    print(f"time: generation {t_gen - t0:.0f} s, derivation {time.time() - t_gen:.0f} s")
    return 0
