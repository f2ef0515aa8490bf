"""The stand-in pool's job table: one directory per job under ``$CALIBER_CONDOR_STATE``.

Each job is ``jobs/C.P/job.json`` (its ClassAd-like record, changed under a lock), its
process group and its user log. Used by submit.py (queueing) and pool.py (the shepherd,
condor_q and condor_rm). Standard library only.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from pathlib import Path

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
STATUS_LETTER = {IDLE: "I", RUNNING: "R", REMOVED: "X", COMPLETED: "C", HELD: "H"}
IN_QUEUE = (IDLE, RUNNING, HELD)
SCHEDD_ADDRESS = "<127.0.0.1:9618?addrs=127.0.0.1-9618&alias=localhost&noUDP&sock=schedd_standin>"


def state_dir() -> Path:
    """Where the stand-in keeps its jobs: ``$CALIBER_CONDOR_STATE`` or ``~/.cache/caliber-condor``."""
    root = os.environ.get("CALIBER_CONDOR_STATE") or os.path.join(os.path.expanduser("~"), ".cache", "caliber-condor")
    path = Path(root)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def next_cluster_id(state: Path) -> int:
    with _locked(state / "cluster_id.lock") as fh:
        fh.seek(0)
        text = fh.read().strip()
        cid = int(text) + 1 if text else 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(cid))
        fh.flush()
    return cid


def job_dir(state: Path, job_id: str) -> Path:
    return state / "jobs" / job_id


def read_job(jdir: Path) -> dict:
    return json.loads((jdir / "job.json").read_text())


def write_job(jdir: Path, job: dict) -> None:
    tmp = jdir / "job.json.tmp"
    tmp.write_text(json.dumps(job, indent=1))
    os.replace(tmp, jdir / "job.json")


def update_job(jdir: Path, **changes) -> dict:
    """Change fields of a job under its lock; a removed or finished job keeps its status."""
    with _locked(jdir / "job.lock"):
        job = read_job(jdir)
        if "JobStatus" in changes and job["JobStatus"] in (REMOVED, COMPLETED):
            changes.pop("JobStatus")
            changes.pop("EnteredCurrentStatus", None)
        job.update(changes)
        write_job(jdir, job)
    return job


def group_alive(pgid: int | None) -> bool:
    """Whether a process group still has a live (not zombie) process."""
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc/self"):
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):  # exited processes may wait a while for their reaper
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def all_jobs(state: Path | None = None) -> list[dict]:
    """Every job the stand-in knows (queue and history), refreshed: a running job whose
    process group is gone without a recorded exit is marked completed."""
    state = state or state_dir()
    jobs = []
    for jdir in sorted((state / "jobs").iterdir(), key=lambda p: tuple(int(x) for x in p.name.split("."))
                       if re.fullmatch(r"\d+\.\d+", p.name) else (0, 0)):
        if not (jdir / "job.json").exists():
            continue
        try:
            job = read_job(jdir)
        except (json.JSONDecodeError, OSError):
            continue
        if job["JobStatus"] in (IDLE, RUNNING) and not group_alive(job.get("pgid")) \
                and time.time() - job.get("QDate", 0) > 2:
            job = update_job(jdir, JobStatus=COMPLETED, EnteredCurrentStatus=int(time.time()))
        jobs.append(job)
    return jobs


def queued_jobs(state: Path | None = None) -> list[dict]:
    """Jobs still in the queue: idle, running or held (what condor_q shows)."""
    return [j for j in all_jobs(state) if j["JobStatus"] in IN_QUEUE]


def owner_name() -> str:
    """The submitting user (a job's ``Owner``)."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.getuid())


def user_log(job: dict, code: str, text: str) -> None:
    """Append one event (``000`` submitted, ``001`` executing, ``005`` terminated, ``009`` aborted,
    ``012`` held) to the job's ``Log`` file, when it has one."""
    if not job.get("log"):
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    c, p = job["job_id"].split(".")
    with contextlib.suppress(OSError), open(job["log"], "a") as fh:
        fh.write(f"{code} ({int(c):03d}.{int(p):03d}.000) {stamp} {text}\n...\n")


def ad_get(job: dict, name: str):
    """A job attribute by name, case-insensitively (ClassAd names are); None when absent."""
    low = name.lower()
    for k, v in job.items():
        if k.lower() == low:
            return v
    return None
