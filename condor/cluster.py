"""HTCondor through dask-jobqueue: the job description and a dask Client on it.

The scheduler runs here (the submit node); every dask worker is an HTCondor job that
dask-jobqueue's ``HTCondorCluster`` submits with ``condor_submit`` and removes with
``condor_rm``. What each job asks for and carries comes from a site preset
(``condor.sites``: presets, their checks and the ``--condor-*`` options).

``condor_client(workers, site)`` is what ``make_executor("condor", ...)`` uses: it
scales to ``workers`` jobs (or adapts), waits for the workers with a timeout, and
always closes the cluster and removes every job it submitted, on success, on an
exception, on Ctrl-C and on SIGTERM.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from condor.sites import PROJECT_ROOT, check_condor_available, load_site, site_config
# the --condor-* options live in condor.sites; still importable from here for older callers
from core.errors import BadInputError

#: what a code tarball ("code: ship") carries
CODE_ITEMS = ("core", "inputs", "physics", "models", "processors", "execution", "results", "commands", "condor",
              "samples", "bench", "runner.py", "caliber_cli.py")


def _jobqueue():
    """Import dask_jobqueue without its import-time SIGINT handler (``sys.exit()``, which would turn
    Ctrl-C into a silent exit 0 that skips no cleanup but reports success)."""
    if "dask_jobqueue" in sys.modules:
        return sys.modules["dask_jobqueue"]
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGINT) if in_main else None
    import dask_jobqueue
    import dask_jobqueue.htcondor  # noqa: F401

    if in_main and old is not None:
        signal.signal(signal.SIGINT, old)
    return dask_jobqueue


# --------------------------------------------------------------------------- job description

def _existing_file(path: str, what: str, site: str) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if not p.exists():
        raise BadInputError(f"condor site {site!r}: {what} {p} does not exist")
    return p.resolve()


def _x509_proxy(config: dict) -> Path | None:
    value = config["x509_proxy"]
    if not value or str(value).lower() == "none":
        return None
    if str(value).lower() == "auto":
        candidate = os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"
        if not os.path.exists(candidate):
            print(f"caliber condor: site {config['name']!r} wants an X509 proxy, none at {candidate} "
                  "(voms-proxy-init -voms cms); jobs go without one", file=sys.stderr)
            return None
        return Path(candidate).resolve()
    return _existing_file(value, "x509 proxy", config["name"])


def code_tarball(directory: Path) -> Path:
    """A tarball of the project's packages (CODE_ITEMS), for sites without a shared filesystem."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "caliber-code.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for item in CODE_ITEMS:
            src = PROJECT_ROOT / item
            if src.exists():
                tar.add(src, arcname=item,
                        filter=lambda t: None if "__pycache__" in t.name or t.name.endswith(".pyc") else t)
    return out


def job_settings(config: dict, *, make_files: bool = True) -> dict:
    """What every job gets from a checked site config: environment, transfers, prologue, python,
    submit lines and dask worker resources (shared by the dask workers and the training job)."""
    quote_environment = _jobqueue().htcondor.quote_environment

    log_dir = Path(os.path.expandvars(os.path.expanduser(str(config["log_directory"])))).resolve()
    env = {str(k): str(v) for k, v in config["environment"].items()}
    transfers: list[str] = []
    prologue: list[str] = []
    submit: dict = {}
    python = config["python"]
    if config["code"] == "shared":
        env.setdefault("PYTHONPATH", str(PROJECT_ROOT))
    else:
        tarball = code_tarball(log_dir) if make_files else log_dir / "caliber-code.tar.gz"
        transfers.append(str(tarball))
        prologue += [f"tar xzf {tarball.name}", 'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"']
    venv = config["venv"]
    if venv:
        vpath = _existing_file(venv, "venv", config["name"])
        if vpath.is_dir():
            if not (vpath / "bin" / "activate").exists():
                raise BadInputError(f"condor site {config['name']!r}: venv {vpath} has no bin/activate")
            prologue.append(f". {shlex.quote(str(vpath / 'bin' / 'activate'))}")  # /bin/sh: no 'source'
            python = python or str(vpath / "bin" / "python")
        else:
            transfers.append(str(vpath))
            prologue += [f"mkdir -p venv && tar xzf {shlex.quote(vpath.name)} -C venv", ". venv/bin/activate"]
            python = python or "python"
    if python is None:
        python = "python3" if config["image"] else sys.executable
    proxy = _x509_proxy(config)
    if proxy:
        submit["x509userproxy"] = str(proxy)  # HTCondor transfers it and sets X509_USER_PROXY
    if config["token_file"]:
        token = _existing_file(config["token_file"], "token file", config["name"])
        transfers.append(str(token))
        prologue.append(f'export BEARER_TOKEN_FILE="$_CONDOR_SCRATCH_DIR/{token.name}"')
    for f in config["transfer_files"] or []:
        transfers.append(str(_existing_file(f, "file to transfer", config["name"])))
    if config["gpus"]:
        submit["request_gpus"] = config["gpus"]
    if config["image"]:
        submit["+SingularityImage"] = f'"{config["image"]}"'
    if env:
        submit["Environment"] = f'"{quote_environment(env)}"'
    if transfers or proxy:
        submit["should_transfer_files"] = "YES"
        submit["when_to_transfer_output"] = "ON_EXIT_OR_EVICT"
    if transfers:
        submit["transfer_input_files"] = ",".join(transfers)
    submit.update({str(k): v for k, v in config["job_extra"].items()})
    resources = {str(k): v for k, v in config["worker_resources"].items()}
    if config["gpus"]:
        resources.setdefault("GPU", config["gpus"])
    return {"log_directory": log_dir, "environment": env, "transfer_input_files": transfers, "x509_proxy": proxy,
            "prologue": prologue, "python": python, "submit": submit, "resources": resources}


def cluster_kwargs(config: dict, *, make_files: bool = True) -> dict:
    """Keyword arguments of dask_jobqueue.HTCondorCluster for a checked site config."""
    s = job_settings(config, make_files=make_files)
    worker_args = []
    if s["resources"]:
        worker_args += ["--resources", ",".join(f"{k}={v}" for k, v in s["resources"].items())]
    host = config["scheduler_host"]
    if host == "hostname":
        host = socket.gethostname()
    scheduler_options: dict = {"dashboard_address": config["dashboard"]}
    if host:
        scheduler_options["host"] = host
    if config["scheduler_port"]:
        scheduler_options["port"] = config["scheduler_port"]
    return {
        "cores": config["cores"],
        "processes": config["processes"],
        "memory": str(config["memory"]),
        "disk": str(config["disk"]),
        "python": s["python"],
        "log_directory": str(s["log_directory"]),
        "death_timeout": config["death_timeout"],
        "local_directory": "$_CONDOR_SCRATCH_DIR",
        "job_script_prologue": s["prologue"],
        "job_extra_directives": s["submit"],
        "worker_extra_args": worker_args,
        "scheduler_options": scheduler_options,
        "silence_logs": "error",
    }


def job_script(site: str = "generic", overrides: dict | None = None, *, gpu: bool = False,
               scheduler: str = "tcp://scheduler-address:8786") -> str:
    """The submit description dask-jobqueue writes for one worker of this site (no cluster started)."""
    HTCondorJob = _jobqueue().htcondor.HTCondorJob
    kwargs = cluster_kwargs(site_config(site, overrides, gpu=gpu))
    for key in ("scheduler_options", "silence_logs"):
        kwargs.pop(key)
    return HTCondorJob(scheduler, name="dask-worker", **kwargs).job_script()


# --------------------------------------------------------------------------- the client

def _condor_lines(cmd: list[str], timeout: float = 30) -> list[str] | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.splitlines() if res.returncode == 0 else None


def job_states(job_ids: list[str]) -> dict[str, tuple[int, str]] | None:
    """condor_q's (JobStatus, HoldReason) of those jobs still in the queue; None when condor_q fails."""
    if not job_ids or not shutil.which("condor_q"):
        return None if job_ids else {}
    lines = _condor_lines(["condor_q", *job_ids, "-af:j", "JobStatus", "HoldReason"])
    if lines is None:
        return None
    states = {}
    for line in lines:
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1].isdigit():
            states[parts[0]] = (int(parts[1]), parts[2] if len(parts) > 2 else "")
    return states


def remove_jobs(job_ids: list[str]) -> list[str]:
    """condor_rm the jobs of ``job_ids`` that are still queued (not already removed); returns them."""
    states = job_states(sorted(job_ids))
    left = sorted(job_ids) if states is None else sorted(j for j, (st, _) in states.items() if st != 3)
    if left and shutil.which("condor_rm"):
        _condor_lines(["condor_rm", *left])
    return left


def _submit_errors(cluster) -> list[str]:
    """What condor_submit said for jobs it refused (recorded by _job_class)."""
    if cluster is None:
        return []
    return [w.submit_error for w in list(cluster.workers.values()) if getattr(w, "submit_error", None)]


def _job_class():
    """HTCondorJob that remembers why condor_submit refused it (dask only logs the error)."""
    from distributed.core import Status

    HTCondorJob = _jobqueue().htcondor.HTCondorJob

    class RecordingHTCondorJob(HTCondorJob):
        submit_error: str | None = None

        async def start(self):
            try:
                await super().start()
            except Exception as err:
                text = str(err)
                detail = text.split("stderr:", 1)[-1].strip() or text.split("stdout:", 1)[-1].strip() or text
                self.submit_error = " ".join(detail.split())[:500]
                self.status = Status.failed  # so that the cluster can still be closed
                raise

    return RecordingHTCondorJob


def _job_ids(cluster) -> set[str]:
    if cluster is None:
        return set()
    return {str(w.job_id) for w in list(cluster.workers.values()) if getattr(w, "job_id", None)}


def _log_tail(log_dir: Path, job_ids: list[str], lines: int = 3) -> str:
    for job in sorted(job_ids):
        err = log_dir / f"worker-{job}.err"
        with contextlib.suppress(OSError):
            text = [x for x in err.read_text(errors="replace").splitlines() if x.strip()]
            if text:
                return f"; {err.name} ends: " + " | ".join(x.strip()[:200] for x in text[-lines:])
    return ""


def _wait_for_workers(client, cluster, wanted_jobs: int, wanted_workers: int, timeout: float, config: dict,
                      log_dir: Path, seen: set[str]) -> None:
    """Wait until ``wanted_workers`` dask workers are connected; BadInputError on timeout or when
    every job left the queue (or was held) without its worker connecting."""
    start = time.monotonic()
    last_query = start
    site = config["name"]
    while True:
        n = len(client.nthreads())
        if n >= wanted_workers:
            return
        seen |= _job_ids(cluster)
        refused = _submit_errors(cluster)
        if refused:
            raise BadInputError(f"condor site {site!r}: condor_submit refused the worker job ({refused[0]}); "
                                f"{len(seen)} job(s) that were submitted are removed")
        now = time.monotonic()
        if now - start > timeout:
            raise BadInputError(
                f"condor site {site!r}: {n} of {wanted_workers} dask workers connected within {timeout:.0f} s "
                f"({len(seen)} job(s) submitted, all removed); worker logs in {log_dir}"
                f"{_log_tail(log_dir, list(seen))}")
        if len(seen) >= wanted_jobs and now - last_query > 2.0:
            last_query = now
            states = job_states(sorted(seen))
            if states is not None:
                alive = [j for j, (st, _) in states.items() if st in (1, 2)]
                held = {j: reason for j, (st, reason) in states.items() if st == 5}
                if not alive and len(client.nthreads()) < wanted_workers:
                    why = (f"held ({next(iter(held.values())) or 'no reason given'})" if held
                           else "ended before their dask worker connected")
                    raise BadInputError(
                        f"condor site {site!r}: {n} of {wanted_workers} dask workers connected; the job(s) "
                        f"{', '.join(sorted(seen))} {why} (jobs removed); worker logs in {log_dir}"
                        f"{_log_tail(log_dir, list(seen))}")
        time.sleep(0.25)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (so the cleanup below runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def condor_client(workers: int, site: str = "generic", *, overrides: dict | None = None,
                  start_timeout: float | None = None, gpu: bool = False,
                  worker_resources: dict | None = None) -> Iterator:
    """A distributed.Client on an HTCondorCluster of ``workers`` jobs (or adaptive) for ``site``.

    Waits at most ``start_timeout`` seconds (default: the preset's) for the workers to
    connect. ``worker_resources`` (e.g. ``{"GPU": 1}``, as for the local dask cluster) are
    given to every worker; asking for GPU also makes the jobs request that many GPUs.
    On leaving the block, however it is left, the client and cluster are closed and
    every job submitted is removed from the queue.
    """
    overrides = dict(overrides or {})
    if worker_resources:
        overrides["worker_resources"] = {**overrides.get("worker_resources", {}), **worker_resources}
        if worker_resources.get("GPU") and not overrides.get("gpus"):
            overrides["gpus"] = max(int(worker_resources["GPU"]), int(load_site(site)["gpus"] or 0))
    config = site_config(site, overrides, gpu=gpu)
    check_condor_available()
    if workers < 1 and not config["adapt"]:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    timeout = float(start_timeout if start_timeout is not None else config["start_timeout"])
    kwargs = cluster_kwargs(config)
    log_dir = Path(kwargs["log_directory"])
    from distributed import Client

    HTCondorCluster = _jobqueue().HTCondorCluster

    cluster = client = None
    seen: set[str] = set()
    with _sigterm_as_interrupt():
        try:
            cluster = HTCondorCluster(job_cls=_job_class(), **kwargs)
            client = Client(cluster)
            if config["adapt"]:
                lo, hi = config["adapt"]["minimum"], config["adapt"]["maximum"]
                cluster.adapt(minimum_jobs=lo, maximum_jobs=hi)
                wanted = lo
            else:
                cluster.scale(jobs=workers)
                wanted = workers
            _wait_for_workers(client, cluster, wanted, wanted * config["processes"], timeout, config, log_dir, seen)
            yield client
        finally:
            seen |= _job_ids(cluster)
            pending: BaseException | None = None
            for closer in ((lambda: client.close(timeout=10)) if client is not None else None,
                           (lambda: cluster.close(timeout=60)) if cluster is not None else None):
                if closer is None:
                    continue
                try:
                    closer()
                except BaseException as err:  # a second Ctrl-C must not leave jobs behind
                    pending = pending or (err if isinstance(err, KeyboardInterrupt) else None)
            seen |= _job_ids(cluster)
            if seen:
                remove_jobs(sorted(seen))
            if pending is not None:
                raise pending
