"""Jet models: masks, permutation invariance, kNN, save/reload, padding, bad input."""
from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from models.config import ModelConfig, load_config
from models.data import masked_mae, pad_batch, pad_rows
from core.errors import BadInputError
from physics.features import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "models" / "configs"
COLLS = ("charged", "neutral", "sv")


def _manifest() -> dict:
    """Feature lists of the feature builder with a non-trivial normalisation."""
    rng = np.random.default_rng(5)
    return {"features": FEATURE_NAMES,
            "norm": {c: {"mean": rng.normal(0, 0.5, len(v)).tolist(), "std": rng.uniform(0.5, 2.0, len(v)).tolist()}
                     for c, v in FEATURE_NAMES.items()}}


def _model(arch: str):
    from models.networks import build_model

    cfg = load_config(CONFIGS / f"{arch}_lite.yaml")
    return cfg, build_model(cfg, _manifest(), output_bias=0.1)


@pytest.fixture(scope="module")
def jets():
    from models.synthetic import random_jets

    feats, y, _ = random_jets(64, seed=11)
    return feats


@pytest.fixture(scope="module", params=["deepsets", "particlenet"])
def built(request):
    return request.param, *_model(request.param)


def _predict(model, batch):
    return np.asarray(model({k: np.asarray(v, np.float32) for k, v in batch.items()}, training=False)).reshape(-1)


def test_output_shape_and_finite(built, jets):
    arch, cfg, model = built
    batch = pad_batch(jets, cfg.max_constituents)
    y = _predict(model, batch)
    assert y.shape == (64,)
    assert np.all(np.isfinite(y))
    assert np.std(y) > 0  # depends on the jet


def test_permutation_of_constituents_does_not_change_outputs(built, jets):
    arch, cfg, model = built
    batch = pad_batch(jets, cfg.max_constituents)
    y = _predict(model, batch)
    rng = np.random.default_rng(3)
    permuted = dict(batch)
    for coll in COLLS:
        perm = np.stack([rng.permutation(batch[coll].shape[1]) for _ in range(len(y))])  # padding moves too
        permuted[coll] = np.take_along_axis(batch[coll], perm[..., None], axis=1)
        permuted[f"{coll}_mask"] = np.take_along_axis(batch[f"{coll}_mask"], perm, axis=1)
    assert not np.array_equal(permuted["charged"], batch["charged"])
    np.testing.assert_allclose(_predict(model, permuted), y, rtol=1e-4, atol=1e-5)


def test_appending_padded_entries_does_not_change_outputs(built, jets):
    arch, cfg, model = built
    batch = pad_batch(jets, cfg.max_constituents)
    y = _predict(model, batch)
    rng = np.random.default_rng(4)
    longer = dict(batch)
    for coll in COLLS:
        x, m = batch[coll], batch[f"{coll}_mask"]
        extra = 7 + 3 * COLLS.index(coll)
        garbage = rng.normal(0, 50, (x.shape[0], extra, x.shape[2])).astype(np.float32)  # masked: must be ignored
        longer[coll] = np.concatenate([x, garbage], axis=1)
        longer[f"{coll}_mask"] = np.concatenate([m, np.zeros((x.shape[0], extra), np.float32)], axis=1)
        # garbage also in the padded slots that already existed
        longer[coll][:, : x.shape[1]][m == 0] = rng.normal(0, 50, (int((m == 0).sum()), x.shape[2]))
    np.testing.assert_allclose(_predict(model, longer), y, rtol=1e-4, atol=1e-5)


def test_jet_without_constituents_gives_finite_output(built, jets):
    arch, cfg, model = built
    batch = pad_batch(jets, cfg.max_constituents)
    for coll in COLLS:
        batch[f"{coll}_mask"][0] = 0.0
    y = _predict(model, batch)
    assert np.all(np.isfinite(y))


def test_knn_never_picks_a_padded_point():
    import tensorflow as tf

    from models.layers import knn_indices

    rng = np.random.default_rng(7)
    n, p, k = 40, 20, 6
    points = rng.normal(0, 0.1, (n, p, 2)).astype(np.float32)
    n_real = rng.integers(0, p + 1, n)
    n_real[:3] = [0, 1, 3]  # fewer real points than k
    mask = (np.arange(p)[None, :] < n_real[:, None]).astype(np.float32)
    for i in range(n):  # real points in random slots, padded points right on top of real ones
        perm = rng.permutation(p)
        mask[i] = mask[i][perm]
    points[mask == 0] = points[mask == 1][: int((mask == 0).sum())] if (mask == 1).sum() >= (mask == 0).sum() else 0.0
    idx, valid = knn_indices(tf.constant(points), tf.constant(mask), k)
    idx, valid = np.asarray(idx), np.asarray(valid)
    assert idx.shape == (n, p, k)
    picked_mask = np.take_along_axis(mask[:, None, :].repeat(p, 1), idx, axis=2)
    # a usable neighbour is always real and never the point itself
    assert np.all(picked_mask[valid == 1] == 1)
    assert np.all(idx[valid == 1] != np.broadcast_to(np.arange(p)[None, :, None], idx.shape)[valid == 1])
    # real points with at least k other real points only get real neighbours, all usable
    for i in range(n):
        for j in np.flatnonzero(mask[i]):
            n_other = int(mask[i].sum()) - 1
            assert valid[i, j].sum() == min(k, n_other)
            if n_other >= k:
                assert np.all(mask[i, idx[i, j]] == 1)
    # brute-force check of the neighbours of one well-filled jet
    i = int(np.argmax(mask.sum(1)))
    j = int(np.flatnonzero(mask[i])[0])
    d = ((points[i] - points[i, j]) ** 2).sum(-1)
    d[mask[i] == 0] = np.inf
    d[j] = np.inf
    assert set(idx[i, j][valid[i, j] == 1]) == set(np.argsort(d)[:k])


def test_saved_model_reloads_to_identical_predictions(built, jets, tmp_path):
    from models.inference import load_model, predict_log_correction, set_model_max_len
    from models.config import save_config

    arch, cfg, model = built
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    save_config(cfg, tmp_path / f"{arch}.config.yaml")
    set_model_max_len(model, cfg.max_constituents)
    before = predict_log_correction(model, jets, batch_size=16)
    again = load_model(path)
    after = predict_log_correction(again, jets, batch_size=16)
    np.testing.assert_array_equal(after, before)  # same batches: bit-identical
    np.testing.assert_allclose(predict_log_correction(again, jets, batch_size=64), before, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(before, _predict(model, pad_batch(jets, cfg.max_constituents)), rtol=1e-5, atol=1e-6)


def test_lite_deepsets_is_small(tmp_path):
    cfg, model = _model("deepsets")
    model.save(tmp_path / "lite.keras")
    assert (tmp_path / "lite.keras").stat().st_size < 1_000_000


def test_full_sizes_are_larger_than_lite():
    from models.networks import build_model

    for arch in ("deepsets", "particlenet"):
        full = build_model(load_config(CONFIGS / f"{arch}.yaml"), _manifest())
        lite = build_model(load_config(CONFIGS / f"{arch}_lite.yaml"), _manifest())
        assert full.count_params() > 3 * lite.count_params()


def test_model_standardises_inside(jets):
    """Shifting a feature's manifest mean changes the output: the normalisation is in the model."""
    from models.networks import build_model

    cfg = load_config(CONFIGS / "deepsets_lite.yaml")
    man = _manifest()
    a = build_model(cfg, man)
    man2 = {"features": man["features"], "norm": {c: dict(v) for c, v in man["norm"].items()}}
    man2["norm"]["globals"] = {"mean": [m + 10.0 for m in man["norm"]["globals"]["mean"]],
                               "std": man["norm"]["globals"]["std"]}
    b = build_model(cfg, man2)
    b.set_weights(a.get_weights())
    batch = pad_batch(jets, cfg.max_constituents)
    assert np.max(np.abs(_predict(a, batch) - _predict(b, batch))) > 1e-3


# --------------------------------------------------------------------------- padding and loss

def test_pad_batch_pads_to_longest_and_caps_keeping_highest_pt():
    x = ak.Array([[[1.0, 0.0], [5.0, 1.0], [3.0, 2.0]], [], [[2.0, 3.0]]])
    feats = {"globals": np.zeros((3, 11), np.float32), "charged": x, "neutral": x, "sv": x}
    out = pad_batch(feats, {"charged": 2, "neutral": 10, "sv": 2})
    assert out["neutral"].shape == (3, 3, 2)            # longest jet, cap not reached
    np.testing.assert_array_equal(out["neutral_mask"], [[1, 1, 1], [0, 0, 0], [1, 0, 0]])
    assert out["charged"].shape == (3, 2, 2)
    np.testing.assert_array_equal(out["charged"][0], [[5.0, 1.0], [3.0, 2.0]])  # two hardest kept
    np.testing.assert_array_equal(out["charged"][1], 0.0)
    empty = pad_batch({"globals": np.zeros((2, 11), np.float32), "charged": ak.Array([[], []]),
                       "neutral": x[:2], "sv": x[:2]}, None)
    assert empty["charged"].shape == (2, 1, len(FEATURE_NAMES["charged"]))  # at least one slot, all masked
    assert empty["charged_mask"].sum() == 0


def test_pad_rows_matches_awkward():
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 6, 50)
    content = rng.normal(size=(counts.sum(), 3)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rows = np.array([4, 17, 3, 40])
    padded, mask = pad_rows(content, offsets, rows, None)
    ref = ak.unflatten(content, counts)[rows]
    assert padded.shape[1] == max(1, counts[rows].max())
    for b, r in enumerate(rows):
        np.testing.assert_array_equal(padded[b, : counts[r]], ak.to_numpy(ref[b]).reshape(-1, 3))
        assert mask[b].sum() == counts[r]


def test_masked_mae_uses_only_jets_below_one():
    y = np.array([0.1, -0.2, 1.5, -3.0, 0.0])
    y_hat = np.array([0.2, -0.2, 0.0, 0.0, 0.3])
    assert masked_mae(y, y_hat) == pytest.approx((0.1 + 0.0 + 0.3) / 3)


def test_keras_loss_matches_numpy_masked_mae():
    from models.train import _loss_class

    y = np.array([[0.1], [-0.2], [1.5], [-3.0], [0.0]], np.float32)
    y_hat = np.array([[0.2], [-0.2], [0.0], [0.0], [0.3]], np.float32)
    loss = _loss_class()(max_abs=1.0)
    assert float(loss(y, y_hat)) == pytest.approx(masked_mae(y, y_hat), rel=1e-6)


# --------------------------------------------------------------------------- bad input

def test_file_that_is_not_a_model_gives_clear_error(tmp_path):
    from models.inference import load_model

    bad = tmp_path / "notamodel.keras"
    bad.write_text("this is not a Keras archive")
    with pytest.raises(BadInputError, match="notamodel.keras.*not a loadable Keras model"):
        load_model(bad)
    with pytest.raises(BadInputError, match="does not exist"):
        load_model(tmp_path / "missing.keras")


def test_feature_width_mismatch_at_inference(jets):
    from models.inference import predict_log_correction

    cfg, model = _model("deepsets")
    wrong = dict(jets)
    wrong["globals"] = np.zeros((len(jets["globals"]), 5), np.float32)
    with pytest.raises(BadInputError, match="'globals' expects 11 features, got 5"):
        predict_log_correction(model, wrong)


def test_config_errors_name_the_file(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("architecture: transformer\n")
    with pytest.raises(BadInputError, match="m.yaml.*architecture 'transformer'"):
        load_config(p)
    p.write_text("architecture: deepsets\nlayers: [3]\n")
    with pytest.raises(BadInputError, match=r"m.yaml: unknown model config keys \['layers'\]"):
        load_config(p)
    for name in ("deepsets", "deepsets_lite", "particlenet", "particlenet_lite"):
        assert isinstance(load_config(CONFIGS / f"{name}.yaml"), ModelConfig)


def test_shipped_lite_model_loads_and_matches_the_feature_builder():
    from models.correction import ModelSpec

    path = ROOT / "models" / "trained" / "deepsets_lite.keras"
    if not path.exists():
        pytest.skip("models/trained/deepsets_lite.keras not trained yet")
    total = sum(p.stat().st_size for p in path.parent.glob("deepsets_lite.*"))
    assert total < 2_000_000
    spec = ModelSpec.from_path(str(path))  # checks the manifest's feature lists
    from models.inference import load_model, model_max_len

    model = load_model(spec.path)
    assert model_max_len(model) == load_config(path.with_name("deepsets_lite.config.yaml")).max_constituents
    man = __import__("json").loads(path.with_name("deepsets_lite.manifest.json").read_text())
    assert man["training"]["val_loss"] < man["training"]["val_loss_constant"]
