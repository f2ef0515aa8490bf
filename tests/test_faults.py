"""Faults: a killed dask worker, an interrupted and resumed run, a removed HTCondor job — each ends
with histograms identical to an undisturbed run (issue 13)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import default_sigint

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "runner.py"), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True,
                            preexec_fn=default_sigint)


def same_histograms(a_path: Path, b_path: Path) -> None:
    from coffea.util import load

    a, b = load(str(a_path)), load(str(b_path))
    for name in ("response", "reco_pt"):
        assert np.array_equal(a[name].values(flow=True), b[name].values(flow=True))
        assert a[name].sum(flow=True) > 0
    assert a["cutflow"] == b["cutflow"] and a["accounting"] == b["accounting"]


def wait_for(pred, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared_data) -> tuple[list[str], Path]:
    """An undisturbed run (iterative) over two real files."""
    import runner

    files = [str(shared_data / "cms" / "nano_tt_v12.root"), str(shared_data / "cms" / "nano_dy.root")]
    out = tmp_path_factory.mktemp("ref") / "ref.coffea"
    assert runner.main(["run", "--fileset", *files, "--executor", "iterative", "--chunksize", "10",
                        "--output", str(out), "--no-progress"]) == 0
    return files, out


def checkpoints(d: Path) -> list[Path]:
    return sorted(d.rglob("*.coffea")) if d.exists() else []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_resumes_to_the_same_output(reference, tmp_path, signum):
    files, ref = reference
    ckpt, out = tmp_path / "ckpt", tmp_path / "o.coffea"
    argv = ["run", "--fileset", *files, "--executor", "iterative", "--chunksize", "2",
            "--output", str(out), "--no-progress", "--checkpoint", str(ckpt)]
    proc = run_cli(*argv)
    assert wait_for(lambda: len(checkpoints(ckpt)) >= 3), proc.communicate()[1][-2000:]
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1, err
    assert "interrupted after" in lines[0] and "of 120 chunks; rerun with the same --checkpoint" in lines[0]
    assert not out.exists() and not Path(str(out) + ".lock").exists()
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    done = {p: p.stat().st_mtime_ns for p in checkpoints(ckpt)}
    assert 3 <= len(done) < 120
    rerun = run_cli(*argv)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-2000:]
    # the chunks finished before the interrupt were loaded, not processed again
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    assert len(checkpoints(ckpt)) == 120
    same_histograms(out, ref)


def test_dask_worker_killed_mid_run_gives_identical_histograms(reference, tmp_path):
    files, ref = reference
    ckpt, out = tmp_path / "ckpt", tmp_path / "o.coffea"
    proc = run_cli("run", "--fileset", *files, "--executor", "dask", "--workers", "2",
                   "--chunksize", "10", "--output", str(out), "--no-progress", "--checkpoint", str(ckpt))
    # the checkpoint directory only shows progress: chunks are being processed by the workers now
    assert wait_for(lambda: len(checkpoints(ckpt)) >= 2, 90), proc.communicate()[1][-2000:]
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
               if "spawn_main" in " ".join(c.cmdline()) or "multiprocessing" in " ".join(c.cmdline())]
    assert workers, "no dask worker process found"
    workers[0].kill()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    same_histograms(out, ref)


def test_condor_job_removed_mid_run_gives_identical_histograms(reference, tmp_path, monkeypatch):
    from condor.standin import BIN_DIR
    from condor.standin import state as pool_state

    files, ref = reference
    state = tmp_path / "condor-state"
    monkeypatch.setenv("PATH", f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CALIBER_CONDOR_STATE", str(state))
    ckpt, out = tmp_path / "ckpt", tmp_path / "o.coffea"
    proc = run_cli("run", "--fileset", *files, "--executor", "condor", "--workers", "2",
                   "--chunksize", "10", "--output", str(out), "--no-progress", "--checkpoint", str(ckpt),
                   "--condor-log-dir", str(tmp_path / "logs"))
    assert wait_for(lambda: len(checkpoints(ckpt)) >= 2, 120), proc.communicate()[1][-2000:]
    job = pool_state.queued_jobs(state)[0]["job_id"]
    rm = subprocess.run(["condor_rm", job], capture_output=True, text=True)
    assert rm.returncode == 0, rm.stderr
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    same_histograms(out, ref)
