"""Long end-to-end physics checks (minutes): ``make test-slow``."""
from __future__ import annotations

import json

import pytest

import runner


@pytest.mark.slow
def test_derived_l1l2_closes_on_a_generated_sample(tmp_path):
    """derive-jec on a fresh generated sample (PU 30 and noPU): closure within 1%, flavour spread kept."""
    out = tmp_path / "jec"
    rc = runner.main(["derive-jec", "--events", "4000", "--events-per-file", "1000", "--seed", "21",
                      "--out", str(out), "--workdir", str(tmp_path / "work"), "--executor", "futures",
                      "--workers", "2", "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "Caliber_V6_MC_closure.json").read_text())
    corrections = summary["closure"]["corrections"]
    assert abs(corrections["L1L2"]["all"] - 1.0) < 0.01
    assert abs(corrections["raw"]["all"] - 1.0) > 0.02  # there was something to correct
    assert corrections["L1L2"]["spread"] > 0.005  # L1L2 does not remove the flavour dependence
    assert (out / "Caliber_V6_MC.yaml").exists()
