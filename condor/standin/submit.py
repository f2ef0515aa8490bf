"""The stand-in's ``condor_submit``: submit-description parsing, macro expansion, job records,
and queueing (each job is started under a shepherd, ``pool.py shepherd``). Standard library only.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from condor.standin.state import (IDLE, SCHEDD_ADDRESS, job_dir, next_cluster_id, owner_name, state_dir,
                                  update_job, user_log, write_job)

#: the script that runs a job's shepherd (``pool.py shepherd JOBDIR``)
POOL_SCRIPT = Path(__file__).resolve().with_name("pool.py")


class SubmitError(RuntimeError):
    """A submit description the pool refuses (the message is what condor_submit prints)."""


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


def submit(path: str | None, text: str | None = None, *, batch_name: str | None = None) -> tuple[int, list[dict]]:
    """Queue the jobs of a submit description; returns (cluster id, jobs). Starts each job's shepherd."""
    if text is None:
        try:
            text = Path(path).read_text() if path and path != "-" else sys.stdin.read()
        except OSError as err:
            raise SubmitError(f"ERROR: Failed to open command file ({err.strerror})") from None
    state = state_dir()
    owner = owner_name()
    cluster_id = next_cluster_id(state)
    jobs = build_jobs(text, cluster_id, Path.cwd(), owner)
    for job in jobs:
        if batch_name:
            job["JobBatchName"] = batch_name
        jdir = job_dir(state, job["job_id"])
        jdir.mkdir(parents=True)
        (jdir / "submit.sub").write_text(text)
        job["scratch"] = str(jdir / "scratch")
        write_job(jdir, job)
        user_log(job, "000", f"Job submitted from host: {SCHEDD_ADDRESS}")
        with open(jdir / "shepherd.log", "ab") as log:
            shepherd = subprocess.Popen([sys.executable, str(POOL_SCRIPT), "shepherd", str(jdir)],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(jdir),
                                        start_new_session=True, close_fds=True)
        update_job(jdir, pgid=shepherd.pid, shepherd_pid=shepherd.pid)
    return cluster_id, jobs
