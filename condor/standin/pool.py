"""A local stand-in HTCondor pool: ``condor_submit``, ``condor_q`` and ``condor_rm`` on one machine.

It really runs the jobs it is given, as local processes, so that dask-jobqueue's
``HTCondorCluster`` (and ``runner.py train --submit condor``) can be exercised
without a pool. What it does, in HTCondor's words:

- ``condor_submit FILE``: reads the submit description (``key = value`` lines,
  ``+Attr``/``MY.Attr`` job attributes, macros ``$(ClusterId)``, ``$(ProcId)``,
  ``$(name)``, ``$F(...)``, ``$ENV(...)``, new-syntax ``Arguments`` and
  ``Environment``, ``Queue [N]``), checks the executable and
  ``transfer_input_files``, and starts every job as a detached process group under
  a small shepherd process. It prints ``N job(s) submitted to cluster C.``.
- The job runs like a vanilla-universe job: in a fresh scratch directory
  (``$_CONDOR_SCRATCH_DIR``) with the input files copied in when files are
  transferred, else in the submit directory (shared filesystem); its environment is
  HTCondor's minimal one plus ``Environment`` (all of the submitter's with
  ``getenv = True``); ``Output``/``Error``/``Log`` are written where the description
  says (the log holds submit / execute / terminate / abort events); output files
  come back to the submit directory on exit.
- ``condor_q``: jobs still in the queue (idle, running, held), in the default
  batch table, ``-nobatch``, ``-af[:j]`` (autoformat), ``-long`` or ``-json``.
- ``condor_rm ID|CLUSTER|-all``: marks the jobs removed and kills their process
  group (SIGTERM, then SIGKILL after a grace period).

What it does not do: match-making, resource limits (``request_*`` are recorded,
not enforced), containers (``+SingularityImage`` is recorded and ignored), GPUs.
The state (job table, scratch directories) lives in ``$CALIBER_CONDOR_STATE``
(default ``~/.cache/caliber-condor``). Standard library only.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
STATUS_LETTER = {IDLE: "I", RUNNING: "R", REMOVED: "X", COMPLETED: "C", HELD: "H"}
IN_QUEUE = (IDLE, RUNNING, HELD)
KILL_GRACE_S = 3.0
SCHEDD_ADDRESS = "<127.0.0.1:9618?addrs=127.0.0.1-9618&alias=localhost&noUDP&sock=schedd_standin>"


class SubmitError(RuntimeError):
    """A submit description the pool refuses (the message is what condor_submit prints)."""


# --------------------------------------------------------------------------- state

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


def _next_cluster_id(state: Path) -> int:
    with _locked(state / "cluster_id.lock") as fh:
        fh.seek(0)
        text = fh.read().strip()
        cid = int(text) + 1 if text else 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(cid))
        fh.flush()
    return cid


def _job_dir(state: Path, job_id: str) -> Path:
    return state / "jobs" / job_id


def _read_job(jdir: Path) -> dict:
    return json.loads((jdir / "job.json").read_text())


def _write_job(jdir: Path, job: dict) -> None:
    tmp = jdir / "job.json.tmp"
    tmp.write_text(json.dumps(job, indent=1))
    os.replace(tmp, jdir / "job.json")


def _update_job(jdir: Path, **changes) -> dict:
    """Change fields of a job under its lock; a removed or finished job keeps its status."""
    with _locked(jdir / "job.lock"):
        job = _read_job(jdir)
        if "JobStatus" in changes and job["JobStatus"] in (REMOVED, COMPLETED):
            changes.pop("JobStatus")
            changes.pop("EnteredCurrentStatus", None)
        job.update(changes)
        _write_job(jdir, job)
    return job


def _group_alive(pgid: int | None) -> bool:
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
            job = _read_job(jdir)
        except (json.JSONDecodeError, OSError):
            continue
        if job["JobStatus"] in (IDLE, RUNNING) and not _group_alive(job.get("pgid")) \
                and time.time() - job.get("QDate", 0) > 2:
            job = _update_job(jdir, JobStatus=COMPLETED, EnteredCurrentStatus=int(time.time()))
        jobs.append(job)
    return jobs


def queued_jobs(state: Path | None = None) -> list[dict]:
    """Jobs still in the queue: idle, running or held (what condor_q shows)."""
    return [j for j in all_jobs(state) if j["JobStatus"] in IN_QUEUE]


# --------------------------------------------------------------------------- submit descriptions

def parse_submit(text: str) -> tuple[list[tuple[str, str]], list[int]]:
    """The ``key = value`` commands of a submit description and the job count of each ``queue``."""
    commands: list[tuple[str, str]] = []
    queues: list[int] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1].rstrip() + " " + lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        low = line.lower()
        if low == "queue" or low.startswith("queue ") or low.startswith("queue\t"):
            rest = line[5:].strip()
            if not rest:
                queues.append(1)
            elif re.fullmatch(r"\d+", rest):
                queues.append(int(rest))
            else:
                raise SubmitError(f"ERROR: the stand-in pool supports only 'queue' and 'queue N', not {line!r}")
            continue
        if "=" not in line:
            raise SubmitError(f"ERROR: Parse error in submit file: {line!r}")
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("+"):
            key = "MY." + key[1:]
        commands.append((key, value.strip()))
    if not queues:
        raise SubmitError("ERROR: no 'queue' statement in the submit description")
    return commands, queues


_MACRO = re.compile(r"\$(?P<fn>F[a-zA-Z]*|ENV)?\((?P<name>[A-Za-z0-9_.+]+)\)")


def expand(value: str, macros: dict[str, str], depth: int = 0) -> str:
    """Expand ``$(name)``, ``$F[pnxqa](name)`` and ``$ENV(name)`` the way condor_submit does."""
    if depth > 20:
        raise SubmitError(f"ERROR: macro expansion too deep in {value!r}")

    def one(m: re.Match) -> str:
        fn, name = m.group("fn"), m.group("name")
        if fn == "ENV":
            return os.environ.get(name, "")
        raw = expand(macros.get(name.lower(), ""), macros, depth + 1)
        if fn is None:
            return raw
        opts = fn[1:].lower()
        val = raw.strip().strip('"')
        if not opts or opts in ("q",):
            return val
        out = ""
        if "p" in opts or "d" in opts:
            out += os.path.dirname(val) + ("/" if os.path.dirname(val) else "")
        stem, ext = os.path.splitext(os.path.basename(val))
        if "n" in opts:
            out += stem
        if "x" in opts:
            out += ext
        return out or val

    prev = None
    while prev != value:
        prev = value
        value = _MACRO.sub(one, value)
    return value


def split_arguments(value: str) -> list[str]:
    """Condor ``Arguments``: new syntax (in double quotes: spaces split, single quotes group,
    doubled quotes are literal) or old syntax (spaces split)."""
    value = value.strip()
    if not (value.startswith('"') and value.endswith('"') and len(value) >= 2):
        return value.replace('\\"', '"').split()
    body = value[1:-1]
    args, cur, has, i, quoted = [], [], False, 0, False
    while i < len(body):
        c = body[i]
        if c == '"' and i + 1 < len(body) and body[i + 1] == '"':
            cur.append('"')
            has = True
            i += 2
            continue
        if c == "'":
            if quoted and i + 1 < len(body) and body[i + 1] == "'":
                cur.append("'")
                i += 2
                continue
            quoted = not quoted
            has = True
            i += 1
            continue
        if c.isspace() and not quoted:
            if has:
                args.append("".join(cur))
            cur, has = [], False
            i += 1
            continue
        cur.append(c)
        has = True
        i += 1
    if quoted:
        raise SubmitError(f"ERROR: unbalanced single quote in arguments {value!r}")
    if has:
        args.append("".join(cur))
    return args


def split_environment(value: str) -> dict[str, str]:
    """Condor ``Environment``: new syntax ``"A=1 B='x y'"`` or old syntax ``A=1;B=2``."""
    value = value.strip()
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        items = split_arguments(value)
    else:
        items = [x for x in value.split(";") if x.strip()]
    env = {}
    for item in items:
        if "=" not in item:
            raise SubmitError(f"ERROR: environment entry {item!r} has no '='")
        k, v = item.split("=", 1)
        env[k.strip()] = v
    return env


def _classad_value(text: str, ad: dict):
    """A job attribute's value: a number, a boolean, a string, or an expression over MY.* evaluated
    when it only uses numbers and floor/ceil (what dask-jobqueue writes)."""
    t = text.strip()
    if t.startswith('"') and t.endswith('"') and len(t) >= 2:
        return t[1:-1]
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    with contextlib.suppress(ValueError):
        return int(t)
    with contextlib.suppress(ValueError):
        return float(t)
    expr = re.sub(r"\bMY\.(\w+)", lambda m: repr(ad.get(m.group(1).lower(), 0)), t)
    if re.fullmatch(r"[\d\s.+\-*/()]*", expr.replace("floor", "").replace("ceil", "")):
        with contextlib.suppress(Exception):
            return eval(expr, {"__builtins__": {}}, {"floor": math.floor, "ceil": math.ceil})  # noqa: S307
    return t


#: submit command -> job ClassAd attribute name (for condor_q)
AD_NAMES = {"request_cpus": "RequestCpus", "request_memory": "RequestMemory", "request_disk": "RequestDisk",
            "request_gpus": "RequestGPUs", "requestcpus": "RequestCpus", "requestmemory": "RequestMemory",
            "requestdisk": "RequestDisk", "requestgpus": "RequestGPUs", "batch_name": "JobBatchName",
            "executable": "Cmd",
            "arguments": "Args", "universe": "JobUniverse", "output": "Out", "error": "Err", "log": "UserLog",
            "transfer_input_files": "TransferInput", "environment": "Environment", "initialdir": "Iwd"}


def _with_unit(text: str, unit: str) -> str:
    """request_memory (MiB) / request_disk (KiB) accept units (``2GB``, ``500M``); expressions stay."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT])B?\s*", str(text), re.I)
    if not m:
        return text
    power = "KMGT"
    return str(int(float(m.group(1)) * 1024 ** (power.index(m.group(2).upper()) - power.index(unit))))


def build_jobs(text: str, cluster_id: int, submit_dir: Path, owner: str) -> list[dict]:
    """Job records (attributes, command, environment, files) for every ``queue``d job."""
    commands, queues = parse_submit(text)
    jobs = []
    proc = 0
    for n in queues:
        for _ in range(n):
            macros: dict[str, str] = {"clusterid": str(cluster_id), "cluster": str(cluster_id),
                                      "procid": str(proc), "process": str(proc), "step": "0", "node": "0"}
            for key, value in commands:
                macros[key.lower()] = value
                if key.lower().startswith("my."):
                    macros[key.lower()[3:]] = value
            sub = {k.lower(): expand(v, macros) for k, v in commands}
            jobs.append(_job_record(sub, commands, cluster_id, proc, submit_dir, owner))
            proc += 1
    return jobs


def _job_record(sub: dict, commands: list[tuple[str, str]], cluster_id: int, proc: int, submit_dir: Path,
                owner: str) -> dict:
    iwd = Path(sub.get("initialdir") or submit_dir)
    if not iwd.is_absolute():
        iwd = submit_dir / iwd
    exe = sub.get("executable")
    if not exe:
        raise SubmitError("ERROR: No 'executable' parameter was provided")
    exe_path = Path(exe) if os.path.isabs(exe) else iwd / exe
    if not exe_path.exists():
        raise SubmitError(f"ERROR: Executable file {exe_path} does not exist")
    universe = sub.get("universe", "vanilla").lower()
    if universe not in ("vanilla", "local", "scheduler"):
        raise SubmitError(f"ERROR: the stand-in pool runs vanilla-universe jobs only, not universe = {universe}")
    inputs = [x.strip() for x in sub.get("transfer_input_files", "").split(",") if x.strip()]
    for f in inputs:
        p = Path(f) if os.path.isabs(f) else iwd / f.rstrip("/")
        if "://" not in f and not p.exists():
            raise SubmitError(f'ERROR: Can\'t open "{p}"  with flags 00 (No such file or directory)')
    proxy = sub.get("x509userproxy")
    if proxy:  # HTCondor sends the proxy with the job and points X509_USER_PROXY at the copy
        p = Path(proxy) if os.path.isabs(proxy) else iwd / proxy
        if not p.exists():
            raise SubmitError(f"ERROR: could not read x509userproxy {p} (No such file or directory)")
        inputs.append(str(p))
    transfer = sub.get("should_transfer_files", "IF_NEEDED").upper()
    if inputs and transfer == "NO":
        raise SubmitError("ERROR: transfer_input_files given with should_transfer_files = NO")
    ad: dict = {"ClusterId": cluster_id, "ProcId": proc, "Owner": owner, "JobStatus": IDLE,
                "QDate": int(time.time()), "EnteredCurrentStatus": int(time.time()), "Iwd": str(iwd),
                "JobUniverse": 5, "RequestCpus": 1, "RequestMemory": 128, "RequestDisk": 1024, "RequestGPUs": 0}
    lowered: dict = {}
    original = {key.lower(): key for key, _ in commands}
    for key, _ in commands:
        k = key.lower()
        value = sub[k]
        if k.startswith("my."):
            name = key[3:]
            lowered[name.lower()] = _classad_value(value, lowered)
            ad[name] = lowered[name.lower()]
    for k, value in sub.items():
        if k.startswith("my."):
            continue
        name = AD_NAMES.get(k, original.get(k, k))
        if name == "RequestMemory":
            value = _with_unit(value, "M")
        elif name == "RequestDisk":
            value = _with_unit(value, "K")
        ad[name] = _classad_value(value, lowered)
        lowered[name.lower()] = ad[name]
    ad["Iwd"] = str(iwd)
    args = split_arguments(sub.get("arguments", ""))
    env = split_environment(sub["environment"]) if "environment" in sub else {}
    job_id = f"{cluster_id}.{proc}"
    ad["GlobalJobId"] = f"standin#{job_id}#{ad['QDate']}"

    def where(key: str) -> str | None:
        v = sub.get(key)
        if not v:
            return None
        return v if os.path.isabs(v) else str(iwd / v)

    return {
        **ad,
        "job_id": job_id,
        "command": [str(exe_path), *args],
        "environment": env,
        "x509userproxy": os.path.basename(proxy) if proxy else None,
        "getenv": str(sub.get("getenv", "false")).lower() in ("true", "yes", "1"),
        "output": where("output"), "error": where("error"), "log": where("log"),
        "transfer_input_files": inputs,
        "should_transfer_files": transfer,
        "transfer_output_files": [x.strip() for x in sub.get("transfer_output_files", "").split(",") if x.strip()],
        "transfer_output_remaps": sub.get("transfer_output_remaps", "").strip().strip('"'),
        "SingularityImage": ad.get("SingularityImage"),
    }


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.getuid())


def _user_log(job: dict, code: str, text: str) -> None:
    if not job.get("log"):
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    c, p = job["job_id"].split(".")
    with contextlib.suppress(OSError), open(job["log"], "a") as fh:
        fh.write(f"{code} ({int(c):03d}.{int(p):03d}.000) {stamp} {text}\n...\n")


def submit(path: str | None, text: str | None = None, *, batch_name: str | None = None) -> tuple[int, list[dict]]:
    """Queue the jobs of a submit description; returns (cluster id, jobs). Starts each job's shepherd."""
    if text is None:
        try:
            text = Path(path).read_text() if path and path != "-" else sys.stdin.read()
        except OSError as err:
            raise SubmitError(f"ERROR: Failed to open command file ({err.strerror})") from None
    state = state_dir()
    owner = _owner()
    cluster_id = _next_cluster_id(state)
    jobs = build_jobs(text, cluster_id, Path.cwd(), owner)
    for job in jobs:
        if batch_name:
            job["JobBatchName"] = batch_name
        jdir = _job_dir(state, job["job_id"])
        jdir.mkdir(parents=True)
        (jdir / "submit.sub").write_text(text)
        job["scratch"] = str(jdir / "scratch")
        _write_job(jdir, job)
        _user_log(job, "000", f"Job submitted from host: {SCHEDD_ADDRESS}")
        with open(jdir / "shepherd.log", "ab") as log:
            shepherd = subprocess.Popen([sys.executable, os.path.abspath(__file__), "shepherd", str(jdir)],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(jdir),
                                        start_new_session=True, close_fds=True)
        _update_job(jdir, pgid=shepherd.pid, shepherd_pid=shepherd.pid)
    return cluster_id, jobs


# --------------------------------------------------------------------------- running a job

def _job_environment(job: dict) -> dict[str, str]:
    if job["getenv"]:
        env = dict(os.environ)
    else:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/"),
               "USER": job["Owner"], "LANG": "C.UTF-8"}
    env.update(job["environment"])
    if job.get("x509userproxy"):
        env["X509_USER_PROXY"] = os.path.join(job["scratch"], job["x509userproxy"])
    env.update({"_CONDOR_SCRATCH_DIR": job["scratch"], "TMPDIR": job["scratch"],
                "_CONDOR_JOB_AD": os.path.join(job["scratch"], ".job.ad"),
                "_CONDOR_AssignedGPUs": "", "CONDOR_STANDIN": "1"})
    return env


def _copy_in(src: Path, dest_dir: Path) -> None:
    if src.is_dir():
        if str(src).endswith("/"):
            shutil.copytree(src, dest_dir, dirs_exist_ok=True)
        else:
            shutil.copytree(src, dest_dir / src.name, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest_dir / src.name)


def _transfer_back(job: dict, before: set[str]) -> None:
    scratch, iwd = Path(job["scratch"]), Path(job["Iwd"])
    remaps = {}
    for item in job["transfer_output_remaps"].split(";"):
        if "=" in item:
            a, b = item.split("=", 1)
            remaps[a.strip()] = b.strip()
    names = job["transfer_output_files"] or [p.name for p in scratch.iterdir()
                                              if p.name not in before and not p.name.startswith(".")
                                              and p.name not in ("_condor_stdout", "_condor_stderr")]
    for name in names:
        src = scratch / name
        if not src.exists():
            continue
        dest = Path(remaps.get(name, name))
        dest = dest if dest.is_absolute() else iwd / dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)


def shepherd(jdir: Path) -> int:
    """Run one job to completion (the process that condor_rm's signal reaches first)."""
    signal.signal(signal.SIGTERM, lambda *_: None)  # outlive the job to record its end; reset on exec
    job = _read_job(jdir)
    scratch = Path(job["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    transfer = job["should_transfer_files"] == "YES" or bool(job["transfer_input_files"])
    cwd = scratch if transfer else Path(job["Iwd"])
    try:
        for f in job["transfer_input_files"]:
            src = Path(f) if os.path.isabs(f) else Path(job["Iwd"]) / f
            _copy_in(src if not f.endswith("/") else Path(str(src) + "/"), scratch)
        if transfer:
            exe = Path(job["command"][0])
            if exe.parent != Path("/bin") and exe.parent != Path("/usr/bin") and exe.exists():
                shutil.copy2(exe, scratch / "condor_exec.exe")
                job["command"][0] = str(scratch / "condor_exec.exe")
        before = {p.name for p in scratch.iterdir()}
        out = open(job["output"], "ab") if job["output"] else subprocess.DEVNULL
        err = open(job["error"], "ab") if job["error"] else subprocess.DEVNULL
    except OSError as e:
        _update_job(jdir, JobStatus=HELD, HoldReason=f"Error from stand-in: {e}", HoldReasonCode=12,
                    EnteredCurrentStatus=int(time.time()))
        _user_log(job, "012", f"Job was held.\n\tError from stand-in: {e}")
        while _read_job(jdir)["JobStatus"] == HELD:  # stay in the queue, held, until condor_rm
            time.sleep(1)
        return 1
    if _read_job(jdir)["JobStatus"] == REMOVED:
        return 0
    if job.get("SingularityImage"):
        note = f"condor stand-in: +SingularityImage {job['SingularityImage']} ignored; the job runs on this machine\n"
        os.write(err.fileno() if hasattr(err, "fileno") else 2, note.encode())
    proc = subprocess.Popen(job["command"], cwd=str(cwd), env=_job_environment(job), stdin=subprocess.DEVNULL,
                            stdout=out, stderr=err, close_fds=True)
    _update_job(jdir, JobStatus=RUNNING, EnteredCurrentStatus=int(time.time()), pid=proc.pid,
                JobStartDate=int(time.time()), RemoteHost=f"slot1@{socket.gethostname()}")
    _user_log(job, "001", f"Job executing on host: {SCHEDD_ADDRESS}")
    code = proc.wait()
    final = _read_job(jdir)
    if final["JobStatus"] == REMOVED:
        _user_log(job, "009", "Job was aborted.\n\tvia condor_rm (by user)")
        return 0
    with contextlib.suppress(OSError):
        if transfer:
            _transfer_back(job, before)
    _update_job(jdir, JobStatus=COMPLETED, ExitCode=code if code >= 0 else None,
                ExitBySignal=code < 0, EnteredCurrentStatus=int(time.time()), CompletionDate=int(time.time()))
    _user_log(job, "005", f"Job terminated.\n\t(1) Normal termination (return value {code})")
    return 0


# --------------------------------------------------------------------------- removal

def remove(targets: list[str], *, all_jobs_of_user: bool = False) -> tuple[list[str], list[str]]:
    """Remove jobs (``C.P`` or a whole cluster ``C``); returns (removed ids, targets not found)."""
    state = state_dir()
    queue = queued_jobs(state)
    chosen: list[dict] = []
    missing: list[str] = []
    if all_jobs_of_user:
        chosen = list(queue)
    for t in targets:
        hit = [j for j in queue if j["job_id"] == t or str(j["ClusterId"]) == t.split(".")[0] and "." not in t]
        if not hit:
            missing.append(t)
        chosen.extend(j for j in hit if j not in chosen)
    for job in chosen:
        _update_job(_job_dir(state, job["job_id"]), JobStatus=REMOVED, EnteredCurrentStatus=int(time.time()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job["pgid"], signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    alive = [j for j in chosen if _group_alive(j.get("pgid"))]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [j for j in alive if _group_alive(j.get("pgid"))]
    for job in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job["pgid"], signal.SIGKILL)
        _user_log(job, "009", "Job was aborted.\n\tvia condor_rm (by user)")
    return [j["job_id"] for j in chosen], missing


# --------------------------------------------------------------------------- command lines

def _fmt_value(v) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _ad_get(job: dict, name: str):
    low = name.lower()
    for k, v in job.items():
        if k.lower() == low:
            return v
    return None


def main_submit(argv: list[str]) -> int:
    files, batch_name, terse = [], None, False
    it = iter(argv)
    for a in it:
        if a in ("-batch-name", "-batch_name"):
            batch_name = next(it, None)
        elif a == "-terse":
            terse = True
        elif a in ("-queue", "-append", "-a", "-name", "-remote", "-pool", "-spool"):
            print(f"condor_submit (stand-in): option {a} is not supported", file=sys.stderr)
            return 1
        elif a.startswith("-") and a != "-":
            continue  # -verbose, -disable and the like change nothing here
        else:
            files.append(a)
    try:
        cid, jobs = submit(files[0] if files else "-", batch_name=batch_name)
    except SubmitError as err:
        print(str(err), file=sys.stderr)
        return 1
    if terse:
        print(f"{cid}.0 - {cid}.{len(jobs) - 1}")
    else:
        print("Submitting job(s)" + "." * len(jobs))
        print(f"{len(jobs)} job(s) submitted to cluster {cid}.")
    return 0


def main_q(argv: list[str]) -> int:
    mode, attrs, join, targets, constraint = "batch", [], False, [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-af") or a.startswith("-autoformat"):
            mode, join = "af", ":" in a and "j" in a.split(":", 1)[1]
            attrs = []
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                attrs.append(argv[i])
                i += 1
            continue
        if a in ("-nobatch", "-nob"):
            mode = "nobatch" if mode == "batch" else mode
        elif a in ("-long", "-l"):
            mode = "long"
        elif a == "-json":
            mode = "json"
        elif a in ("-totals", "-tot"):
            mode = "totals"
        elif a in ("-hold", "-held"):
            constraint = HELD
        elif a in ("-run", "-running"):
            constraint = RUNNING
        elif a in ("-idle",):
            constraint = IDLE
        elif a in ("-allusers", "-all", "-global", "-wide", "-batch", "-nobatch"):
            pass
        elif a in ("-constraint", "-format", "-name", "-pool"):
            print(f"condor_q (stand-in): option {a} is not supported", file=sys.stderr)
            return 1
        elif not a.startswith("-"):
            targets.append(a)
        i += 1
    jobs = queued_jobs()
    owner = _owner()
    if targets:
        jobs = [j for j in jobs if any(j["job_id"] == t or ("." not in t and str(j["ClusterId"]) == t)
                                       or t == j["Owner"] for t in targets)]
    if constraint:
        jobs = [j for j in jobs if j["JobStatus"] == constraint]
    public = [{k: v for k, v in j.items() if k[:1].isupper()} for j in jobs]
    if mode == "af":
        for j, ad in zip(jobs, public):
            vals = [_fmt_value(_ad_get(ad, a)) for a in attrs]
            print(" ".join(([j["job_id"]] if join else []) + vals))
        return 0
    if mode == "json":
        print(json.dumps(public, indent=2) if public else "")
        return 0
    if mode == "long":
        for j in public:
            for k, v in sorted(j.items()):
                print(f"{k} = {json.dumps(v) if isinstance(v, str) else _fmt_value(v)}")
            print()
        return 0
    now = time.strftime("%m/%d/%y %H:%M:%S")
    if mode != "totals":
        print(f"\n\n-- Schedd: {socket.gethostname()} : {SCHEDD_ADDRESS} @ {now}")
    if mode == "nobatch":
        print(" ID      OWNER            SUBMITTED     RUN_TIME ST PRI SIZE CMD")
        for j in jobs:
            run = int(time.time() - j.get("JobStartDate", time.time())) if j["JobStatus"] == RUNNING else 0
            d, r = divmod(run, 86400)
            cmd = " ".join([os.path.basename(j["command"][0])] + j["command"][1:])[:40]
            print(f"{j['job_id']:>6}   {j['Owner']:<14} {time.strftime('%m/%d %H:%M', time.localtime(j['QDate']))}"
                  f"   {d}+{time.strftime('%H:%M:%S', time.gmtime(r))} {STATUS_LETTER[j['JobStatus']]}  0    0.0 {cmd}")
    elif mode == "batch":
        print("OWNER BATCH_NAME      SUBMITTED   DONE   RUN    IDLE  HOLD  TOTAL JOB_IDS")
        groups: dict = {}
        for j in jobs:
            groups.setdefault((j["Owner"], j.get("JobBatchName") or f"ID: {j['ClusterId']}"), []).append(j)
        for (own, name), js in groups.items():
            n = {s: sum(1 for j in js if j["JobStatus"] == s) for s in IN_QUEUE}
            ids = js[0]["job_id"] + (f" ... {js[-1]['job_id']}" if len(js) > 1 else "")
            print(f"{own:<5} {name:<15} {time.strftime('%m/%d %H:%M', time.localtime(js[0]['QDate']))}"
                  f"      _ {n[RUNNING] or '_':>5} {n[IDLE] or '_':>6} {n[HELD] or '_':>5} {len(js):>6} {ids}")
    n = {s: sum(1 for j in jobs if j["JobStatus"] == s) for s in IN_QUEUE}
    print(f"\nTotal for query: {len(jobs)} jobs; 0 completed, 0 removed, {n[IDLE]} idle, {n[RUNNING]} running, "
          f"{n[HELD]} held, 0 suspended ")
    mine = [j for j in queued_jobs() if j["Owner"] == owner]
    print(f"Total for {owner}: {len(mine)} jobs; 0 completed, 0 removed, "
          f"{sum(j['JobStatus'] == IDLE for j in mine)} idle, {sum(j['JobStatus'] == RUNNING for j in mine)} running, "
          f"{sum(j['JobStatus'] == HELD for j in mine)} held, 0 suspended ")
    return 0


def main_rm(argv: list[str]) -> int:
    everything = "-all" in argv or "-a" in argv
    targets = [a for a in argv if not a.startswith("-")]
    if not targets and not everything:
        print("Usage: condor_rm [options] <cluster>.<proc> | <cluster> | -all", file=sys.stderr)
        return 1
    removed, missing = remove(targets, all_jobs_of_user=everything)
    for t in targets:
        if t in missing:
            if "." in t:
                c, p = t.split(".", 1)
                print(f"Couldn't find/remove all jobs matching constraint (ClusterId == {c} && ProcId == {p})",
                      file=sys.stderr)
            else:
                print(f"Couldn't find/remove all jobs in cluster {t}", file=sys.stderr)
        elif "." in t:
            print(f"Job {t} marked for removal")
        else:
            print(f"All jobs in cluster {t} have been marked for removal")
    if everything:
        print(f"All jobs of user {os.environ.get('USER', '')} have been marked for removal ({len(removed)})")
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: pool.py submit|q|rm|shepherd|path ...", file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "submit":
        return main_submit(rest)
    if cmd == "q":
        return main_q(rest)
    if cmd == "rm":
        return main_rm(rest)
    if cmd == "shepherd":
        return shepherd(Path(rest[0]))
    if cmd == "path":
        print(Path(__file__).resolve().parent / "bin")
        return 0
    print(f"unknown stand-in command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
