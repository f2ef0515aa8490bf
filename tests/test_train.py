"""runner.py train: tf.data pipeline, training beats the best constant, saved files, bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import runner
from models.config import load_config
from models.data import load_split, make_dataset, read_shard_manifest
from core.errors import BadInputError
from physics.features import FEATURE_NAMES

CONFIG = "models/configs/deepsets_lite.yaml"


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    """12k synthetic jets in the exact `runner.py collect` shard format (seeded)."""
    from models.synthetic import write_synthetic_shards

    out = tmp_path_factory.mktemp("shards")
    write_synthetic_shards(out, 12000, seed=2, jets_per_shard=4000)
    return out


@pytest.fixture(scope="session")
def trained(shards, tmp_path_factory):
    from models.train import train

    out = tmp_path_factory.mktemp("model") / "ds_lite"
    cfg = load_config(runner.__file__.replace("runner.py", CONFIG))
    summary = train(shards, cfg, out, epochs=6, progress=False)
    return out, summary


def test_shards_have_the_collect_format(shards):
    import awkward as ak

    man = read_shard_manifest(shards)
    assert man["features"] == FEATURE_NAMES
    arr = ak.from_parquet(shards / man["shards"][0])
    for field in ("target", "pt_raw", "pt_gen", "eta", "eta_gen", "phi", "flavour", "weight_flat",
                  "weight_natural", "split", "event", "run", "luminosityBlock", "globals", "charged", "neutral", "sv"):
        assert field in arr.fields
    np.testing.assert_allclose(ak.to_numpy(arr.target), np.log(ak.to_numpy(arr.pt_gen) / ak.to_numpy(arr.pt_raw)),
                               atol=1e-5)
    assert sum(man["n_jets"].values()) == 12000


def test_pipeline_batches_are_shuffled_and_padded_per_batch(shards):
    man = read_shard_manifest(shards)
    table = load_split(shards, man, 0)
    assert len(table) == man["n_jets"]["train"]
    caps = {"charged": 20, "neutral": 64, "sv": 8}
    ds = make_dataset(table, 256, caps, shuffle=True, seed=5)
    first = [b for b in ds.take(3)]
    n_neutral = np.diff(table.offsets["neutral"])
    lengths = set()
    for x, y in first:
        assert x["charged"].shape[1] <= 20
        # the padded length is the longest jet of this batch (neutral cap not reached)
        assert x["neutral"].shape[1] == int(np.asarray(x["neutral_mask"]).sum(1).max())
        lengths.add(x["neutral"].shape[1])
        assert y.shape == (256, 1)
    assert n_neutral.max() >= max(lengths)
    # shuffled by jet: another epoch gives other batches, the same seed the same ones
    again = [b for b in make_dataset(table, 256, caps, shuffle=True, seed=5).take(1)][0][1]
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first[0][1]))
    ds_iter = [np.asarray(b[1]) for b in ds.take(1)][0]
    assert not np.array_equal(ds_iter, np.asarray(first[0][1]))
    assert not np.array_equal(np.asarray(first[0][1])[:, 0], table.target[:256])


def test_training_beats_the_best_constant(trained):
    out, summary = trained
    assert summary["val_loss"] < 0.8 * summary["val_loss_constant"]
    assert summary["epochs_run"] == 6


def test_saved_files_and_reload(trained, shards):
    from models.inference import load_model, predict_log_correction
    from models.synthetic import random_jets

    out, summary = trained
    for suffix in (".keras", ".manifest.json", ".config.yaml", ".history.json"):
        assert out.with_name(out.name + suffix).exists()
    man = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert man["features"] == FEATURE_NAMES and man["training"]["val_loss"] == pytest.approx(summary["val_loss"])
    hist = json.loads(out.with_name(out.name + ".history.json").read_text())
    assert len(hist["history"]["val_loss"]) == 6
    assert min(hist["history"]["val_loss"]) < hist["history"]["val_loss"][0]
    model = load_model(out.with_name(out.name + ".keras"))
    feats, y, _ = random_jets(500, seed=99)
    y_hat = predict_log_correction(model, feats, batch_size=128)
    assert np.mean(np.abs(y_hat - y)) < 0.8 * np.mean(np.abs(y - summary["constant"]))


def test_feature_mismatch_names_the_shard_dir_and_features(tmp_path):
    from models.synthetic import write_synthetic_shards

    names = {c: list(v) for c, v in FEATURE_NAMES.items()}
    names["neutral"] = names["neutral"][:-1] + ["is_something_else"]
    write_synthetic_shards(tmp_path / "odd", 300, features=names)
    rc = runner.main(["train", "--shards", str(tmp_path / "odd"), "--config", CONFIG, "--out", str(tmp_path / "m")])
    assert rc == 2
    from models.train import train

    with pytest.raises(BadInputError, match=r"odd: 'neutral' features of the shards differ.*is_something_else.*is_hf_em"):
        train(tmp_path / "odd", load_config(CONFIG), tmp_path / "m")


def test_empty_fileset_and_missing_dir_give_clear_errors(tmp_path, shards, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    man = json.loads((shards / "manifest.json").read_text())
    man["shards"] = []
    (empty / "manifest.json").write_text(json.dumps(man))
    assert runner.main(["train", "--shards", str(empty), "--config", CONFIG, "--out", str(tmp_path / "m")]) == 2
    assert "lists no shards" in capsys.readouterr().err
    assert runner.main(["train", "--shards", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")]) == 2
    assert "nowhere: shard directory does not exist" in capsys.readouterr().err
    # shards with no training jets
    only_test = tmp_path / "only_test"
    shutil.copytree(shards, only_test)
    import awkward as ak

    for name in man and json.loads((only_test / "manifest.json").read_text())["shards"]:
        arr = ak.from_parquet(only_test / name)
        ak.to_parquet(ak.with_field(arr, np.full(len(arr), 2, np.int8), "split"), only_test / name)
    with pytest.raises(BadInputError, match="no training jets"):
        from models.train import train

        train(only_test, load_config(CONFIG), tmp_path / "m")
