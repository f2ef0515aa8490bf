"""``runner.py train --submit condor``: a GPU HTCondor job for one training run, kept for review.

``write_training_job`` writes a directory with ``train.sub`` (the submit description)
and ``train.sh`` (the wrapper the job runs: set-up, then ``runner.py train ...``);
``submit_training_job`` hands it to ``condor_submit`` and returns the job id. The
site preset (``condor/sites``) gives the image, environment, proxy and extra lines,
exactly as for the dask workers; training asks for more by default (4 cores, 8 GB,
1 GPU). With ``code: shared`` the job runs in the directory it was submitted from and
reads the shards in place; with ``code: ship`` the code, shards and config are
transferred and the output file comes back to where ``--output`` says.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from condor.cluster import job_settings
from condor.sites import PROJECT_ROOT, check_condor_available, condor_options_from_args, site_config
from core.errors import BadInputError

#: what a training job asks for unless the preset or the overrides say more
TRAIN_DEFAULTS = {"cores": 4, "memory": "8GB", "disk": "10GB", "gpus": 1}


def _train_config(site: str, overrides: dict | None, gpus: int) -> dict:
    from dask.utils import parse_bytes

    base = site_config(site)
    merged = {"gpus": gpus}
    for key in ("cores", "memory", "disk"):
        default = TRAIN_DEFAULTS[key]
        if key == "cores":
            merged[key] = max(int(base[key]), default)
        else:
            merged[key] = base[key] if parse_bytes(str(base[key])) >= parse_bytes(default) else default
    merged.update(overrides or {})
    return site_config(site, merged)


def write_training_job(shards: list[str], config: str | None, out: str, site: str = "generic", *,
                       train_args: list[str] | None = None, job_dir: str | os.PathLike | None = None,
                       overrides: dict | None = None, gpus: int = 1, name: str | None = None) -> Path:
    """Write ``train.sub`` + ``train.sh`` for ``runner.py train`` on HTCondor; returns the submit file.

    ``shards``: parquet shard files or directories written by ``collect``; ``config``: the
    model config YAML (or None); ``out``: the model file the training writes.
    ``train_args``: the arguments after ``runner.py train`` exactly as the job should run them
    (the user's command line without ``--submit``); default
    ``--shards S... [--config C] --output OUT``. ``job_dir`` defaults to
    ``outputs/condor-train/<name>-<time>``.
    """
    if not shards:
        raise BadInputError("condor training job: no shards given")
    shard_paths = [Path(s).expanduser() for s in shards]
    for s in shard_paths:
        if not s.exists():
            raise BadInputError(f"{s}: training shard does not exist")
    config_path = Path(config).expanduser() if config else None
    if config_path is not None and not config_path.is_file():
        raise BadInputError(f"{config_path}: model config does not exist")
    out_path = Path(out).expanduser()
    cfg = _train_config(site, overrides, gpus)
    name = name or re.sub(r"[^A-Za-z0-9_.-]", "_", out_path.stem) or "train"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jdir = Path(job_dir) if job_dir else PROJECT_ROOT / "outputs" / "condor-train" / f"{name}-{stamp}"
    jdir = jdir.resolve()
    jdir.mkdir(parents=True, exist_ok=True)
    cfg["log_directory"] = str(jdir)
    threads = str(cfg["cores"])
    cfg["environment"] = {**cfg["environment"], "OMP_NUM_THREADS": threads,
                          "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "2"}
    settings = job_settings(cfg)
    shipped = cfg["code"] == "ship"
    submit_dir = Path.cwd().resolve()

    args = list(train_args) if train_args is not None else (
        ["--shards", *map(str, shard_paths)] + (["--config", str(config_path)] if config_path else [])
        + ["--output", str(out_path)])
    transfers = list(settings["transfer_input_files"])
    remaps = ""
    if shipped:  # paths on the command line become the transferred copies in the scratch directory
        local = {str(p): p.name for p in shard_paths + ([config_path] if config_path else [])}
        local.update({str(p.resolve()): p.name for p in shard_paths + ([config_path] if config_path else [])})
        args = [local.get(a, local.get(str(Path(a).resolve()), a)) if not a.startswith("-") else a for a in args]
        args = [out_path.name if a in (str(out_path), str(out_path.resolve())) else a for a in args]
        transfers += [str(p.resolve()) for p in shard_paths] + ([str(config_path.resolve())] if config_path else [])
        remaps = f"{out_path.name} = {out_path.resolve()}"
        runner = "runner.py"
    else:
        runner = str(PROJECT_ROOT / "runner.py")

    script = ["#!/bin/sh",
              f"# caliber training job for {out_path}, written {time.strftime('%Y-%m-%d %H:%M:%S')}"
              " by condor/train_job.py",
              "# site preset: " + str(cfg["path"]),
              "set -e"]
    if not shipped:
        script.append(f"cd {shlex.quote(str(submit_dir))}")
    script += settings["prologue"]
    if not shipped:
        script.append(f"mkdir -p {shlex.quote(str(out_path.resolve().parent))}")
    script.append(f"exec {settings['python']} {shlex.quote(runner)} train {' '.join(shlex.quote(a) for a in args)}")
    wrapper = jdir / "train.sh"
    wrapper.write_text("\n".join(script) + "\n")
    wrapper.chmod(0o755)

    from dask.utils import parse_bytes

    lines = {
        "universe": "vanilla",
        "executable": "train.sh",
        "initialdir": str(jdir),
        "batch_name": f"caliber-train-{name}",
        "output": "train-$(ClusterId).$(ProcId).out",
        "error": "train-$(ClusterId).$(ProcId).err",
        "log": "train-$(ClusterId).log",
        "request_cpus": cfg["cores"],
        "request_memory": parse_bytes(str(cfg["memory"])) // 2**20,
        "request_disk": parse_bytes(str(cfg["disk"])) // 2**10,
    }
    submit = dict(settings["submit"])
    if transfers:
        submit["transfer_input_files"] = ",".join(transfers)
        submit["should_transfer_files"] = "YES"
        submit.setdefault("when_to_transfer_output", "ON_EXIT_OR_EVICT")
    if shipped:
        submit["transfer_output_files"] = out_path.name
        submit["transfer_output_remaps"] = f'"{remaps}"'
    lines.update(submit)
    text = [f"# caliber training job: condor_submit {jdir / 'train.sub'}",
            f"# runs {wrapper} (review both before submitting by hand)"]
    text += [f"{k} = {v}" for k, v in lines.items()]
    text.append("queue")
    sub = jdir / "train.sub"
    sub.write_text("\n".join(text) + "\n")
    return sub


def submit_training_job(path: str | os.PathLike) -> str:
    """``condor_submit`` the job file written by write_training_job; returns the job id (``C.0``)."""
    sub = Path(path).resolve()
    if not sub.is_file():
        raise BadInputError(f"{sub}: condor job file does not exist")
    check_condor_available()
    res = subprocess.run(["condor_submit", sub.name], cwd=sub.parent, capture_output=True, text=True)
    m = re.search(r"submitted to cluster (\d+)", res.stdout)
    if res.returncode != 0 or not m:
        why = " ".join((res.stderr.strip() or res.stdout.strip() or f"exit code {res.returncode}").split())
        raise BadInputError(f"{sub}: condor_submit refused the training job ({why[:400]})")
    return f"{m.group(1)}.0"


def strip_submit_options(argv: list[str]) -> list[str]:
    """A ``runner.py train`` argument list without ``--submit``, ``--site`` and ``--condor-*``
    (each takes a value, as ``--opt VALUE`` or ``--opt=VALUE``): what the job itself runs."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in ("--submit", "--site") or name.startswith("--condor-"):
            skip = "=" not in a
            continue
        out.append(a)
    return out


def submit_from_args(args, train_argv: list[str], *, shards: list[str], config: str | None,
                     out: str) -> tuple[str, Path]:
    """``--submit condor`` for the train command: write, submit, print; returns (job id, submit file).

    ``args`` is the parsed namespace (``--site`` and the ``--condor-*`` options of
    condor.sites.add_condor_arguments); ``train_argv`` the arguments after ``train``.
    """
    options = condor_options_from_args(args)
    sub = write_training_job(shards, config, out, getattr(args, "site", "generic") or "generic",
                             train_args=strip_submit_options(train_argv), overrides=options.get("overrides"))
    job_id = submit_training_job(sub)
    print(f"submitted HTCondor job {job_id}: {sub} (runs {sub.parent / 'train.sh'}); "
          f"logs in {sub.parent}; watch with condor_q {job_id}")
    return job_id, sub
