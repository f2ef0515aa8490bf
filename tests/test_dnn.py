"""DNN corrections inside the jet response processor (issue 5): correctness, executors, bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import runner
from models.correction import ModelSpec
from core.errors import BadInputError
from processors.jets import JetResponseProcessor
from commands.run import run_fileset

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "trained" / "deepsets_lite.keras"


@pytest.fixture(scope="module")
def spec():
    if not SHIPPED.exists():
        pytest.skip("models/trained/deepsets_lite.keras not trained yet")
    return ModelSpec.from_path(str(SHIPPED), name="DeepSets")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated sample without pileup (no minimum-bias library needed): 2 files of 40 events."""
    from samples.generate import generate_sample

    out = tmp_path_factory.mktemp("dnn_sample")
    files = generate_sample(str(out), 80, 40, seed=5, pileup_mean=0.0, executor="iterative", workers=1)
    return {"qcd": {"files": {f: "Events" for f in files}, "metadata": {}}}


def _run(fileset, proc, executor="iterative", chunksize=25):
    out, _ = run_fileset(fileset, proc, executor=executor, workers=2, status=False, chunksize=chunksize)
    return out


def test_processor_dnn_pt_equals_direct_predict_on_collected_features(generated, spec, tmp_path):
    """pt_DeepSets from the processor == exp(model.predict(collected features)) * pt_raw, jet by jet."""
    import keras

    from models.data import pad_batch
    from models.inference import load_model, model_max_len
    from commands.collect import collect
    from inputs.shards import MANIFEST

    proc = JetResponseProcessor(models=[spec], min_pt_raw=15.0, max_abs_eta=4.7, keep_jet_arrays=True)
    out = _run(generated, proc)
    table = {k: v.value for k, v in out["jet_table"].items()}
    assert len(table["pt_gen"]) > 200

    shards = tmp_path / "shards"
    collect(generated, shards, executor="iterative", chunksize=25, status=False)
    manifest = json.loads((shards / MANIFEST).read_text())
    rec = ak.concatenate([ak.from_parquet(shards / n) for n in manifest["shards"]])
    assert len(rec) == len(table["pt_gen"])

    # the model's own predict, on the whole sample padded at once (not the processor's batching)
    model = load_model(spec.path)
    feats = {k: rec[k] for k in ("globals", "charged", "neutral", "sv")}
    inputs = pad_batch(feats, model_max_len(model))
    y_hat = np.asarray(keras.Model.predict(model, inputs, batch_size=1024, verbose=0)).reshape(-1)
    direct = np.exp(y_hat.astype(np.float64)) * ak.to_numpy(rec.pt_raw).astype(np.float64)

    # the same jets in both: order by (event, pt_gen)
    o_proc = np.lexsort((table["pt_gen"], table["event"]))
    o_coll = np.lexsort((ak.to_numpy(rec.pt_gen), ak.to_numpy(rec.event)))
    np.testing.assert_allclose(table["pt_gen"][o_proc], ak.to_numpy(rec.pt_gen)[o_coll], rtol=1e-6)
    np.testing.assert_allclose(table["pt_DeepSets"][o_proc], direct[o_coll], rtol=2e-5)
    # and the correction really changes the jets (not the identity)
    assert np.median(np.abs(table["pt_DeepSets"] / table["pt_raw"] - 1)) > 0.02


def test_dnn_histograms_identical_across_executors(generated, spec):
    outs = {ex: _run(generated, JetResponseProcessor(models=[spec]), executor=ex) for ex in ("iterative", "dask")}
    ref = outs["iterative"]["response"]
    assert list(ref.axes["correction"]) == ["raw", "DeepSets"]
    assert ref[{"correction": "DeepSets"}].sum(flow=True) > 200
    for c in ("raw", "DeepSets"):
        np.testing.assert_array_equal(outs["dask"]["response"][{"correction": c}].values(flow=True),
                                      ref[{"correction": c}].values(flow=True))


def test_out_of_memory_halves_the_batch_and_gives_the_same_answer(generated, spec, monkeypatch, capsys):
    """A device out-of-memory error on big batches: the batch is halved until it fits, same predictions."""
    import tensorflow as tf

    from models import inference
    from models.inference import load_model, predict_log_correction
    from physics.features import jet_features

    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    path = next(iter(generated["qcd"]["files"]))
    events = NanoEventsFactory.from_root({path: "Events"}, schemaclass=PFNanoAODSchema, mode="eager").events()
    feats = jet_features(events, events.Jet)
    model = load_model(spec.path)
    ref = predict_log_correction(model, feats, batch_size=4096)

    real = inference.predict_function(model)
    sizes = []

    def small_device(batch):
        sizes.append(len(batch["globals"]))
        if len(batch["globals"]) > 64:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real(batch)

    monkeypatch.setattr(inference, "predict_function", lambda m: small_device)
    got = predict_log_correction(model, feats, batch_size=4096)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    n = len(ref)
    fits = [size for size in sizes if size <= 64]  # failed tries on the whole chunk, then halves that fit
    assert 64 < n <= 4096 and any(size > 64 for size in sizes)
    assert sum(fits) == n and all(size == 64 for size in fits[:-1]) and 0 < fits[-1] <= 64
    assert "batch size halved to 64" in capsys.readouterr().err


def test_model_with_another_feature_list_is_refused(tmp_path):
    if not SHIPPED.exists():
        pytest.skip("models/trained/deepsets_lite.keras not trained yet")
    for suffix in (".keras", ".config.yaml", ".manifest.json"):
        shutil.copy(SHIPPED.with_name("deepsets_lite" + suffix), tmp_path / ("m" + suffix))
    man = json.loads((tmp_path / "m.manifest.json").read_text())
    man["features"]["charged"] = man["features"]["charged"][:-1]
    (tmp_path / "m.manifest.json").write_text(json.dumps(man))
    with pytest.raises(BadInputError, match=r"m.keras: feature list of 'charged' does not match"):
        ModelSpec.from_path(str(tmp_path / "m.keras"))


def test_missing_model_is_a_one_line_error(generated, tmp_path, capsys):
    path = next(iter(generated["qcd"]["files"]))
    rc = runner.main(["run", "--fileset", path, "--executor", "iterative", "--no-progress",
                      "--model", f"X={tmp_path / 'nope.keras'}", "--output", str(tmp_path / "o.coffea")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "nope.keras: model file does not exist" in err[0]
