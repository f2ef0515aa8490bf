"""Z-mass labels for 'data' electrons: E_T-decorrelated reference, label rounds to convergence.

The label of leg 1 from its (corrected) partner 2 is

    E_label,1 = m_ref(E_T,1)^2 / (2 E_T,2 (cosh d_eta - cos d_phi)) cosh eta_1,

so that log(E_label,1 / E_true,1) = log(m_ref(E_T,1)^2 / m_true^2) - log(E_2 / E_true,2).
``m_ref(E_T)`` is the median generator-level mass of pairs in the label window, per bin of the
leg's E_T (``physics.electrons.reference_table``), computed once from a large Pythia sample and
stored in ``configs/zee_label_reference.json``: with a perfect partner the median label bias
vanishes in every E_T bin (a single M_Z, or a single in-window median, leaves the FSR / Jacobian
correlation of m_true with E_T in the label: +1% at 15-30 GeV). The reference is fixed: it never
follows the current, unconverged corrected MC.

The labels are iterated with the partner corrected by the current regressor (half-step targets,
see ``data_targets``) until the corrections stop moving (``label_change`` below ``tol`` in every
E_T bin) or ``max_rounds`` is reached; every round's reference and change is logged.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from physics.electrons import LABEL_WINDOW, mass_constraint_label, pair_mass, reference_mass_at

DEFAULT_REFERENCE = Path(__file__).parent / "configs" / "zee_label_reference.json"
#: E_T bins (GeV) in which label convergence and closure are checked
CHECK_ET_EDGES = (15.0, 30.0, 40.0, 45.0, 50.0, 60.0, 1000.0)


def load_reference(path: str | Path | None = None) -> dict:
    """The generator-level reference table (JSON written by ``runner.py zee-study reference``), with its sha1."""
    from core.errors import BadInputError

    path = Path(path or DEFAULT_REFERENCE)
    if not path.exists():
        raise BadInputError(f"{path}: Z label reference table does not exist; run `runner.py zee-study reference`")
    text = path.read_text()
    try:
        table = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInputError(f"{path}: not valid JSON ({err})") from None
    for key in ("et_centre", "m_ref"):
        if key not in table or len(table[key]) < 2:
            raise BadInputError(f"{path}: reference table lacks {key!r} (needs at least two bins)")
    table["source"] = str(path)
    table["sha1"] = hashlib.sha1(text.encode()).hexdigest()[:12]
    return table


def leg_et(data: dict, corr: np.ndarray) -> np.ndarray:
    """Transverse energy (GeV) of every electron with energy e_raw * corr."""
    return data["e_raw"] * corr / np.cosh(data["eta"])


def pair_masses(data: dict, corr: np.ndarray | None = None) -> np.ndarray:
    """m_ee (GeV) per pair (rows of ``data``: legs 0 and 1 adjacent) with energies e_raw * corr."""
    et = leg_et(data, 1.0 if corr is None else corr)
    eta, phi = data["eta"], data["phi"]
    return pair_mass(et[0::2], eta[0::2], phi[0::2], et[1::2], eta[1::2], phi[1::2])


def corrected_pair_labels(data: dict, corr: np.ndarray, table: dict | None,
                          window: tuple[float, float] = LABEL_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Labels (GeV) of each electron from its partner's corrected energy, and the m_ref (GeV) each used.

    Rows of ``data`` are pairs (leg 0, leg 1) adjacent; NaN labels outside the corrected-mass
    window. ``table`` None: the PDG M_Z for every leg (the old, biased label).
    """
    from core.constants import M_Z

    eta, phi = data["eta"], data["phi"]
    et = leg_et(data, corr)
    m = pair_masses(data, corr)
    inside = np.repeat((m > window[0]) & (m < window[1]), 2)
    m_ref = reference_mass_at(et, table) if table is not None else np.full(len(et), M_Z)
    partner_et = np.empty_like(et)
    partner_et[0::2], partner_et[1::2] = et[1::2], et[0::2]
    d_eta = np.repeat(eta[0::2] - eta[1::2], 2)
    d_phi = np.repeat(phi[0::2] - phi[1::2], 2)
    lab = mass_constraint_label(partner_et, d_eta, d_phi, m_ref) * np.cosh(eta)
    return np.where(inside, lab, np.nan), m_ref


def data_targets(e_raw: np.ndarray, corr: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Target log(E_target / E_raw): half way, in log, from the current corrected energy to its label.

    Both legs of a pair move at once: with full steps a common scale error d gives labels
    off by -2d and the iteration oscillates; the half step removes a common scale error in
    one round and halves a leg-specific one per round.
    """
    return 0.5 * (np.log(label / e_raw) + np.log(corr))


def label_moves(previous: np.ndarray, current: np.ndarray, et: np.ndarray, edges=CHECK_ET_EDGES,
                min_count: int = 20) -> dict[str, float]:
    """median log(current / previous) per E_T bin (GeV edges), signed: how far a label round moved the scale.

    Bins with fewer than ``min_count`` electrons are left out.
    """
    d = np.log(current / previous)
    idx = np.digitize(et, edges) - 1
    return {f"{edges[b]:.0f}-{edges[b + 1]:.0f}": float(np.median(d[idx == b]))
            for b in range(len(edges) - 1) if (idx == b).sum() >= min_count}


def largest_move(moves: dict[str, float]) -> float:
    """Largest |move| of ``label_moves`` (0 when no bin is populated)."""
    return max(abs(v) for v in moves.values()) if moves else 0.0


def label_change(previous: np.ndarray, current: np.ndarray, et: np.ndarray,
                 edges=CHECK_ET_EDGES) -> float:
    """Largest |median log(current / previous)| over E_T bins (0 when no bin is populated)."""
    return largest_move(label_moves(previous, current, et, edges))


def iterate_labels(data: dict, fit: Callable[[np.ndarray, np.ndarray], np.ndarray], table: dict | None,
                   window: tuple[float, float] = LABEL_WINDOW, max_rounds: int = 8, tol: float = 1e-3,
                   log=print) -> tuple[np.ndarray, list[dict]]:
    """Label rounds with a generic regressor until converged; returns (corrections, per-round log).

    ``fit(targets, ok)`` trains on log targets (where ``ok``) and returns the new multiplicative
    corrections of every electron. Used by the label-algebra test with a regressor of known shape; the
    network training (``models.train_zee``) runs the same rounds, one learning-rate cycle each.
    """
    corr = np.ones(len(data["e_raw"]))
    rounds = []
    for r in range(max_rounds):
        lab, m_ref = corrected_pair_labels(data, corr, table, window)
        y = data_targets(data["e_raw"], corr, lab)
        ok = np.isfinite(y)
        new = fit(y, ok)
        change = label_change(corr, new, leg_et(data, new))
        rounds.append({"round": r + 1, "n_labels": int(ok.sum()), "m_ref_median": float(np.median(m_ref[ok])),
                       "change": change})
        log(f"label round {r + 1}: {ok.sum()} labels, median m_ref {rounds[-1]['m_ref_median']:.3f} GeV, "
            f"scale moved {100 * change:.3f}%")
        corr = new
        if change < tol:
            break
    return corr, rounds


def generator_acceptance(g: dict, min_pt: float = 15.0) -> np.ndarray:
    """Pairs whose bare generator electrons pass the selection's pT and ECAL acceptance (gap excluded)."""
    ok = np.ones(len(g["e1"]), bool)
    for k in ("1", "2"):
        a = np.abs(g["eta" + k])
        ok &= (g["pt" + k] > min_pt) & (a < 2.5) & ~((a > 1.4442) & (a < 1.566))
    return ok


def legs_from_pairs(g: dict) -> dict:
    """Generator pairs (``samples.zee.generator_pairs``) as adjacent legs, the layout of the shards."""
    n = len(g["e1"])
    out = {}
    for name in ("e", "eta", "phi"):
        v = np.empty(2 * n)
        v[0::2], v[1::2] = g[name + "1"], g[name + "2"]
        out[name] = v
    return {"e_true": out["e"], "e_raw": out["e"].copy(), "eta": out["eta"], "phi": out["phi"]}


def perfect_partner_bias(g: dict, table: dict | None, smear: float = 0.0, seed: int = 1,
                         edges=CHECK_ET_EDGES) -> dict:
    """Median log(E_label / E_true) per true-E_T bin of the labelled leg, with a perfect partner.

    The labelled leg carries a Gaussian relative error ``smear`` (0: perfect too), which enters the
    mass window and the E_T at which m_ref is read, as for a corrected electron.
    """
    legs = legs_from_pairs({k: v[generator_acceptance(g)] for k, v in g.items()})
    rng = np.random.default_rng(seed)
    meas = legs["e_true"] * (1 + smear * rng.standard_normal(len(legs["e_true"])))
    out = {}
    for labelled in (0, 1):
        corr = np.ones(len(meas))
        corr[labelled::2] = meas[labelled::2] / legs["e_true"][labelled::2]
        lab, _ = corrected_pair_labels(legs, corr, table)
        out[labelled] = np.log(lab[labelled::2] / legs["e_true"][labelled::2])
    bias = np.empty(len(meas))
    bias[0::2], bias[1::2] = out[0], out[1]
    et = legs["e_true"] / np.cosh(legs["eta"])
    idx = np.digitize(et, edges) - 1
    rows = {}
    for b in range(len(edges) - 1):
        m = (idx == b) & np.isfinite(bias)
        if m.sum():
            med = float(np.median(bias[m]))
            # binomial-order error of a median: 1.2533 sigma / sqrt(n)
            rows[f"{edges[b]:.0f}-{edges[b + 1]:.0f}"] = {"n": int(m.sum()), "median_log_bias": med,
                                                         "stat": float(1.2533 * np.std(bias[m]) / np.sqrt(m.sum()))}
    return rows


def scaled_regressor(base_log_corr: np.ndarray, cells: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A regressor that knows each electron's correction up to one free scale per cell: exp(base + median
    (target - base) in the cell). With a symmetric-residual ``base`` it isolates the label path's scale."""

    def fit(y: np.ndarray, ok: np.ndarray) -> np.ndarray:
        out = np.array(base_log_corr, dtype=np.float64)
        for c in np.unique(cells):
            sel = (cells == c) & ok
            out[cells == c] += np.median(y[sel] - base_log_corr[sel]) if sel.sum() else 0.0
        return np.exp(out)

    return fit
