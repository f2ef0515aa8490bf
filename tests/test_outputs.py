"""Pickle-free outputs (issue 14): uhi JSON round trip, ROOT histograms via uproot, plot/report read the JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def run_out(shared_data, tmp_path_factory):
    """``runner.py run`` (iterative) on the real PFNano file: the .coffea and its .uhi.json / .root."""
    import runner

    folder = tmp_path_factory.mktemp("outputs")
    path = folder / "pf.coffea"
    argv = ["run", "--fileset", str(shared_data / "cms" / "pfnano.root"), "--executor", "iterative",
            "--chunksize", "5", "--output", str(path), "--no-progress"]
    assert runner.main(argv) == 0
    return path


def _total(h) -> float:
    s = h.sum(flow=True)
    return float(getattr(s, "value", s))


def test_uhi_json_round_trip_equals_hist_objects(run_out):
    from inputs.hist_io import histograms
    from inputs.output import load_output

    pickled = load_output(run_out)
    portable = load_output(run_out.with_name("pf.uhi.json"))
    hists = histograms(pickled)
    assert {"response", "reco_pt"} <= set(hists)
    assert set(histograms(portable)) == set(hists)
    for name, h in hists.items():
        back = histograms(portable)[name]
        assert back == h, name
        assert back.sum(flow=True) == h.sum(flow=True)
    assert _total(hists["response"]) > 10
    assert portable["cutflow"] == pickled["cutflow"]
    assert portable["run_info"]["corrections"] == pickled["run_info"]["corrections"]
    text = run_out.with_name("pf.uhi.json").read_text()
    assert json.loads(text)["caliber_output"] == 1  # plain JSON, no pickle


def test_root_file_opens_in_uproot_with_the_same_counts(run_out):
    import uproot

    from inputs.hist_io import histograms, root_slices
    from inputs.output import load_output

    pickled = load_output(run_out)
    with uproot.open(run_out.with_name("pf.root")) as f:
        keys = {k.split(";")[0] for k in f.keys(recursive=True)}
        n = 0
        for name, h in histograms(pickled).items():
            total = 0.0
            for key, piece in root_slices(name, h).items():
                assert key in keys
                got = f[key].values(flow=True)
                np.testing.assert_allclose(got, piece.values(flow=True))
                total += got.sum()
                n += 1
            np.testing.assert_allclose(total, _total(h))
        assert n >= 2
        th3 = f["response/raw/all"] if "response/raw/all" in keys else f[sorted(k for k in keys if k.startswith("response/raw/") and k.count("/") == 2)[0]]
        assert th3.classname.startswith("TH3")


def test_plot_and_report_read_the_uhi_json(run_out, tmp_path):
    import runner

    src = str(run_out.with_name("pf.uhi.json"))
    assert runner.main(["report", src, "--baseline", "raw", "--bootstrap", "5", "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.json").exists()
    assert runner.main(["plot", src, "--baseline", "raw", "--out", str(tmp_path / "fig")]) == 0
    assert any((tmp_path / "fig").rglob("*.png"))


def test_damaged_uhi_json_is_one_clear_line(tmp_path, capsys):
    import runner

    bad = tmp_path / "x.uhi.json"
    bad.write_text("{not json")
    assert runner.main(["report", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.uhi.json: not a readable uhi JSON output" in err[0]


#: what TensorFlow / absl / oneDNN / CUDA stubs print when they are not silenced
NOISE = ("absl", "InitializeLog", "oneDNN", "TF_ENABLE_ONEDNN_OPTS", "cudart_stub", "cuda_", "I0000", "W0000",
         "E0000", "tensorflow", "RuntimeWarning", "UserWarning", "Port 8787")


def test_run_with_shipped_model_prints_no_tensorflow_or_worker_warning_lines(shared_data, tmp_path):
    """``runner.py run`` on the dask LocalCluster with the shipped Keras model, from a clean environment:
    stdout + stderr hold the summary and no TF/absl/oneDNN line nor repeated worker warnings; ``-v`` shows them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL", "PYTHONWARNINGS", "CALIBER_VERBOSE"))}
    argv = [sys.executable, str(root / "runner.py"), "run", "--fileset", str(shared_data / "cms" / "pfnano.root"),
            "--model", str(root / "models" / "trained" / "deepsets_lite.keras"), "--workers", "1",
            "--chunksize", "5", "--output", str(tmp_path / "q.coffea"), "--no-progress"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-2000:]
    assert "events 10" in text
    noisy = [line for line in text.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, noisy
    loud = subprocess.run(argv + ["-v"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert loud.returncode == 0
    assert any(n in loud.stdout + loud.stderr for n in NOISE)  # the filter, not the absence of noise
