"""Training domain (issue 12): non-varying features are not inputs, ranges in the manifests,
out-of-domain / clipped / non-finite counts at inference."""
from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import runner
from inputs.shards import STD_FLOOR, empty_output, finalize, norm_from_sums, write_shard
from models.domain import bounded_log_correction, feature_bounds, out_of_domain, target_bounds
from physics.features import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "models" / "configs" / "deepsets_lite.yaml"
SHIPPED = ROOT / "models" / "trained" / "deepsets_lite.keras"
#: features made constant in the training shards, with their training value
CONSTANT = {("charged", "from_pv"): 3.0, ("charged", "puppi_weight"): 1.0, ("neutral", "puppi_weight"): 1.0}


def _set_column(values: ak.Array, col: int, value: float) -> ak.Array:
    """(n, var, F) awkward with column ``col`` set to ``value``."""
    counts = ak.num(values, axis=1)
    flat = ak.to_numpy(ak.flatten(values, axis=None)).reshape(int(ak.sum(counts)), -1).copy()
    flat[:, col] = value
    return ak.unflatten(ak.from_numpy(flat, regulararray=True), counts)


def _with_constants(feats: dict, constants: dict) -> dict:
    feats = dict(feats)
    for (coll, name), value in constants.items():
        feats[coll] = _set_column(feats[coll], FEATURE_NAMES[coll].index(name), value)
    return feats


@pytest.fixture(scope="module")
def constant_shards(tmp_path_factory):
    """3000 synthetic jets whose CONSTANT features never vary, written by write_shard + finalize (collect's path)."""
    from models.synthetic import random_jets

    out_dir = tmp_path_factory.mktemp("constant_shards")
    from coffea.processor import accumulate

    outputs = []
    for i in range(2):
        feats, y, pt_raw = random_jets(1500, seed=11 + i)
        feats = {"globals": ak.Array(feats["globals"]), **{c: feats[c] for c in ("charged", "neutral", "sv")}}
        feats = _with_constants(feats, CONSTANT)
        n = len(y)
        event = np.arange(i * n, (i + 1) * n)
        columns = {"pt_raw": pt_raw, "pt_gen": pt_raw * np.exp(y), "eta": feats["globals"][:, 2],
                   "eta_gen": feats["globals"][:, 2], "phi": feats["globals"][:, 3], "flavour": np.ones(n),
                   "weight_natural": np.ones(n), "split": (event % 5 >= 3).astype(np.int8) * ((event % 5) - 2),
                   "event": event, "run": np.ones(n), "luminosityBlock": np.ones(n)}
        out = empty_output("synthetic")
        write_shard(out_dir / f"s{i}.parquet", columns, feats, out)
        outputs.append(out)
    manifest = finalize(out_dir, accumulate(outputs))
    return out_dir, manifest


def test_collect_manifest_stores_ranges_and_flags_constant_features(constant_shards):
    out_dir, manifest = constant_shards
    ch = manifest["ranges"]["charged"]
    names = FEATURE_NAMES["charged"]
    assert {"from_pv", "puppi_weight"} <= set(ch["constant"])
    assert "pt" not in ch["constant"] and "puppi_weight" in manifest["ranges"]["neutral"]["constant"]
    i = names.index("from_pv")
    assert ch["min"][i] == ch["max"][i] == 3.0
    # min/max exact over the training split, quantiles inside them
    j = names.index("dpt")
    assert ch["min"][j] <= ch["q_low"][j] < ch["q_high"][j] <= ch["max"][j]
    assert manifest["ranges"]["globals"]["min"][0] >= 20.0  # synthetic pt_raw >= 20 GeV
    tr = manifest["target_range"]
    assert tr["min"] < tr["q_low"] < tr["q_high"] < tr["max"]


def test_constant_feature_training_and_inference_stay_finite(constant_shards, tmp_path):
    """Constant inputs in training: finite loss, and on jets where they differ (real PFNano) the same finite answer."""
    from models.config import load_config
    from models.inference import load_model, predict_log_correction
    from models.synthetic import random_jets
    from models.train import train

    out_dir, _ = constant_shards
    summary = train(out_dir, load_config(CONFIG), tmp_path / "m", epochs=2, progress=False)
    assert np.isfinite(summary["val_loss"]) and summary["val_loss"] < 1.0
    man = json.loads((tmp_path / "m.manifest.json").read_text())
    assert "from_pv" in man["ranges"]["charged"]["constant"]
    assert man["target_range"]["min"] > -1.0 and man["target_range"]["max"] < 1.0

    model = load_model(tmp_path / "m.keras")
    feats, _, _ = random_jets(300, seed=99)
    feats = {"globals": ak.Array(feats["globals"]), **{c: feats[c] for c in ("charged", "neutral", "sv")}}
    seen = _with_constants(feats, CONSTANT)
    unseen = _with_constants(feats, {("charged", "from_pv"): 0.0, ("charged", "puppi_weight"): 0.3,
                                     ("neutral", "puppi_weight"): 0.0})
    y_seen = predict_log_correction(model, seen)
    y_unseen = predict_log_correction(model, unseen)
    assert np.all(np.isfinite(y_unseen))
    np.testing.assert_allclose(y_unseen, y_seen, atol=1e-5)  # the constant inputs are not inputs
    # the values differ from training, but they are not counted: the model does not use them
    np.testing.assert_array_equal(out_of_domain(unseen, man), out_of_domain(seen, man))
    assert out_of_domain(seen, man).mean() < 0.2


def test_standardize_neutralises_sub_floor_std_also_in_the_shipped_model():
    from models.inference import load_model
    from models.layers import Standardize

    layer = Standardize([3.0, 1.0], [1e-6, 2.0])
    y = np.asarray(layer(np.array([[0.0, 5.0]], dtype=np.float32)))
    np.testing.assert_allclose(y, [[0.0, 2.0]])
    if not SHIPPED.exists():
        pytest.skip("no shipped model")
    model = load_model(SHIPPED)
    std_ch = model.get_layer("std_charged")
    i = FEATURE_NAMES["charged"].index("from_pv")
    assert std_ch.std[i] < STD_FLOOR and std_ch.scale[i] == 0.0
    assert std_ch.scale[FEATURE_NAMES["charged"].index("pt")] > 0.0


def test_out_of_domain_margin_and_fallback():
    names = {c: FEATURE_NAMES[c] for c in FEATURE_NAMES}
    ng = len(names["globals"])
    manifest = {"features": names,
                "norm": {c: {"mean": [0.0] * len(n), "std": [1.0] * len(n)} for c, n in names.items()},
                "ranges": {c: {"min": [0.0] * len(n), "max": [10.0] * len(n)} for c, n in names.items()}}
    manifest["norm"]["globals"]["std"][1] = 1e-6  # not an input: never counted
    lo, hi = feature_bounds(manifest, "globals")
    assert lo[0] == pytest.approx(-1.0) and hi[0] == pytest.approx(11.0) and np.isinf(hi[1])
    g = np.full((4, ng), 5.0, np.float32)
    g[1, 0] = 10.9    # beyond the range, within 10% of its width: in domain
    g[2, 0] = 11.5    # far outside
    g[3, 1] = 1e6     # far outside, but the model does not use it
    empty = {c: ak.unflatten(np.zeros((0, len(names[c])), np.float32), np.zeros(4, np.int64)) for c in ("neutral", "sv")}
    ch = np.full((3, len(names["charged"])), 5.0, np.float32)
    ch[2, 0] = -50.0  # one constituent of jet 0 far outside
    feats = {"globals": ak.Array(g), "charged": ak.unflatten(ch, np.array([3, 0, 0, 0])), **empty}
    np.testing.assert_array_equal(out_of_domain(feats, manifest), [True, False, True, False])
    # a manifest from before ranges were stored: mean +- 6 std, one-hots [0, 1]
    old = {k: v for k, v in manifest.items() if k != "ranges"}
    lo, hi = feature_bounds(old, "charged")
    assert hi[0] == pytest.approx(6.0) and hi[names["charged"].index("is_muon")] == 1.0


def test_log_correction_clipped_to_training_range_and_nonfinite_counted():
    y, clipped, nonfinite = bounded_log_correction(np.array([0.1, 5.0, -3.0, np.nan, np.inf]),
                                                   {"target_range": {"min": -0.5, "max": 0.8}})
    np.testing.assert_allclose(y[:3], [0.1, 0.8, -0.5])
    assert np.isnan(y[3:]).all()
    np.testing.assert_array_equal(clipped, [False, True, True, False, False])
    np.testing.assert_array_equal(nonfinite, [False, False, False, True, True])
    assert target_bounds({"training": {"max_abs_target": 1.0}}) == (-1.0, 1.0)


def test_norm_floor_constant():
    mean, std = norm_from_sums(np.array([6.0]), np.array([12.0]), 3)
    assert std[0] < STD_FLOOR and mean[0] == 2.0


def test_report_says_not_to_be_trusted(tmp_path):
    """A row with out-of-domain jets: no improvement number, a NOT TO BE TRUSTED line with fractions."""
    from results.report import build_report, to_markdown
    from physics.jets import response_hist

    h = response_hist()
    rng = np.random.default_rng(1)
    for name, width in (("L1L2", 0.15), ("model", 0.05), ("PNetReg", 0.1)):
        h.fill(correction=name, flavour="uds", abs_eta_gen=0.5, pt_gen=rng.uniform(40, 200, 500),
               response=rng.normal(1.0, width, 500))
    cutflow = {"a": {"model_jets": 400, "model_out_of_domain": 100, "model_clipped": 3, "model_nonfinite": 0,
                     "PNetReg_jets": 400, "PNetReg_undefined": 40},
               "b": {"model_jets": 100, "model_out_of_domain": 0, "model_clipped": 0, "model_nonfinite": 0}}
    rep = build_report({"response": h, "cutflow": cutflow}, n_boot=0)
    assert rep["trust"]["model"]["trusted"] is False
    assert rep["trust"]["model"]["fractions"]["out_of_domain"] == pytest.approx(0.2)
    assert rep["trust"]["PNetReg"]["trusted"] is True
    md = to_markdown(rep)
    assert "model: NOT TO BE TRUSTED" in md and "20.0% out of the training domain" in md
    model_row = next(line for line in md.splitlines() if line.startswith("| model |"))
    assert "not trusted" in model_row and "%" not in model_row.split("|")[-3]
    assert "PNetReg: 40 of 400 jets (10.0%) carry no regression value" in md
    assert "NOT TO BE TRUSTED" not in next(line for line in md.splitlines() if line.startswith("| PNetReg |"))
