"""``runner.py derive-jec``'s physics: derive L1FastJet + L2Relative for this detector, the CMS way.

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
``JECStack`` read (``samples.jec_levels``); reading the jets, PU/noPU matching and
the closure tables are in ``samples.jec_closure``. The fits work on flat numpy
arrays; ``derive_jec`` runs the whole derivation on PFNano files and
``format_report`` writes what it found. The command is ``commands.derive_jec``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from samples.jec_closure import (closure_table, flatten_jets, format_closure, pileup_offsets, pt_closure,
                                 read_jet_events)
from samples.jec_levels import (ABS_ETA_EDGES, L1_CLAMPS, L1_FORMULA, RHO_REF, JECLevel, abs_bin, apply_l1l2,
                                binned_medians, coffea_l1l2_pt, l2_formula, mirror_rows, mirrored_edges, poly_log10,
                                write_jec_config, write_jec_files)


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


# --------------------------------------------------------------------------- the derivation

def derive_jec(files_pu: list[str], files_nopu: list[str], outdir: str | Path, name: str, algorithm: str = "AK4PF",
               degree: int = 4, iterations: int = 4, min_pt_gen: float = 10.0, min_efficiency: float = 0.98,
               pileup_mean: float | None = None, seed: int | None = None) -> dict:
    """L1FastJet + L2Relative from the same events with (``files_pu``) and without pileup; writes the files.

    Writes ``<name>_<level>_<algorithm>.txt``, ``<name>.yaml`` (the ``--jec`` config)
    and ``<name>_closure.json`` into ``outdir``; ``pileup_mean`` and ``seed`` are only
    recorded. Returns the levels, the closure and the written ``paths`` (see ``format_report``).
    """
    import awkward as ak

    from core.errors import BadInputError

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
    edges = default_pt_gen_edges(min_pt_gen)
    gen = events_pu.genjets
    turn_on = efficiency_turn_on(ak.to_numpy(ak.flatten(gen.pt)), np.abs(ak.to_numpy(ak.flatten(gen.eta))),
                                 ak.to_numpy(ak.flatten(gen.has_reco)), edges, relative=min_efficiency)
    l2 = derive_l2(pt_l1, jets["pt_gen"], jets["eta"], pt_gen_edges=edges, degree=degree,
                   iterations=iterations, pt_gen_min=turn_on)
    try:
        paths = write_jec_files(outdir, name, [l1, l2], algorithm)
    except ValueError as err:
        raise BadInputError(str(err)) from None

    # the written files through the project's JEC stack against the own evaluation of the levels
    pt_corr = coffea_l1l2_pt(paths, jets["pt_raw"], jets["eta"], jets["rho"], jets["area"])
    _, pt_own = apply_l1l2(l1, l2, jets["pt_raw"], jets["eta"], jets["rho"], jets["area"])
    max_diff = float(np.max(np.abs(pt_corr / pt_own - 1.0))) if len(pt_own) else 0.0

    responses = {"raw": jets["pt_raw"] / jets["pt_gen"], "L1": pt_l1 / jets["pt_gen"], "L1L2": pt_corr / jets["pt_gen"]}
    table = closure_table(responses, jets["pt_gen"], jets["eta_gen"], jets["flavour"])
    pt_edges = np.geomspace(20.0, 3000.0, 21)
    pt_rows = {"edges": pt_edges, "medians": {}, "counts": None}
    for n, r in responses.items():
        pt_rows["medians"][n], pt_rows["counts"] = pt_closure(r, jets["pt_gen"], jets["eta_gen"], pt_edges)

    result = {"l1": l1, "l2": l2, "turn_on": turn_on, "table": table, "pt_rows": pt_rows, "max_diff": max_diff,
              "events": int(len(events_pu)), "pu_jets": off["n_pu_jets"], "matched_pu_nopu": int(len(off["offset"])),
              "matched_gen": int(len(jets["pt_raw"]))}
    summary = {"name": name, "files": [Path(p).name for p in paths], "events": result["events"],
               "pu_jets": result["pu_jets"], "matched_pu_nopu": result["matched_pu_nopu"],
               "matched_gen": result["matched_gen"], "pileup_mean": pileup_mean, "seed": seed,
               "closure": table, "pt_closure": {"edges": pt_edges.tolist(),
                                                "medians": {k: v.tolist() for k, v in pt_rows["medians"].items()},
                                                "counts": pt_rows["counts"].tolist()},
               "l2_pt_gen_min": turn_on.tolist(), "coffea_max_rel_diff": max_diff}
    config_path = write_jec_config(outdir, name, paths)
    summary_path = Path(outdir) / f"{name}_closure.json"
    summary_path.write_text(json.dumps(summary, indent=1, default=float))
    result["paths"] = paths + [str(config_path), str(summary_path)]
    return result


def format_report(result: dict) -> str:
    """What ``derive_jec`` found, as text: inputs, both fits per |eta| bin, the closure."""
    l1, l2, turn_on, table = result["l1"], result["l2"], result["turn_on"], result["table"]
    lines = [f"input: {result['events']} events, {result['pu_jets']} PU jets, {result['matched_pu_nopu']} matched "
             f"to noPU, {result['matched_gen']} matched to gen jets",
             "L1FastJet  |eta| bin: jets, p0 [GeV], p1, p2, chi2/ndf (offset = A (p0 + p1 (rho - 20)) (1 + p2 ln pT))"]
    nb = len(ABS_ETA_EDGES) - 1
    for i in range(nb):
        p = l1.params[nb + i]
        lines.append(f"  {ABS_ETA_EDGES[i]:.1f}-{ABS_ETA_EDGES[i + 1]:.1f}: {l1.info['n'][i]:7d}  "
                     f"{p[0]:8.3f} {p[1]:8.4f} {p[2]:8.4f} {l1.info['chi2_ndf'][i]:7.2f}")
    lines.append("L2Relative |eta| bin: jets, lowest pt_gen [GeV] (efficiency), pT_L1 range [GeV], "
                 "closure chi2/ndf, max |median R - 1| per iteration")
    for i in range(nb):
        lo, hi = l2.clamps[nb + i, 0]
        hist_ = " ".join(f"{v:.3f}" for v in l2.info["nonclosure"][i])
        lines.append(f"  {ABS_ETA_EDGES[i]:.1f}-{ABS_ETA_EDGES[i + 1]:.1f}: {l2.info['n'][i]:7d}  {turn_on[i]:6.1f}  "
                     f"{lo:7.1f}-{hi:<7.1f} {l2.info['chi2_ndf'][i]:6.2f}  {hist_}")
    if l1.info["copied"] or l2.info["copied"]:
        lines.append(f"bins without enough jets (copied from neighbours): L1 {l1.info['copied']}, "
                     f"L2 {l2.info['copied']}")
    lines.append(format_closure(table, result["pt_rows"]))
    row = table["corrections"]["L1L2"]
    lines.append(f"closure (pt_gen > 30 GeV, |eta| < 2.5, all flavours): median R = {row['all']:.4f} "
                 f"({'within' if abs(row['all'] - 1) < 0.01 else 'OUTSIDE'} 1%); flavour spread {row['spread']:.4f}")
    lines.append(f"coffea JECStack vs own evaluation: max relative difference {result['max_diff']:.2e}")
    return "\n".join(lines)
