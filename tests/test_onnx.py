"""ONNX export and the ONNX Runtime backend (issue 14): parity with Keras, processor rows, CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "trained" / "deepsets_lite.keras"
#: |y_onnx - y_keras| bound of the issue (float32 graphs, same weights)
PARITY = 1e-4


def _manifest() -> dict:
    return json.loads(SHIPPED.with_name("deepsets_lite.manifest.json").read_text())


def _keras_y(model, batch: dict) -> np.ndarray:
    from models.inference import predict_function

    return np.asarray(predict_function(model)(batch)).reshape(-1)


def _onnx_y(path: Path, batch: dict) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {i.name: batch[i.name] for i in sess.get_inputs()})[0]).reshape(-1)


@pytest.mark.parametrize("config", ["deepsets", "deepsets_lite", "particlenet_lite", "particlenet"])
def test_jet_model_onnx_matches_keras(config, tmp_path):
    """Each jet architecture (random weights + the shipped manifest) exported: |dy| < 1e-4 on synthetic jets,
    with batch and constituent lengths different from any traced shape."""
    if not SHIPPED.exists():
        pytest.skip("shipped model absent")
    import keras

    from models.config import load_config
    from models.data import pad_batch
    from models.export import keras_to_onnx
    from models.networks import build_model
    from models.synthetic import random_jets

    keras.utils.set_random_seed(3)
    cfg = load_config(ROOT / "models" / "configs" / f"{config}.yaml")
    model = build_model(cfg, _manifest(), output_bias=0.05)
    path = keras_to_onnx(model, tmp_path / f"{config}.onnx")
    feats, _, _ = random_jets(70, seed=4)
    for lo, hi, caps in ((0, 70, cfg.max_constituents), (0, 5, {"charged": 7, "neutral": 3, "sv": 2})):
        batch = pad_batch({k: v[lo:hi] for k, v in feats.items()}, caps)
        y_k, y_o = _keras_y(model, batch), _onnx_y(path, batch)
        assert y_k.shape == y_o.shape == (hi - lo,)
        assert np.all(np.isfinite(y_k)) and np.std(y_k) > 0
        assert np.max(np.abs(y_k - y_o)) < PARITY, np.max(np.abs(y_k - y_o))


def test_electron_model_onnx_matches_keras(tmp_path):
    """The FiLM Deep Sets electron model exported: |dy| < 1e-4 on random electrons."""
    import keras

    from models.electron import ElectronModelConfig, build_model
    from models.export import keras_to_onnx
    from physics.electrons import CAND_FEATURES, SCALAR_FEATURES

    keras.utils.set_random_seed(2)
    cfg = ElectronModelConfig()
    n_s, n_c = len(SCALAR_FEATURES), len(CAND_FEATURES)
    model = build_model(cfg, (np.zeros(n_s), np.ones(n_s)), (np.zeros(n_c), np.ones(n_c)))
    # FiLM gamma/beta start at zero: give them weights so the test covers the modulation
    for layer in model.layers:
        if layer.name.startswith("film_"):
            layer.set_weights([np.random.default_rng(1).normal(0, 0.1, w.shape).astype("float32")
                               for w in layer.get_weights()])
    path = keras_to_onnx(model, tmp_path / "electron.onnx")
    rng = np.random.default_rng(5)
    n = 33
    mask = (np.arange(cfg.max_cands)[None, :] < rng.integers(0, cfg.max_cands, n)[:, None]).astype("float32")
    batch = {"scalars": rng.normal(size=(n, n_s)).astype("float32"),
             "cands": (rng.normal(size=(n, cfg.max_cands, n_c)) * mask[..., None]).astype("float32"),
             "mask": mask, "is_data": rng.integers(0, 2, (n, 1)).astype("float32")}
    y_k = np.asarray(model(batch, training=False)).reshape(-1)
    y_o = _onnx_y(path, batch)
    assert np.std(y_k) > 0 and np.max(np.abs(y_k - y_o)) < PARITY


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The shipped model exported with the CLI (``runner.py export``)."""
    if not SHIPPED.exists():
        pytest.skip("shipped model absent")
    import runner

    out = tmp_path_factory.mktemp("onnx")
    assert runner.main(["export", str(SHIPPED), "--out", str(out)]) == 0
    return out / "deepsets_lite.onnx"


def test_export_cli_writes_onnx_with_manifest_and_dynamic_dims(exported):
    import onnx

    assert exported.exists() and exported.with_name("deepsets_lite.manifest.json").exists()
    assert exported.with_name("deepsets_lite.config.yaml").exists()
    graph = onnx.load(str(exported)).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert isinstance(dims["charged"][0], str) and isinstance(dims["charged"][1], str)  # batch, constituents
    assert dims["charged"][2] == 23 and isinstance(dims["globals"][0], str)


def test_backends_agree_on_shipped_model_and_dask_awkward(exported):
    """The coffea.ml_tools wrappers: Keras and ONNX Runtime agree on synthetic jets, on awkward and on
    dask-awkward input; the ONNX one works after a pickle round trip (as shipped to a worker)."""
    import pickle

    import awkward as ak
    import dask_awkward as dak

    from models.backends import KerasJetModel, OnnxJetModel
    from models.synthetic import random_jets

    feats, _, _ = random_jets(300, seed=9)
    feats = {k: ak.Array(v) for k, v in feats.items()}
    keras_y = np.asarray(KerasJetModel(SHIPPED, batch_size=64)(feats))
    onnx_model = pickle.loads(pickle.dumps(OnnxJetModel(exported, batch_size=4096)))
    onnx_y = np.asarray(onnx_model(feats))
    assert keras_y.shape == (300,) and np.max(np.abs(keras_y - onnx_y)) < PARITY
    lazy = {k: dak.from_awkward(v, npartitions=3) for k, v in feats.items()}
    dask_y = onnx_model(lazy)
    assert isinstance(dask_y, dak.Array)
    np.testing.assert_allclose(np.asarray(dask_y.compute()), onnx_y, rtol=0, atol=1e-6)


def test_onnx_backend_halves_batch_on_out_of_memory(exported, monkeypatch, capsys):
    from models.backends import OnnxJetModel
    from models.synthetic import random_jets

    feats, _, _ = random_jets(100, seed=2)
    wrapper = OnnxJetModel(exported, batch_size=4096)
    ref = np.asarray(wrapper(feats))
    real = OnnxJetModel.run_batch

    def small_device(self, batch):
        if len(batch["globals"]) > 30:
            raise RuntimeError("Failed to allocate memory for requested buffer")
        return real(self, batch)

    monkeypatch.setattr(OnnxJetModel, "run_batch", small_device)
    np.testing.assert_allclose(np.asarray(wrapper(feats)), ref, atol=1e-6)
    assert "batch size halved to 16" in capsys.readouterr().err


def test_run_with_keras_and_onnx_rows_gives_same_histograms(exported, shared_data, tmp_path):
    """``--model K=x.keras --model O=x.onnx`` on the real PFNano file: the two rows agree bin by bin."""
    from commands.run import run_fileset
    from models.correction import ModelSpec
    from processors.jets import JetResponseProcessor

    fileset = {"pfnano": {"files": {str(shared_data / "cms" / "pfnano.root"): "Events"}, "metadata": {}}}
    proc = JetResponseProcessor(models=[ModelSpec.from_path(str(SHIPPED), name="K"),
                                        ModelSpec.from_path(str(exported), name="O")], keep_jet_arrays=True)
    out, _ = run_fileset(fileset, proc, executor="iterative", workers=1, status=False, chunksize=5)
    pt_k, pt_o = out["jet_table"]["pt_K"].value, out["jet_table"]["pt_O"].value
    assert len(pt_k) > 10
    np.testing.assert_allclose(pt_o, pt_k, rtol=2e-4)
    h = out["response"]
    k, o = h[{"correction": "K"}].values(), h[{"correction": "O"}].values()
    assert k.sum() > 10 and np.array_equal(k, o)


def test_export_of_missing_or_wrong_file_is_one_line(tmp_path, capsys):
    import runner

    assert runner.main(["export", str(tmp_path / "none.keras"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    shutil.copyfile(SHIPPED.with_name("deepsets_lite.manifest.json"), tmp_path / "bad.manifest.json")
    from core.errors import BadInputError
    from models.backends import OnnxJetModel

    with pytest.raises(BadInputError, match="bad.onnx: not a loadable ONNX model"):
        OnnxJetModel(bad).model


def test_onnx_backend_does_not_import_tensorflow(exported):
    """Applying an .onnx model (as a worker does) never imports TensorFlow or Keras."""
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, %r)\n"
            "import processors.jets, models.correction\n"
            "from models.backends import jet_model\n"
            "from models.synthetic import random_jets\n"
            "y = jet_model(%r)(random_jets(20)[0])\n"
            "assert len(y) == 20\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n") % (str(ROOT), str(exported))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False False"


def test_threads_on_different_inputs_get_their_own_answers(exported):
    """dask's threaded scheduler runs partitions at once: the inputs kept for a second model
    (``models.padding.padded_entry``) of one thread never serve another thread's partition."""
    from concurrent.futures import ThreadPoolExecutor

    import awkward as ak

    from models.backends import KerasJetModel, OnnxJetModel
    from models.padding import clear_padded_cache
    from models.synthetic import random_jets

    feats, _, _ = random_jets(300, seed=12)
    parts = [{k: ak.Array(v)[a:a + 100] for k, v in feats.items()} for a in (0, 100, 200)]
    for wrapper in (OnnxJetModel(exported, batch_size=4096), KerasJetModel(SHIPPED, batch_size=64)):
        want = []
        for p in parts:
            clear_padded_cache()
            want.append(np.asarray(wrapper(p)))
        for _ in range(5):
            clear_padded_cache()
            with ThreadPoolExecutor(3) as pool:
                got = list(pool.map(lambda p: np.asarray(wrapper(p)), parts))
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
    clear_padded_cache()
