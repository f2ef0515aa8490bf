"""Breit-Wigner (x) Crystal-Ball fit: toys with known parameters are recovered."""
from __future__ import annotations

import numpy as np
import pytest

from results.zfit import M_Z, crystal_ball, effective_iqr, fit_masses, sample_bw_cb


@pytest.mark.parametrize("sigma, dm, seed", [(1.0, 0.0, 1), (1.8, -0.4, 2)])
def test_fit_recovers_toy_width_and_peak(sigma, dm, seed):
    masses = sample_bw_cb(20_000, sigma=sigma, dm=dm, alpha=1.2, n=3.0, seed=seed)
    fit = fit_masses(masses)
    assert fit.valid
    # within 2.5 standard deviations of the fit's own uncertainty
    assert abs(fit.sigma_cb - sigma) < 2.5 * fit.sigma_cb_err, fit
    assert abs(fit.peak - (M_Z + dm)) < 2.5 * fit.peak_err, fit
    assert 0.01 < fit.sigma_cb_err < 0.2


def test_fit_separates_narrow_and_wide_peaks():
    narrow = fit_masses(sample_bw_cb(10_000, sigma=0.8, seed=3))
    wide = fit_masses(sample_bw_cb(10_000, sigma=2.0, seed=4))
    assert wide.sigma_cb - narrow.sigma_cb > 5 * np.hypot(wide.sigma_cb_err, narrow.sigma_cb_err)


def test_crystal_ball_is_continuous_at_the_tail_junction():
    alpha, n, sigma = 1.3, 2.5, 1.0
    x = np.array([-alpha * sigma - 1e-7, -alpha * sigma + 1e-7])
    y = crystal_ball(x, 0.0, sigma, alpha, n)
    assert y[0] == pytest.approx(y[1], rel=1e-5)
    assert y[1] == pytest.approx(np.exp(-0.5 * alpha**2), rel=1e-5)


def test_effective_iqr_of_a_gaussian():
    rng = np.random.default_rng(5)
    r = 1.0 + 0.02 * rng.standard_normal(200_000)
    assert effective_iqr(r) == pytest.approx(0.02, rel=0.02)


def test_fit_refuses_empty_range():
    with pytest.raises(ValueError, match="too few events"):
        fit_masses(np.array([50.0, 51.0, 130.0]))


def test_sigma_effective_of_a_gaussian():
    from results.zfit import sigma_effective

    rng = np.random.default_rng(6)
    m = 91.0 + 1.5 * rng.standard_normal(100_000)
    assert sigma_effective(m, fit_range=(70, 110)) == pytest.approx(1.5, rel=0.02)


def test_fixed_tail_is_kept_and_width_recovered():
    masses = sample_bw_cb(20_000, sigma=1.2, alpha=1.0, n=4.0, seed=7)
    fit = fit_masses(masses, fix_tail=(1.0, 4.0))
    assert fit.alpha == 1.0 and fit.n == 4.0
    assert abs(fit.sigma_cb - 1.2) < 2.5 * fit.sigma_cb_err, fit
    # a wrong tail moves the core width: what makes a free-tail sigma_CB unreliable
    wrong = fit_masses(masses, fix_tail=(3.0, 4.0))
    assert wrong.sigma_cb > fit.sigma_cb + 3 * fit.sigma_cb_err
