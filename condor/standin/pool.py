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

This file runs the jobs (the shepherd), removes them and holds the command lines;
submit.py reads submit descriptions and queues jobs, state.py keeps the job table.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file (bin/condor_*, the shepherd)
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # the project root, not condor/standin/

from condor.standin.state import (COMPLETED, HELD, IDLE, IN_QUEUE, REMOVED, RUNNING, SCHEDD_ADDRESS,
                                  STATUS_LETTER, ad_get, group_alive, job_dir, owner_name, queued_jobs,
                                  read_job, state_dir, update_job, user_log)
from condor.standin.submit import SubmitError, submit

KILL_GRACE_S = 3.0


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
    job = read_job(jdir)
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
        update_job(jdir, JobStatus=HELD, HoldReason=f"Error from stand-in: {e}", HoldReasonCode=12,
                    EnteredCurrentStatus=int(time.time()))
        user_log(job, "012", f"Job was held.\n\tError from stand-in: {e}")
        while read_job(jdir)["JobStatus"] == HELD:  # stay in the queue, held, until condor_rm
            time.sleep(1)
        return 1
    if read_job(jdir)["JobStatus"] == REMOVED:
        return 0
    if job.get("SingularityImage"):
        note = f"condor stand-in: +SingularityImage {job['SingularityImage']} ignored; the job runs on this machine\n"
        os.write(err.fileno() if hasattr(err, "fileno") else 2, note.encode())
    proc = subprocess.Popen(job["command"], cwd=str(cwd), env=_job_environment(job), stdin=subprocess.DEVNULL,
                            stdout=out, stderr=err, close_fds=True)
    update_job(jdir, JobStatus=RUNNING, EnteredCurrentStatus=int(time.time()), pid=proc.pid,
                JobStartDate=int(time.time()), RemoteHost=f"slot1@{socket.gethostname()}")
    user_log(job, "001", f"Job executing on host: {SCHEDD_ADDRESS}")
    code = proc.wait()
    final = read_job(jdir)
    if final["JobStatus"] == REMOVED:
        user_log(job, "009", "Job was aborted.\n\tvia condor_rm (by user)")
        return 0
    with contextlib.suppress(OSError):
        if transfer:
            _transfer_back(job, before)
    update_job(jdir, JobStatus=COMPLETED, ExitCode=code if code >= 0 else None,
                ExitBySignal=code < 0, EnteredCurrentStatus=int(time.time()), CompletionDate=int(time.time()))
    user_log(job, "005", f"Job terminated.\n\t(1) Normal termination (return value {code})")
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
        update_job(job_dir(state, job["job_id"]), JobStatus=REMOVED, EnteredCurrentStatus=int(time.time()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job["pgid"], signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    alive = [j for j in chosen if group_alive(j.get("pgid"))]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [j for j in alive if group_alive(j.get("pgid"))]
    for job in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job["pgid"], signal.SIGKILL)
        user_log(job, "009", "Job was aborted.\n\tvia condor_rm (by user)")
    return [j["job_id"] for j in chosen], missing


# --------------------------------------------------------------------------- command lines

def _fmt_value(v) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


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
    owner = owner_name()
    if targets:
        jobs = [j for j in jobs if any(j["job_id"] == t or ("." not in t and str(j["ClusterId"]) == t)
                                       or t == j["Owner"] for t in targets)]
    if constraint:
        jobs = [j for j in jobs if j["JobStatus"] == constraint]
    public = [{k: v for k, v in j.items() if k[:1].isupper()} for j in jobs]
    if mode == "af":
        for j, ad in zip(jobs, public):
            vals = [_fmt_value(ad_get(ad, a)) for a in attrs]
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
