"""Deep Sets on flat constituents (issue 15): the padded model's answer without padding, capped inputs
that keep what padding keeps, shared by a second model; other models still padded."""
from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "trained" / "deepsets_lite.keras"
CONFIGS = ROOT / "models" / "configs"


def test_cap_rows_keeps_the_entries_padding_keeps():
    from models.data import cap_rows, pad_rows, sort_by_pt

    rng = np.random.default_rng(2)
    counts = np.array([2, 9, 0, 4, 12, 1, 5])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    content = rng.normal(size=(int(offsets[-1]), 4)).astype(np.float32)
    rows = np.arange(len(counts))
    for cap in (1, 5, 12, None):
        capped, capped_offsets = cap_rows(content, offsets, cap)
        np.testing.assert_array_equal(np.diff(capped_offsets), np.minimum(counts, cap or counts.max()))
        want = pad_rows(sort_by_pt(content, offsets, 0, longer_than=cap or 0) if cap else content, offsets, rows, cap)
        got = pad_rows(capped, capped_offsets, rows, cap)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    same, same_offsets = cap_rows(content, offsets, 12)
    assert same is content and same_offsets is offsets  # nothing to cap: no copy


@pytest.fixture(scope="module")
def wrappers():
    if not SHIPPED.exists():
        pytest.skip("shipped model absent")
    from models.backends import KerasJetModel

    flat = KerasJetModel(SHIPPED, batch_size=64, max_len={"charged": 6, "neutral": 4, "sv": 1})
    padded = KerasJetModel(SHIPPED, batch_size=64, max_len=flat.max_len)
    padded.run_flat = False
    return flat, padded


def test_flat_deepsets_equals_the_padded_model_within_rounding(wrappers):
    from models.padding import clear_padded_cache
    from models.synthetic import random_jets

    flat, padded = wrappers
    feats, _, _ = random_jets(500, seed=9)
    assert flat.flat_function(flat.input_widths()) is not None
    clear_padded_cache()
    want = np.asarray(padded(feats))
    clear_padded_cache()
    got = np.asarray(flat(feats))
    assert got.shape == (500,) and np.std(got) > 0
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)  # the same sums in another order


def test_flat_path_pads_nothing_and_shares_the_capped_inputs(wrappers, monkeypatch):
    from models import data, padding
    from models.backends import KerasJetModel
    from models.synthetic import random_jets

    flat, _ = wrappers
    flat.flat_function(flat.input_widths())  # built (its self-check pads a small batch once)
    feats, _, _ = random_jets(300, seed=4)
    feats = {k: ak.Array(v) for k, v in feats.items()}  # the same buffers for both calls, as in the processor
    calls = []
    monkeypatch.setattr(data, "pad_rows", lambda *a: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    padding.clear_padded_cache()
    first = np.asarray(flat(feats))
    kept = padding.PADDED.flat
    other = KerasJetModel(SHIPPED, batch_size=64, max_len=flat.max_len)
    np.testing.assert_array_equal(np.asarray(other(feats)), first)
    assert padding.PADDED.flat is kept and not padding.PADDED.batches and not calls
    padding.clear_padded_cache()


def test_only_deepsets_models_run_flat():
    import keras

    from models.config import load_config
    from models.flat_deepsets import deepsets_layers, flat_deepsets
    from models.networks import build_model
    from physics.features import FEATURE_NAMES

    manifest = {"features": FEATURE_NAMES,
                "norm": {c: {"mean": [0.0] * len(v), "std": [1.0] * len(v)} for c, v in FEATURE_NAMES.items()}}
    widths = {c: len(v) for c, v in FEATURE_NAMES.items()}
    deepsets = build_model(load_config(CONFIGS / "deepsets_lite.yaml"), manifest)
    assert deepsets_layers(deepsets) is not None and flat_deepsets(deepsets, widths) is not None
    particlenet = build_model(load_config(CONFIGS / "particlenet_lite.yaml"), manifest)
    assert deepsets_layers(particlenet) is None and flat_deepsets(particlenet, widths) is None
    inputs = {"globals": keras.Input((widths["globals"],), name="globals")}
    other = keras.Model(inputs, keras.layers.Dense(1, name="y_hat")(inputs["globals"]))
    assert deepsets_layers(other) is None


def test_flat_blocks_count_constituents_and_give_the_same_answer(wrappers):
    from models.flat_deepsets import flat_block_jets, predict_flat
    from models.synthetic import random_jets

    flat, _ = wrappers
    feats, _, _ = random_jets(400, seed=5)
    widths = flat.input_widths()
    blocks = [np.asarray(a) for a in flat.prepare_awkward(feats)[0]]  # what coffea.ml_tools hands numpy_call
    inputs = flat._flat_inputs(widths, 400, blocks[0], tuple(blocks[1:]))
    entries = sum(int(inputs[c][1][-1]) for c in ("charged", "neutral", "sv"))
    assert entries > 400  # several constituents a jet: blocks of 100 constituents hold fewer than 100 jets
    assert flat_block_jets(inputs, 100) == max(1, 100 * 400 // entries) < 100
    assert flat_block_jets(inputs, 10**9) == 400 and flat_block_jets({**inputs, "globals": inputs["globals"][:0]}) == 1
    fn = flat.flat_function(widths)
    one_block = predict_flat(fn, inputs, is_oom=lambda err: False, constituents=10**9)
    many_blocks = predict_flat(fn, inputs, is_oom=lambda err: False, constituents=100)
    np.testing.assert_allclose(many_blocks, one_block, rtol=0, atol=1e-6)
