"""Executors, filesets and input checks shared by every command that runs chunks.

This is the edge of the system: cluster set-up and file I/O live here, the
physics lives in the processors.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("iterative", "futures", "dask", "condor")


class BadInputError(RuntimeError):
    """A file, model or config that cannot be used; the message names it."""


def add_executor_arguments(parser: argparse.ArgumentParser, default_workers: int = 2) -> None:
    """The options every chunked command shares (run, collect, generate)."""
    g = parser.add_argument_group("execution")
    g.add_argument("--executor", choices=EXECUTORS, default="dask",
                   help="iterative (one process), futures (process pool), dask (distributed.LocalCluster), "
                        "condor (dask-jobqueue HTCondorCluster)")
    g.add_argument("--workers", type=int, default=default_workers, help="processes / dask workers / condor jobs")
    g.add_argument("--site", default="generic", help="condor site preset (condor/sites/*.yaml) or a YAML path")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--gpu-resource", action="store_true",
                   help="dask/condor: workers declare the resource GPU=1 and chunks ask for it, so inference "
                        "lands on GPU workers (each worker then runs one chunk at a time)")


# --------------------------------------------------------------------------- filesets

def load_fileset(specs: list[str], treename: str = "Events") -> dict:
    """A coffea fileset from a fileset JSON or from ROOT paths.

    ``specs`` is either one JSON file ``{"dataset": {"files": {path: tree}, "metadata": {...}}}``
    or one or more ROOT paths (each its own dataset, named after the file stem).
    Relative paths in a JSON fileset are taken relative to the JSON file.
    """
    if len(specs) == 1 and specs[0].endswith(".json"):
        path = Path(specs[0])
        if not path.exists():
            raise BadInputError(f"{path}: fileset JSON does not exist")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise BadInputError(f"{path}: not valid JSON ({err})") from None
        fileset = {}
        for dataset, entry in raw.items():
            files = entry.get("files") if isinstance(entry, dict) else entry
            if isinstance(files, list):
                files = {f: treename for f in files}
            if not isinstance(files, dict):
                raise BadInputError(f"{path}: dataset {dataset!r} has no 'files' mapping")
            resolved = {}
            for f, tree in files.items():
                fp = Path(f)
                if not fp.is_absolute() and "://" not in f:
                    fp = path.parent / fp
                resolved[str(fp)] = tree or treename
            fileset[dataset] = {"files": resolved, "metadata": dict(entry.get("metadata", {})) if isinstance(entry, dict) else {}}
            fileset[dataset]["metadata"].pop("dataset", None)
        return fileset
    fileset = {}
    for spec in specs:
        name = Path(spec).name.removesuffix(".root")
        base, i = name, 1
        while name in fileset:
            i += 1
            name = f"{base}_{i}"
        fileset[name] = {"files": {spec: treename}, "metadata": {}}
    if not fileset:
        raise BadInputError("empty fileset: give a fileset JSON or at least one ROOT file")
    return fileset


def check_file(path: str, treename: str) -> str | None:
    """The problem with one input file, or None when it can be read.

    Opens the file, finds the tree and reads the last basket of its first branch,
    which catches missing files, files that are not ROOT, missing trees and most truncations.
    """
    import uproot

    if "://" not in path and not os.path.exists(path):
        return "file does not exist"
    try:
        with uproot.open(path) as f:
            if treename not in f:
                return f"no '{treename}' tree (keys: {', '.join(sorted({k.split(';')[0] for k in f.keys()})) or 'none'})"
            tree = f[treename]
            if not hasattr(tree, "num_entries"):
                return f"'{treename}' is not a TTree"
            n = tree.num_entries
            if n > 0 and len(tree.branches):
                branch = tree.branches[0]
                branch.array(entry_start=max(0, n - 1), entry_stop=n, library="np")
    except Exception as err:  # uproot raises many kinds for damaged files
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"cannot be read as ROOT ({type(err).__name__}: {msg[:160]})"
    return None


@dataclass
class InputCheck:
    fileset: dict
    skipped: list[dict] = field(default_factory=list)


def check_fileset(fileset: dict, skip_bad_files: bool) -> InputCheck:
    """Check every file; raise on the first bad one, or drop and list bad ones."""
    good: dict = {}
    skipped: list[dict] = []
    for dataset, entry in fileset.items():
        files = {}
        for path, tree in entry["files"].items():
            problem = check_file(path, tree)
            if problem is None:
                files[path] = tree
            elif skip_bad_files:
                skipped.append({"dataset": dataset, "file": path, "reason": problem})
            else:
                raise BadInputError(f"{path}: {problem} (use --skip-bad-files to skip it)")
        if files:
            good[dataset] = {"files": files, "metadata": entry.get("metadata", {})}
    if not good:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped)
        raise BadInputError(f"no readable input file left ({reasons})")
    return InputCheck(good, skipped)


# --------------------------------------------------------------------------- executors

def _worker_setup() -> None:
    """Keep each worker to one thread of BLAS / TensorFlow so workers do not fight."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _task_resources(gpu: bool):
    """A dask annotation asking for one GPU per task, or nothing."""
    import dask

    return dask.annotate(resources={"GPU": 1}) if gpu else contextlib.nullcontext()


@contextlib.contextmanager
def make_executor(name: str, workers: int = 2, *, status: bool = True, desc: str = "Processing",
                  unit: str = "chunk", site: str = "generic", gpu_resource: bool = False,
                  condor_options: dict | None = None) -> Iterator:
    """A coffea executor by name; the dask/condor cluster lives as long as the context.

    The executor is callable as ``executor(items, function, accumulator)`` (coffea's
    executor interface), which is how ``generate`` runs seeds, and is what
    ``coffea.processor.Runner`` takes for ``run`` and ``collect``.
    """
    from coffea import processor

    if workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    if name == "iterative":
        yield processor.IterativeExecutor(status=status, desc=desc, unit=unit)
    elif name == "futures":
        yield processor.FuturesExecutor(workers=workers, status=status, desc=desc, unit=unit)
    elif name == "dask":
        from distributed import Client, LocalCluster

        _worker_setup()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, resources={"GPU": 1} if gpu_resource else None)
        client = Client(cluster)
        try:
            with _task_resources(gpu_resource):
                yield processor.DaskExecutor(client=client, status=status, desc=desc, unit=unit,
                                             treereduction=4, retries=0)
        finally:
            client.close()
            cluster.close()
    elif name == "condor":
        from condor.cluster import condor_client

        # gpu_resource: the jobs request a GPU and their workers carry the dask resource GPU=1
        with condor_client(workers=workers, site=site, gpu=gpu_resource, **(condor_options or {})) as client:
            with _task_resources(gpu_resource):
                yield processor.DaskExecutor(client=client, status=status, desc=desc, unit=unit,
                                             treereduction=4, retries=0)
    else:
        raise BadInputError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
