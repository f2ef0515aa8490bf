"""Length-bucketed padding of the inference backends (issue 15): same answers as padding every batch to
its longest jet, in the jets' order, padded once for two models; flat pT_D / sigma2 equal the awkward ones."""
from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "trained" / "deepsets_lite.keras"


def _flat(counts, width=3, seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return rng.normal(size=(int(offsets[-1]), width)).astype(np.float32), offsets


def test_pad_rows_scatter_equals_a_gather():
    from models.data import pad_rows

    counts = np.array([0, 3, 1, 7, 2, 0, 5])
    content, offsets = _flat(counts)
    rows = np.array([6, 1, 3, 0, 4])
    for length in (1, 3, 7):
        start, n = offsets[rows], offsets[rows + 1] - offsets[rows]
        pos = np.arange(length)
        want_mask = pos[None, :] < n[:, None]  # the first `length` entries of each jet, gathered
        want = np.where(want_mask[..., None], content[np.where(want_mask, start[:, None] + pos, 0)], 0.0)
        got, got_mask = pad_rows(content, offsets, rows, length)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_mask, want_mask.astype(np.float32))


def test_plan_covers_every_jet_once_and_run_plan_restores_the_order():
    from models.padding import plan_batches, run_plan

    rng = np.random.default_rng(1)
    counts = {"charged": rng.poisson(6, 500), "neutral": rng.poisson(12, 500), "sv": rng.poisson(0.3, 500)}
    plan = plan_batches(counts, {"charged": 8, "neutral": 20, "sv": 2})
    assert np.array_equal(np.sort(plan.order), np.arange(500))
    assert plan.buckets[0][0] == 0 and plan.buckets[-1][1] == 500
    assert all(a[1] == b[0] for a, b in zip(plan.buckets[:-1], plan.buckets[1:]))
    total = np.minimum(counts["charged"], 8) + np.minimum(counts["neutral"], 20) + np.minimum(counts["sv"], 2)
    sizes = [total[plan.order[a:b]] for a, b in plan.buckets]
    assert all(s.max() <= t.min() for s, t in zip(sizes[:-1], sizes[1:]))  # buckets ordered by size
    value = np.arange(500, dtype=np.float32)
    seen = []

    def make(begin, stop):
        seen.append(stop - begin)
        return plan.order[begin:stop]

    y = run_plan(plan, make, lambda rows: value[rows] * 2, batch_size=64, is_oom=lambda e: False)
    np.testing.assert_array_equal(y, value * 2)
    assert max(seen) <= 64 and sum(seen) == 500


def test_sort_by_pt_only_long_jets_keeps_the_same_kept_entries():
    from models.data import pad_rows, sort_by_pt

    counts = np.array([2, 9, 4, 12, 1])
    content, offsets = _flat(counts, seed=3)
    rows = np.arange(len(counts))
    full, _ = pad_rows(sort_by_pt(content, offsets, 0), offsets, rows, 5)
    part_content = sort_by_pt(content, offsets, 0, longer_than=5)
    part, _ = pad_rows(part_content, offsets, rows, 5)
    for j, n in enumerate(np.minimum(counts, 5)):  # same set of kept entries per jet (order may differ)
        np.testing.assert_array_equal(np.sort(full[j, :n], axis=0), np.sort(part[j, :n], axis=0))
    short = np.flatnonzero(np.repeat(counts, counts) <= 5)
    np.testing.assert_array_equal(part_content[short], content[short])  # short jets untouched


def test_flat_pt_d_and_sigma2_equal_a_jet_by_jet_computation():
    from physics.features import pt_d, pt_d_flat, sigma2, sigma2_flat

    rng = np.random.default_rng(5)
    counts = rng.poisson(4, 300)
    counts[:5] = [0, 1, 2, 0, 1]
    n = int(counts.sum())
    pt, deta, dphi = rng.exponential(5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n)
    jet_of = np.repeat(np.arange(len(counts)), counts)
    want_ptd, want_s2 = [], []
    for j in range(len(counts)):  # the definitions, one jet at a time
        p, e, f = pt[jet_of == j], deta[jet_of == j], dphi[jet_of == j]
        want_ptd.append(np.sqrt(np.sum(p * p)) / np.sum(p) if p.sum() > 0 else 0.0)
        if p.sum() > 0:
            cov = np.cov(np.stack([e, f]), aweights=p * p, bias=True) if len(p) > 1 else np.zeros((2, 2))
            want_s2.append(np.sqrt(max(np.linalg.eigvalsh(cov)[0], 0.0)))
        else:
            want_s2.append(0.0)
    np.testing.assert_allclose(pt_d_flat(pt, jet_of, len(counts)), want_ptd, rtol=1e-12)
    # atol: sqrt of the rounding left in a vanishing eigenvalue (two-constituent jets), ~1e-9 rad
    np.testing.assert_allclose(sigma2_flat(pt, deta, dphi, jet_of, len(counts)), want_s2, rtol=1e-9, atol=1e-8)
    jag = [ak.unflatten(x, counts) for x in (pt, deta, dphi)]  # the awkward API gives the same
    np.testing.assert_array_equal(ak.to_numpy(pt_d(jag[0])), pt_d_flat(pt, jet_of, len(counts)))
    np.testing.assert_array_equal(ak.to_numpy(sigma2(*jag)), sigma2_flat(pt, deta, dphi, jet_of, len(counts)))


@pytest.fixture(scope="module")
def shipped_wrapper():
    if not SHIPPED.exists():
        pytest.skip("shipped model absent")
    from models.backends import KerasJetModel

    wrapper = KerasJetModel(SHIPPED, batch_size=64)
    wrapper.run_flat = False  # the padded path (a Deep Sets model otherwise runs flat: tests/test_flat_deepsets.py)
    return wrapper


def test_bucketed_inference_equals_padding_to_the_longest_jet(shipped_wrapper):
    """The wrapper (length buckets, scatter padding, pT-sorted only where capped) against the plain
    per-batch padding of ``predict_log_correction`` on the bare Keras model: same y_hat, same order."""
    from models.inference import predict_log_correction
    from models.padding import clear_padded_cache
    from models.synthetic import random_jets

    feats, _, _ = random_jets(400, seed=7)
    clear_padded_cache()
    got = np.asarray(shipped_wrapper(feats))
    want = predict_log_correction(shipped_wrapper.model, feats, batch_size=4096, max_len=shipped_wrapper.max_len)
    assert got.shape == (400,) and np.std(got) > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)


def test_second_model_on_the_same_features_reuses_the_padding(shipped_wrapper, monkeypatch):
    from models import data, padding
    from models.backends import KerasJetModel
    from models.synthetic import random_jets

    feats, _, _ = random_jets(300, seed=8)
    feats = {k: ak.Array(v) for k, v in feats.items()}  # the same buffers for both calls, as in the processor
    padding.clear_padded_cache()
    first = np.asarray(shipped_wrapper(feats))
    kept = dict(padding.PADDED.batches)
    assert kept and padding.PADDED.plan is not None
    calls = []
    monkeypatch.setattr(data, "pad_rows", lambda *a: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    other = KerasJetModel(SHIPPED, batch_size=64)  # another wrapper (another row) of the same inputs
    other.run_flat = False
    second = np.asarray(other(feats))
    np.testing.assert_array_equal(first, second)
    assert not calls
    monkeypatch.undo()
    padding.clear_padded_cache()
    assert padding.PADDED.key is None and not padding.PADDED.batches


def test_out_of_domain_float32_bounds_give_the_float64_answer():
    """float32 features compared with float32-rounded bounds: the same rows flagged as in float64."""
    from models.domain import _float32_bounds, _rows_outside

    rng = np.random.default_rng(11)
    lo = np.array([0.1, -1e40, -np.inf, 1 / 3, 5.0], np.float64)
    hi = np.array([0.7, 1e40, np.inf, 2 / 3, 1e39], np.float64)
    lo32, hi32 = _float32_bounds(lo, hi)
    near = np.array([np.nextafter(np.float32(b), np.float32(d)) for b in (*lo[[0, 3]], *hi[[0, 3]])
                     for d in (-np.inf, np.inf)] + [np.float32(b) for b in (*lo[[0, 3]], *hi[[0, 3]])], np.float32)
    values = rng.normal(0.4, 0.5, (400, 5)).astype(np.float32)
    values[:len(near), 0] = near
    values[:len(near), 3] = near
    values[-3:] = [[np.nan] * 5, [np.inf] * 5, [-np.inf] * 5]
    want = np.any((values.astype(np.float64) < lo) | (values.astype(np.float64) > hi), axis=1)
    np.testing.assert_array_equal(_rows_outside(values, lo, hi), want)
    np.testing.assert_array_equal(_rows_outside(values.astype(np.float64), lo, hi), want)
    assert lo32.dtype == hi32.dtype == np.float32
