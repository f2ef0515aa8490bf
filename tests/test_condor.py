"""HTCondor through dask-jobqueue (issue 7): presets, job scripts, the stand-in pool, clean shutdown."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import default_sigint
from dask.utils import parse_bytes

from condor import cluster as cc
from condor import sites
from condor.standin import BIN_DIR
from condor.standin import state as pool_state
from condor.standin import submit as pool_submit
from core.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def standin(tmp_path, monkeypatch) -> Path:
    """The stand-in pool first on PATH with its own (empty) state directory."""
    state = tmp_path / "condor-state"
    monkeypatch.setenv("PATH", f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CALIBER_CONDOR_STATE", str(state))
    return state


def queued(state: Path) -> list[dict]:
    return pool_state.queued_jobs(state) if (state / "jobs").exists() else []


def alive_groups(state: Path) -> list[str]:
    """Jobs of the stand-in whose process group still has a live process."""
    if not (state / "jobs").exists():
        return []
    return [j["job_id"] for j in pool_state.all_jobs(state) if pool_state.group_alive(j.get("pgid"))]


def wait_until(pred, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def parsed_job(script: str, tmp_path: Path) -> dict:
    """The job HTCondor would queue for a submit description (the stand-in's own reading of it)."""
    return pool_submit.build_jobs(script, 7, tmp_path, "someone")[0]


# --------------------------------------------------------------------------- presets and job scripts

@pytest.fixture
def credentials(tmp_path) -> dict:
    proxy = tmp_path / "x509up_u1234"
    proxy.write_text("not a real proxy\n")
    token = tmp_path / "bt_u1234"
    token.write_text("not a real token\n")
    return {"x509_proxy": str(proxy), "token_file": str(token)}


@pytest.mark.parametrize("site", ["generic", "lxplus", "lpc"])
def test_job_script_carries_what_the_preset_says(site, tmp_path, credentials):
    preset = sites.load_site(site)
    logs = tmp_path / "logs"
    script = cc.job_script(site, {"log_directory": str(logs), **credentials})
    job = parsed_job(script, tmp_path)

    assert job["RequestCpus"] == preset["cores"]
    assert job["RequestMemory"] == parse_bytes(preset["memory"]) // 2**20
    assert job["RequestDisk"] == parse_bytes(preset["disk"]) // 2**10
    assert job["RequestGPUs"] == 0 and "request_gpus" not in script
    assert job["SingularityImage"] == preset["image"]
    for key, value in preset["environment"].items():
        assert job["environment"][key] == str(value)
    # the proxy travels with the job (x509userproxy), the token as an input file
    assert Path(credentials["x509_proxy"]).resolve().as_posix() in job["transfer_input_files"]
    assert Path(credentials["token_file"]).resolve().as_posix() in job["transfer_input_files"]
    assert "BEARER_TOKEN_FILE" in job["command"][2]
    assert job["should_transfer_files"] == "YES"
    for key, value in preset["job_extra"].items():
        name = key[1:] if key.startswith("+") else key[3:] if key.startswith("MY.") else key
        assert pool_state.ad_get(job, name) is not None, name
    shell = job["command"][2]
    assert job["command"][:2] == ["/bin/sh", "-c"] and "distributed.cli.dask_worker" in shell
    assert f"--death-timeout {preset['death_timeout']}" in shell
    if preset["code"] == "shared":
        assert job["environment"]["PYTHONPATH"] == str(ROOT)
    else:
        assert str(logs / "caliber-code.tar.gz") in job["transfer_input_files"]
        assert "tar xzf caliber-code.tar.gz" in shell
    assert job["output"] == str(logs / "worker-7.0.out") and job["log"] == str(logs / "worker-7.log")


def test_gpu_workers_ask_for_a_gpu_and_carry_the_gpu_resource(tmp_path):
    job = parsed_job(cc.job_script("generic", {"log_directory": str(tmp_path)}, gpu=True), tmp_path)
    assert job["RequestGPUs"] == 1
    assert "--resources GPU=1" in job["command"][2]
    job = parsed_job(cc.job_script("generic", {"log_directory": str(tmp_path), "gpus": 2}), tmp_path)
    assert job["RequestGPUs"] == 2 and "--resources GPU=2" in job["command"][2]


def test_command_line_overrides_the_preset(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    parser = argparse.ArgumentParser()
    sites.add_condor_arguments(parser)
    args = parser.parse_args(["--condor-cores", "4", "--condor-memory", "8GB", "--condor-disk", "20GB",
                              "--condor-gpus", "1", "--condor-image", "/cvmfs/some/image:tag",
                              "--condor-extra", '+JobFlavour = "workday"', "--condor-extra", "priority = 5",
                              "--condor-env", "CALIBER_X=1", "--condor-transfer", str(extra),
                              "--condor-log-dir", str(tmp_path / "L"), "--condor-adapt", "0:6",
                              "--condor-start-timeout", "42"])
    options = sites.condor_options_from_args(args)
    assert options["start_timeout"] == 42
    assert options["overrides"]["adapt"] == {"minimum": 0, "maximum": 6}
    job = parsed_job(cc.job_script("lxplus", options["overrides"]), tmp_path)
    assert (job["RequestCpus"], job["RequestMemory"], job["RequestDisk"], job["RequestGPUs"]) == \
        (4, 8 * 10**9 // 2**20, 20 * 10**9 // 2**10, 1)
    assert job["SingularityImage"] == "/cvmfs/some/image:tag"
    assert job["JobFlavour"] == "workday" and job["priority"] == 5
    assert job["environment"]["CALIBER_X"] == "1" and job["environment"]["OMP_NUM_THREADS"] == "1"
    assert str(extra) in job["transfer_input_files"]
    assert "--nthreads 2" in job["command"][2] or "--nthreads 4" in job["command"][2]
    none = parser.parse_args(["--condor-image", "none", "--condor-log-dir", str(tmp_path / "L")])
    assert "SingularityImage" not in cc.job_script("lxplus", sites.condor_options_from_args(none)["overrides"])


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(BadInputError) as err:
        sites.load_site("atlantis")
    msg = str(err.value)
    assert "atlantis" in msg and all(s in msg for s in ("generic", "lxplus", "lpc"))


def test_bad_preset_files_are_named(tmp_path):
    bad = tmp_path / "mysite.yaml"
    bad.write_text("cores: 2\nmemroy: 4GB\n")
    with pytest.raises(BadInputError, match=r"mysite.yaml.*unknown key\(s\) memroy"):
        sites.load_site(str(bad))
    bad.write_text("cores: 3\nprocesses: 2\n")
    with pytest.raises(BadInputError, match="multiple of processes"):
        sites.site_config(str(bad))
    with pytest.raises(BadInputError, match="x509 proxy .*nope.* does not exist"):
        cc.job_script("generic", {"x509_proxy": str(tmp_path / "nope")})
    with pytest.raises(BadInputError, match="--condor-adapt"):
        sites.condor_options_from_args(argparse.Namespace(condor_adapt="many"))


def test_no_condor_submit_on_path_says_how_to_get_the_standin(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInputError) as err:
        sites.check_condor_available()
    assert "condor_submit" in str(err.value) and str(BIN_DIR) in str(err.value)
    with pytest.raises(BadInputError, match="condor_submit"):
        with cc.condor_client(1, overrides={"log_directory": str(tmp_path)}):
            pass


# --------------------------------------------------------------------------- the stand-in pool

SUBMIT = '''\
#!/usr/bin/env condor_submit
MY.JobId = "$(ClusterId).$(ProcId)"
MY.DaskWorkerMemory = 2147483648
RequestMemory = floor(MY.DaskWorkerMemory / 1048576)
request_cpus = 2
LogDirectory = {logs}
Output = $(LogDirectory)/job-$F(MY.JobId).out
Error = $(LogDirectory)/job-$F(MY.JobId).err
Log = $(LogDirectory)/job-$(ClusterId).log
Environment = "GREETING='hello world' QUOTE=""q"""
Arguments = "-c 'echo $GREETING $QUOTE ""it''s""; echo $_CONDOR_SCRATCH_DIR; sleep {sleep}'"
Executable = /bin/sh
Queue {n}
'''


def test_standin_runs_queries_and_removes_jobs(standin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    sub = tmp_path / "job.sub"
    sub.write_text(SUBMIT.format(logs=logs, sleep=60, n=2))
    res = subprocess.run(["condor_submit", str(sub)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "2 job(s) submitted to cluster 1." in res.stdout
    assert wait_until(lambda: [j["JobStatus"] for j in queued(standin)] == [pool_state.RUNNING] * 2)
    af = subprocess.run(["condor_q", "-af:j", "JobStatus", "RequestCpus", "RequestMemory"],
                        capture_output=True, text=True).stdout.split("\n")
    assert af[:2] == ["1.0 2 2 2048", "1.1 2 2 2048"]
    table = subprocess.run(["condor_q", "-nobatch"], capture_output=True, text=True).stdout
    assert "1.0" in table and "1.1" in table and "2 jobs; 0 completed, 0 removed, 0 idle, 2 running" in table
    assert wait_until(lambda: (logs / "job-1.0.out").exists() and (logs / "job-1.0.out").read_text().count("\n") >= 2)
    out = (logs / "job-1.0.out").read_text().splitlines()
    assert out[0] == 'hello world "q" it\'s'
    assert out[1] == str(standin / "jobs" / "1.0" / "scratch")

    rm = subprocess.run(["condor_rm", "1.0"], capture_output=True, text=True)
    assert rm.returncode == 0 and "Job 1.0 marked for removal" in rm.stdout
    assert [j["job_id"] for j in queued(standin)] == ["1.1"]
    rm = subprocess.run(["condor_rm", "1"], capture_output=True, text=True)
    assert rm.returncode == 0
    assert queued(standin) == [] and wait_until(lambda: alive_groups(standin) == [], 5)
    again = subprocess.run(["condor_rm", "1.0"], capture_output=True, text=True)
    assert again.returncode == 1 and "Couldn't find/remove" in again.stderr
    log = (logs / "job-1.log").read_text()
    assert log.count("Job submitted") == 2 and log.count("Job was aborted") == 2


def test_standin_finished_job_leaves_the_queue_and_transfers_files(standin, tmp_path):
    data = tmp_path / "input.txt"
    data.write_text("41\n")
    sub = tmp_path / "t.sub"
    sub.write_text(f"executable = /bin/sh\narguments = \"-c 'echo $(( $(cat input.txt) + 1 )) > result.txt'\"\n"
                   f"transfer_input_files = {data}\nshould_transfer_files = YES\nlog = t.log\nqueue\n")
    res = subprocess.run(["condor_submit", "t.sub"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: queued(standin) == [])
    assert (tmp_path / "result.txt").read_text() == "42\n"
    assert "return value 0" in (tmp_path / "t.log").read_text()
    bad = tmp_path / "bad.sub"
    bad.write_text(f"executable = /bin/sh\ntransfer_input_files = {tmp_path / 'missing.txt'}\nqueue\n")
    res = subprocess.run(["condor_submit", "bad.sub"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1 and "missing.txt" in res.stderr


# --------------------------------------------------------------------------- clusters on the stand-in

def test_workers_that_never_start_fail_fast_with_their_log(standin, tmp_path):
    logs = tmp_path / "logs"
    t0 = time.monotonic()
    with pytest.raises(BadInputError) as err:
        with cc.condor_client(2, overrides={"log_directory": str(logs), "python": "/nonexistent/python"},
                              start_timeout=60):
            pass
    msg = str(err.value)
    assert "'generic'" in msg and "0 of 2 dask workers" in msg and str(logs) in msg
    assert "/nonexistent/python" in msg  # the tail of the worker's .err says why
    assert time.monotonic() - t0 < 30
    assert queued(standin) == [] and wait_until(lambda: alive_groups(standin) == [], 5)


def test_workers_that_never_connect_time_out_and_are_removed(standin, tmp_path):
    logs = tmp_path / "logs"
    # the job runs but never starts a dask worker: it sleeps in place of python
    with pytest.raises(BadInputError) as err:
        with cc.condor_client(2, overrides={"log_directory": str(logs), "python": "exec /bin/sleep 300 ||"},
                              start_timeout=4):
            pass
    msg = str(err.value)
    assert "0 of 2 dask workers connected within 4 s" in msg and "removed" in msg and str(logs) in msg
    assert len(pool_state.all_jobs(standin)) == 2
    assert queued(standin) == [] and wait_until(lambda: alive_groups(standin) == [], 5)


def test_held_jobs_are_reported_with_the_hold_reason(standin, tmp_path):
    with pytest.raises(BadInputError) as err:
        with cc.condor_client(1, overrides={"log_directory": str(tmp_path),
                                            "job_extra": {"Output": "/nonexistent/dir/worker.out"}},
                              start_timeout=60):
            pass
    assert "held" in str(err.value) and "/nonexistent/dir/worker.out" in str(err.value)
    assert queued(standin) == [] and wait_until(lambda: alive_groups(standin) == [], 5)


def test_refused_submission_is_reported(standin, tmp_path):
    with pytest.raises(BadInputError, match="condor_submit refused .*nowhere.txt"):
        with cc.condor_client(1, overrides={"log_directory": str(tmp_path),
                                            "job_extra": {"transfer_input_files": "/nowhere.txt"}},
                              start_timeout=30):
            pass
    assert queued(standin) == []


def test_run_on_condor_equals_dask_and_leaves_nothing(standin, shared_data, tmp_path):
    import runner
    from coffea.util import load

    files = [str(shared_data / "cms" / "nano_dy.root"), str(shared_data / "cms" / "nano_tt_v12.root")]
    jec = str(ROOT / "processors" / "configs" / "jec_summer22_puppi.yaml")
    outs = {}
    for executor in ("condor", "dask"):
        out = tmp_path / f"{executor}.coffea"
        rc = runner.main(["run", "--fileset", *files, "--jec", jec, "--executor", executor, "--workers", "2",
                          "--chunksize", "50", "--output", str(out), "--no-progress",
                          "--condor-log-dir", str(tmp_path / "logs")])
        assert rc == 0
        outs[executor] = load(str(out))
    a, b = outs["condor"], outs["dask"]
    assert a["cutflow"] == b["cutflow"] and a["cutflow"]["nano_tt_v12"]["events"] == 200
    for name in ("response", "reco_pt"):
        assert np.array_equal(a[name].values(flow=True), b[name].values(flow=True))
        assert a[name].sum(flow=True) > 0
    jobs = pool_state.all_jobs(standin)
    assert len(jobs) == 2 and all(j["JobStatus"] == pool_state.REMOVED for j in jobs)
    assert queued(standin) == [] and wait_until(lambda: alive_groups(standin) == [], 5)
    # the workers really ran as the jobs: their logs name the scheduler they connected to
    assert all("Registered to" in (tmp_path / "logs" / f"worker-{j['job_id']}.err").read_text() for j in jobs)


CTRL_C_BODY = """
import sys, time
sys.path.insert(0, {root!r})
from condor.cluster import condor_client
with condor_client(2, overrides={{"log_directory": {logs!r}}}, start_timeout=60) as client:
    print("workers", len(client.nthreads()), flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_removes_every_job(standin, tmp_path, signum):
    body = CTRL_C_BODY.format(root=str(ROOT), logs=str(tmp_path / "logs"))
    proc = subprocess.Popen([sys.executable, "-c", body], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    line = proc.stdout.readline()
    assert line.strip() == "workers 2", proc.stderr.read()[-2000:]
    assert len(queued(standin)) == 2
    proc.send_signal(signum)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err  # not dask-jobqueue's silent exit 0
    assert queued(standin) == [] and wait_until(lambda: alive_groups(standin) == [], 5)


# --------------------------------------------------------------------------- training jobs

@pytest.mark.parametrize("site", ["generic", "lpc"])
def test_training_job_file_asks_for_a_gpu_and_runs_runner_train(site, tmp_path, monkeypatch):
    from condor.train_job import write_training_job

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "shard0.parquet").write_bytes(b"PAR1")
    (tmp_path / "model.yaml").write_text("model: deepsets\n")
    sub = write_training_job(["shards"], "model.yaml", "models/out.keras", site, job_dir=tmp_path / "job",
                             overrides={"x509_proxy": None})
    assert sub == tmp_path / "job" / "train.sub"
    job = parsed_job(sub.read_text(), sub.parent)
    wrapper = (sub.parent / "train.sh").read_text()
    assert job["RequestGPUs"] == 1 and job["RequestCpus"] == 4 and job["RequestMemory"] == 8 * 10**9 // 2**20
    assert job["command"] == [str(sub.parent / "train.sh")]
    preset = sites.load_site(site)
    assert job["SingularityImage"] == preset["image"]
    assert job["environment"]["OMP_NUM_THREADS"] == "4"
    if site == "generic":
        assert f"cd {tmp_path}" in wrapper
        assert wrapper.rstrip().endswith(f"{ROOT / 'runner.py'} train --shards shards --config model.yaml "
                                         "--output models/out.keras")
    else:  # shipped: code, shards and config travel; the model comes back where --output says
        assert set(job["transfer_input_files"]) >= {str(tmp_path / "shards"), str(tmp_path / "model.yaml"),
                                                    str(sub.parent / "caliber-code.tar.gz")}
        assert wrapper.rstrip().endswith("runner.py train --shards shards --config model.yaml --output out.keras")
        assert job["transfer_output_files"] == ["out.keras"]
        assert job["transfer_output_remaps"] == f"out.keras = {tmp_path / 'models' / 'out.keras'}"


def test_training_job_is_submitted_and_runs(standin, tmp_path, monkeypatch):
    from condor.train_job import submit_training_job, write_training_job

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shard0.parquet").write_bytes(b"PAR1")
    sub = write_training_job(["shard0.parquet"], None, "out.keras", "generic", job_dir=tmp_path / "job",
                             train_args=["--help"])
    job_id = submit_training_job(sub)
    assert job_id == "1.0"
    assert wait_until(lambda: queued(standin) == [], 60)
    done = pool_state.all_jobs(standin)[0]
    out = (sub.parent / "train-1.0.out").read_text() + (sub.parent / "train-1.0.err").read_text()
    # the wrapper really ran runner.py train in the submit directory
    if (ROOT / "models" / "train.py").exists():
        assert done["ExitCode"] == 0 and "usage: runner.py train" in out
    else:
        assert "models.train" in out
    with pytest.raises(BadInputError, match="shard does not exist"):
        write_training_job(["missing.parquet"], None, "out.keras", "generic", job_dir=tmp_path / "job2")


def test_gpu_executor_jobs_request_a_gpu_and_workers_carry_it(standin, tmp_path):
    from execution.executors import make_executor

    with make_executor("condor", 1, status=False, gpu_resource=True,
                       condor_options={"overrides": {"log_directory": str(tmp_path)}}) as ex:
        workers = ex.client.scheduler_info()["workers"].values()
        assert [w["resources"] for w in workers] == [{"GPU": 1}]
        assert [j["RequestGPUs"] for j in queued(standin)] == [1]
        # a task that needs the GPU resource is scheduled there (it would wait forever otherwise)
        import dask

        with dask.annotate(resources={"GPU": 1}):
            fut = ex.client.submit(sum, [1, 2, 3], pure=False)
        assert fut.result(timeout=30) == 6
    assert queued(standin) == []


def test_submit_options_are_stripped_from_the_job_command_line():
    from condor.train_job import strip_submit_options

    argv = ["--shards", "a.parquet", "--submit", "condor", "--site=lxplus", "--condor-gpus", "2",
            "--condor-extra", '+JobFlavour = "workday"', "--epochs", "3", "--condor-memory=8GB", "--output", "m.keras"]
    assert strip_submit_options(argv) == ["--shards", "a.parquet", "--epochs", "3", "--output", "m.keras"]


def test_shipped_code_and_proxy_reach_the_worker(standin, tmp_path, credentials):
    """lpc-style: no shared filesystem; the code tarball and the proxy travel with the job."""
    overrides = {"log_directory": str(tmp_path / "logs"), "image": None, "python": sys.executable, **credentials}

    def where():
        import os

        import processors.jets

        return (processors.jets.__file__, os.environ["X509_USER_PROXY"], open(os.environ["X509_USER_PROXY"]).read(),
                os.environ["OMP_NUM_THREADS"])

    with cc.condor_client(1, "lpc", overrides=overrides, start_timeout=60) as client:
        module, proxy, text, threads = client.submit(where).result(timeout=30)
    scratch = standin / "jobs" / "1.0" / "scratch"
    assert module == str(scratch / "processors" / "jets.py")  # imported from the shipped tarball
    assert proxy == str(scratch / "x509up_u1234") and text == "not a real proxy\n" and threads == "1"
    assert queued(standin) == []


def _same(a, b) -> bool:
    """Equal accumulator trees: hist contents bin by bin, arrays element-wise, the rest with ==."""
    if isinstance(a, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "values") and hasattr(a, "axes"):
        return np.array_equal(a.values(flow=True), b.values(flow=True))
    if hasattr(a, "value"):
        return _same(a.value, b.value)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_generate_and_run_on_condor_equal_local(standin, tmp_path, monkeypatch):
    """Generated Z->ee files: generating them on condor jobs gives the same events as in one process,
    and the electron processor on condor gives the same histograms as on the local dask cluster."""
    import runner
    import uproot
    from coffea.util import load

    from samples.zee import generate_zee

    monkeypatch.chdir(tmp_path)  # condor logs under ./outputs/condor-logs
    on_condor = generate_zee(tmp_path / "condor", 200, 100, seed=11, executor="condor", workers=2)
    local = generate_zee(tmp_path / "local", 200, 100, seed=11, executor="iterative")
    assert [Path(f).name for f in on_condor] == [Path(f).name for f in local] and len(local) == 2
    for f, g in zip(on_condor, local):
        a, b = uproot.open(f)["Events"].arrays(library="np"), uproot.open(g)["Events"].arrays(library="np")
        assert set(a) == set(b) and all(
            np.array_equal(np.concatenate(list(a[k])) if a[k].dtype == object else a[k],
                           np.concatenate(list(b[k])) if b[k].dtype == object else b[k]) for k in a)
    outs = {}
    for executor in ("condor", "dask"):
        rc = runner.main(["run", "--fileset", *on_condor, "--processor", "electrons", "--executor", executor,
                          "--workers", "2", "--chunksize", "60", "--output", f"{executor}.coffea", "--no-progress"])
        assert rc == 0
        outs[executor] = load(f"{executor}.coffea")
    keys = [k for k in outs["dask"] if k != "run_info"]
    assert keys and all(_same(outs["condor"][k], outs["dask"][k]) for k in keys)
    assert queued(standin) == [] and wait_until(lambda: alive_groups(standin) == [], 5)
    assert len(pool_state.all_jobs(standin)) == 4  # two workers for generate, two for run


def test_virtual_environment_shared_or_shipped(tmp_path):
    import tarfile

    venv = ROOT / ".venv"
    if not (venv / "bin" / "activate").exists():
        pytest.skip("no .venv in this checkout")
    job = parsed_job(cc.job_script("generic", {"log_directory": str(tmp_path), "venv": str(venv)}), tmp_path)
    shell = job["command"][2]
    assert shell.startswith(f". {venv / 'bin' / 'activate'}; {venv / 'bin' / 'python'} -m distributed.cli.dask_worker")
    packed = tmp_path / "env.tar.gz"
    with tarfile.open(packed, "w:gz") as tar:
        tar.add(venv / "pyvenv.cfg", arcname="pyvenv.cfg")
    job = parsed_job(cc.job_script("generic", {"log_directory": str(tmp_path), "venv": str(packed)}), tmp_path)
    assert str(packed) in job["transfer_input_files"] and job["should_transfer_files"] == "YES"
    assert job["command"][2].startswith("mkdir -p venv && tar xzf env.tar.gz -C venv; . venv/bin/activate; python -m ")
    with pytest.raises(BadInputError, match="venv .*does not exist"):
        cc.job_script("generic", {"venv": str(tmp_path / "nope")})
