"""Z-mass labels (issue 16): E_T-binned label bias with a perfect partner, and the label algebra's scale closure.

Both use an independent Pythia sample (seed 777, not the seed of the committed reference table).
The closure of the whole data-label path with the real network is tests/test_zee_closure.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from models.zee_labels import (CHECK_ET_EDGES, generator_acceptance, iterate_labels, legs_from_pairs, load_reference,
                               perfect_partner_bias, scaled_regressor)

N_EVENTS = 40_000


@pytest.fixture(scope="module")
def gen_pairs():
    from samples.zee import generator_pairs

    return generator_pairs(N_EVENTS, seed=777)


@pytest.fixture(scope="module")
def table():
    return load_reference()


def test_reference_table_is_generator_level_and_depends_on_et(table):
    assert table["seed"] != 777 and table["events"] >= 100_000
    m = np.array(table["m_ref"])
    assert np.all((m > 86) & (m < 97))
    # FSR / Jacobian: soft legs come from lighter pairs; the spread is what a single m_ref gets wrong
    assert m.max() - m.min() > 0.3


@pytest.mark.parametrize("smear", [0.0, 0.02])
def test_label_bias_with_a_perfect_partner_below_0p2_percent_in_every_et_bin(gen_pairs, table, smear):
    rows = perfect_partner_bias(gen_pairs, table, smear=smear, seed=5)
    assert len(rows) == len(CHECK_ET_EDGES) - 1
    for name, r in rows.items():
        assert r["n"] > 1000, (name, r)
        assert abs(r["median_log_bias"]) < 0.002, (name, r)


def test_single_reference_mass_label_is_biased_in_et(gen_pairs):
    """The old label (PDG M_Z for every leg) fails the same check: the test can tell."""
    rows = perfect_partner_bias(gen_pairs, None)
    biases = np.array([r["median_log_bias"] for r in rows.values()])
    assert biases.max() - biases.min() > 0.005


def test_closure_of_the_label_scale_with_a_symmetric_residual_regressor(gen_pairs, table):
    """The label path alone: a regressor that knows each electron's correction up to 2% Gaussian noise and a
    free scale per (E_T, |eta|) cell must find the true scale (median E/E_true = 1) within 0.3% in every cell
    row of E_T, after rounds to convergence, starting from the raw energies."""
    from samples.electron_detector import NOMINAL, simulate_electrons

    g = {k: v[generator_acceptance(gen_pairs)] for k, v in gen_pairs.items()}
    legs = legs_from_pairs(g)
    n = len(legs["e_true"])
    rng = np.random.default_rng(4)
    reco = simulate_electrons(legs["e_true"], legs["eta"], legs["phi"], np.tile([-1, 1], n // 2), np.zeros(n),
                              np.full(n, 20.0), None, NOMINAL, rng)
    base = np.log(legs["e_true"] / reco["e_sc"]) + 0.02 * rng.standard_normal(n) - 0.03  # 3% off to start
    et = reco["e_sc"] / np.cosh(legs["eta"])
    cells = np.digitize(et, CHECK_ET_EDGES) * 10 + np.digitize(np.abs(legs["eta"]), (0.8, 1.4442, 2.0))
    data = {"e_raw": reco["e_sc"], "eta": legs["eta"], "phi": legs["phi"]}
    corr, rounds = iterate_labels(data, scaled_regressor(base, cells), table, max_rounds=12, tol=5e-4,
                                  log=lambda *_: None)
    assert rounds[-1]["change"] < 5e-4, rounds
    idx = np.digitize(legs["e_true"] / np.cosh(legs["eta"]), CHECK_ET_EDGES) - 1
    medians = [np.median(reco["e_sc"][idx == b] * corr[idx == b] / legs["e_true"][idx == b])
               for b in range(len(CHECK_ET_EDGES) - 1)]
    print("symmetric-residual closure, median E/E_true per E_T bin:", np.round(medians, 4))
    assert np.all(np.abs(np.array(medians) - 1) < 0.003), medians
