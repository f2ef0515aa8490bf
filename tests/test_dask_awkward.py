"""The dask-awkward path (issue 14): apply_to_fileset on a LocalCluster == the Runner path, histogram for histogram."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "trained" / "deepsets_lite.keras"


def test_dask_awkward_path_equals_runner_path(shared_data):
    """Two real files (PFNano with the shipped model row, NanoAOD DY without PF candidates -> no model)."""
    from commands.run import run_fileset
    from execution.dask_awkward import run_dask_awkward
    from models.correction import ModelSpec
    from processors.jets import JetResponseProcessor

    if not SHIPPED.exists():
        pytest.skip("shipped model absent")
    pf = {"pfnano": {"files": {str(shared_data / "cms" / "pfnano.root"): "Events"}, "metadata": {}}}
    dy = {"dy": {"files": {str(shared_data / "cms" / "nano_dy.root"): "Events"}, "metadata": {}}}
    for fileset, models in ((pf, [ModelSpec.from_path(str(SHIPPED), name="DNN")]), (dy, [])):
        proc = JetResponseProcessor(models=models)
        lazy, metrics = run_dask_awkward(fileset, proc, workers=2, chunksize=4)
        eager, _ = run_fileset(fileset, proc, executor="iterative", workers=1, status=False, chunksize=4)
        assert metrics["chunks"] >= 2
        assert lazy["cutflow"] == eager["cutflow"]
        for key in ("response", "reco_pt"):
            assert lazy[key] == eager[key], key
        assert float(lazy["reco_pt"].values().sum()) > 10
        if models:
            row = lazy["reco_pt"][{"correction": "DNN"}].values()
            assert row.sum() > 10 and np.array_equal(row, eager["reco_pt"][{"correction": "DNN"}].values())


def test_run_mode_dask_awkward_cli_writes_outputs(shared_data, tmp_path):
    import runner

    from inputs.output import load_output

    out = tmp_path / "da.coffea"
    argv = ["run", "--mode", "dask-awkward", "--fileset", str(shared_data / "cms" / "nano_dy.root"),
            "--workers", "1", "--chunksize", "20", "--output", str(out), "--no-progress"]
    assert runner.main(argv) == 0
    got = load_output(out.with_name("da.uhi.json"))
    assert got["cutflow"]["nano_dy"]["events"] == 40
