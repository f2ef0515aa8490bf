"""Z->ee study evaluation (issue 16): truth tables, BW x CB fits with systematics, closure, bootstrap.

The headline is truth-based: on held-out 'data'-detector pairs whose generator record sits in a
sidecar the data processing never reads (``*.truth.parquet``), the median, effective IQR and
sigma_eff of E_corr / E_true per |eta| and E_T bin. The BW x CB fit of m_ee is what a real-data
analysis would see; its CB tail is fixed from the MC fit of the same correction and the fit
range and binning are varied for a systematic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.zee_labels import pair_masses
from results.zfit import effective_iqr, narrowest_half_width

ETA_BINS = ((0.0, 1.0), (1.0, 1.4442), (1.566, 2.0), (2.0, 2.5))
ET_BINS = ((15.0, 35.0), (35.0, 45.0), (45.0, 55.0), (55.0, 1000.0))
FIT_RANGES = ((80.0, 100.0), (75.0, 105.0), (82.0, 100.0), (84.0, 98.0))
BIN_WIDTHS = (0.25, 0.5)


def attach_hidden_truth(data: dict, directory: str | Path) -> int:
    """Fill ``data['e_true']`` of 'data' electrons from the truth sidecars in ``directory``; returns matches.

    The join is on (event, float32 eta) of the reconstructed electron: exact, since both come
    from the same float32 branch.
    """
    import awkward as ak

    from core.errors import BadInputError

    files = sorted(Path(directory).glob("*.truth.parquet"))
    if not files:
        raise BadInputError(f"{directory}: no *.truth.parquet sidecars (generate the 'data' sample again)")
    t = ak.concatenate([ak.from_parquet(f) for f in files])
    key = ak.to_numpy(t.event).astype(np.int64) * 2**32 + ak.to_numpy(t.eta).astype(np.float32).view(np.uint32)
    lookup = dict(zip(key.tolist(), ak.to_numpy(t.e_true).tolist()))
    k = data["event"].astype(np.int64) * 2**32 + data["eta"].astype(np.float32).view(np.uint32).astype(np.int64)
    data["e_true"] = np.array([lookup.get(x, np.nan) for x in k.tolist()])
    return int(np.isfinite(data["e_true"]).sum())


def response_metrics(r: np.ndarray) -> dict:
    """median, effective IQR ((q75 - q25) / 1.349 / median) and sigma_eff (68% narrowest half-width / median)."""
    r = np.sort(r[np.isfinite(r)])
    if len(r) < 20:
        return {"n": int(len(r)), "median": np.nan, "eiqr": np.nan, "sigma_eff": np.nan}
    median = float(np.percentile(r, 50))
    return {"n": int(len(r)), "median": median, "eiqr": effective_iqr(r),
            "sigma_eff": narrowest_half_width(r, 0.683) / median}


def _cells(test: dict) -> dict[str, np.ndarray]:
    """Masks of the table rows: inclusive, per |eta| bin, per true-E_T bin, and the 2D grid."""
    et = test["e_true"] / np.cosh(test["eta"])
    a = np.abs(test["eta"])
    ok = np.isfinite(et) & (et > ET_BINS[0][0])
    cells = {"inclusive": ok}
    for lo, hi in ETA_BINS:
        cells[f"|eta| {lo}-{hi}"] = ok & (a >= lo) & (a < hi)
    for lo, hi in ET_BINS:
        cells[f"E_T {lo:.0f}-{hi:.0f}"] = ok & (et >= lo) & (et < hi)
    for elo, ehi in ETA_BINS:
        for tlo, thi in ET_BINS:
            cells[f"|eta| {elo}-{ehi}, E_T {tlo:.0f}-{thi:.0f}"] = ok & (a >= elo) & (a < ehi) & (et >= tlo) & (et < thi)
    return cells


def truth_table(test: dict, corrections: dict[str, list[np.ndarray]]) -> dict:
    """Per correction and cell: metrics of every seed and their mean / std over seeds."""
    out = {}
    for name, per_seed in corrections.items():
        out[name] = {}
        for cell, mask in _cells(test).items():
            rows = [response_metrics(test["e_raw"][mask] * c[mask] / test["e_true"][mask]) for c in per_seed]
            summary = {"n": rows[0]["n"], "seeds": rows}
            for key in ("median", "eiqr", "sigma_eff"):
                v = np.array([r[key] for r in rows])
                summary[key] = float(np.mean(v))
                summary[key + "_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
            out[name][cell] = summary
    return out


def bootstrap_gain(test: dict, a: list[np.ndarray], b: list[np.ndarray], n_boot: int = 200, seed: int = 1,
                   metric: str = "eiqr") -> dict:
    """Relative gain 1 - res(a) / res(b) on the same electrons (inclusive), averaged over seeds.

    Pairs are resampled (both legs together, the same resample for a and b): ``boot_std`` is the
    statistical error of the seed-averaged gain; ``seed_std`` the spread of the per-seed gains.
    """
    ok = np.isfinite(test["e_true"]) & (test["e_true"] / np.cosh(test["eta"]) > ET_BINS[0][0])
    n_pairs = len(test["e_raw"]) // 2
    rng = np.random.default_rng(seed)

    def gains(rows: np.ndarray) -> np.ndarray:
        g = []
        for ca, cb in zip(a, b):
            ra = response_metrics((test["e_raw"] * ca / test["e_true"])[rows])[metric]
            rb = response_metrics((test["e_raw"] * cb / test["e_true"])[rows])[metric]
            g.append(1 - ra / rb)
        return np.array(g)

    all_rows = np.flatnonzero(ok)
    per_seed = gains(all_rows)
    boots = []
    for _ in range(n_boot):
        p = rng.integers(0, n_pairs, n_pairs)
        rows = np.concatenate([2 * p, 2 * p + 1])
        rows = rows[ok[rows]]
        boots.append(gains(rows).mean())
    return {"gain": float(per_seed.mean()), "boot_std": float(np.std(boots, ddof=1)),
            "seed_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
            "per_seed": per_seed.tolist(), "n_boot": n_boot, "metric": metric}


def zfit_rows(mc_test: dict, data_test: dict, corr_mc: np.ndarray, corr_data: np.ndarray,
              variations: bool) -> dict:
    """BW x CB of held-out data m_ee with the CB tail fixed from the MC fit of the same correction.

    Nominal 80-100 GeV, 0.25 GeV bins; with ``variations`` every range of FIT_RANGES x BIN_WIDTHS
    (the MC tail refitted in each) and the half-spread of sigma_CB / peak as systematic.
    """
    from results.zfit import fit_masses, sigma_effective

    m_mc, m_data = pair_masses(mc_test, corr_mc), pair_masses(data_test, corr_data)
    combos = [(r, w) for r in FIT_RANGES for w in BIN_WIDTHS] if variations else [(FIT_RANGES[0], BIN_WIDTHS[0])]
    fits = []
    for rng_, width in combos:
        mc_fit = fit_masses(m_mc, rng_, width)
        free = fit_masses(m_data, rng_, width)
        fixed = fit_masses(m_data, rng_, width, fix_tail=(mc_fit.alpha, mc_fit.n))
        fits.append({"range": list(rng_), "bin_width": width, "mc": mc_fit.as_dict(), "data_free_tail": free.as_dict(),
                     "data": fixed.as_dict()})
    row = {"nominal": fits[0], "sigma_eff_data": sigma_effective(m_data), "sigma_eff_mc": sigma_effective(m_mc)}
    if variations:
        s = np.array([f["data"]["sigma_cb"] for f in fits])
        p = np.array([f["data"]["peak"] for f in fits])
        row["variations"] = fits
        row["sigma_cb_syst"] = float(0.5 * (s.max() - s.min()))
        row["peak_syst"] = float(0.5 * (p.max() - p.min()))
        row["alpha_at_limit"] = sum(abs(f["mc"]["alpha"] - 0.4) < 1e-3 for f in fits)
    return row


def closure_rows(mc_test: dict, corr_closure: list[np.ndarray], corr_truth: list[np.ndarray]) -> dict:
    """Median E/E_true per true-E_T bin for the label path on MC-as-data vs the MC-truth path, per seed."""
    et = mc_test["e_true"] / np.cosh(mc_test["eta"])
    rows = {}
    for lo, hi in ET_BINS:
        m = np.isfinite(et) & (et >= lo) & (et < hi)
        r = mc_test["e_raw"][m] / mc_test["e_true"][m]
        lab = [float(np.median(r * c[m])) for c in corr_closure]
        tru = [float(np.median(r * c[m])) for c in corr_truth]
        rows[f"E_T {lo:.0f}-{hi:.0f}"] = {
            "n": int(m.sum()), "label_path_median": lab, "truth_path_median": tru,
            "label_path_eiqr": [response_metrics(r * c[m])["eiqr"] for c in corr_closure],
            "truth_path_eiqr": [response_metrics(r * c[m])["eiqr"] for c in corr_truth],
            "uncorrected_eiqr": response_metrics(r)["eiqr"],
            "max_abs_shift": float(max(abs(x / y - 1) for x, y in zip(lab, tru)))}
    return rows
