"""Input files: filesets (JSON or ROOT paths) and the pre-check of each file."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import BadInputError

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
        if isinstance(raw, dict) and not raw:
            raise BadInputError(f"{path}: empty fileset (no dataset lists an input file)")
        if not isinstance(raw, dict):
            raise BadInputError(f"{path}: a fileset JSON must map dataset names to files "
                                f"({{\"name\": {{\"files\": {{path: tree}}}}}}), got {type(raw).__name__}")
        fileset = {}
        for dataset, entry in raw.items():
            files = entry.get("files") if isinstance(entry, dict) else entry
            if isinstance(files, list):
                files = {f: treename for f in files}
            if not isinstance(files, dict):
                raise BadInputError(f"{path}: dataset {dataset!r} has no 'files' mapping")
            resolved = {}
            for f, tree in files.items():
                if not isinstance(f, str) or not isinstance(tree, (str, type(None))):
                    raise BadInputError(f"{path}: dataset {dataset!r}: file {f!r} needs a tree name string, got {tree!r}")
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


#: remote files checked at the same time by ``check_fileset`` (I/O bound: threads, even on few cores)
PREFLIGHT_THREADS = 16


def inspect_file(path: str, treename: str) -> tuple[str | None, frozenset, dict | None]:
    """(the problem with one input file or None, the branch names of its tree, what coffea's
    preprocessing would read: ``numentries`` and the file's ``uuid``, with the file's ``stat``).

    Opens the file, finds the tree and reads the last basket of its first branch,
    which catches missing files, files that are not ROOT, missing trees and most truncations.
    """
    import uproot

    if "://" not in path and not os.path.exists(path):
        return "file does not exist", frozenset(), None
    try:
        with uproot.open(path) as f:
            if treename not in f:
                keys = ", ".join(sorted({k.split(";")[0] for k in f.keys()})) or "none"
                return f"no '{treename}' tree (keys: {keys})", frozenset(), None
            tree = f[treename]
            if not hasattr(tree, "num_entries"):
                return f"'{treename}' is not a TTree", frozenset(), None
            n = tree.num_entries
            if n > 0 and len(tree.branches):
                branch = tree.branches[0]
                branch.array(entry_start=max(0, n - 1), entry_stop=n, library="np")
            facts = {"numentries": n, "uuid": f.file.fUUID, "stat": _stat(path)}
            return None, frozenset(tree.keys()), facts
    except Exception as err:  # uproot raises many kinds for damaged files
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"cannot be read as ROOT ({type(err).__name__}: {msg[:160]})", frozenset(), None


def _stat(path: str) -> tuple | None:
    """(size, mtime in ns) of a local file, None for a remote one."""
    if "://" in path:
        return None
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


#: what the pre-check learned of each good file, by (path, tree): coffea's preprocessing reuses it
FILE_FACTS: dict[tuple[str, str], dict] = {}


def known_file_metadata(path: str, treename: str) -> dict | None:
    """``{"numentries", "uuid"}`` of a file the pre-check of this process read, if the file has not
    changed since (same size and modification time; remote files: as read); else None."""
    facts = FILE_FACTS.get((path, treename))
    if facts is None:
        return None
    try:
        if facts["stat"] != _stat(path):
            return None
    except OSError:
        return None
    return {"numentries": facts["numentries"], "uuid": facts["uuid"]}


#: local files below which the pre-check stays in this process (a worker process costs more to start)
PREFLIGHT_MIN_FILES_PER_PROCESS = 16
#: usable cores below which the pre-check stays in this process (``bench preflight``, 200 local files: on 2 idle
#: cores 2 processes check 1.8x faster than one; on 2 cores busy with other jobs they were 0.8-0.95x)
PREFLIGHT_MIN_CORES = 2


def preflight_processes(n_files: int, processes: int | None = None) -> int:
    """Worker processes for checking ``n_files`` local files: ``processes`` when given, else one per
    usable core where there are ``PREFLIGHT_MIN_CORES``, at most one per ``PREFLIGHT_MIN_FILES_PER_PROCESS``
    files (1: in this process)."""
    if processes is not None:
        return max(1, min(processes, n_files))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < PREFLIGHT_MIN_CORES:
        return 1
    return max(1, min(cores, n_files // PREFLIGHT_MIN_FILES_PER_PROCESS))


def _inspect_many(items: list[tuple[str, str]]) -> list[tuple[str | None, frozenset, dict | None]]:
    return [inspect_file(path, tree) for path, tree in items]


def inspect_in_threads(items: list[tuple[str, str]], threads: int) -> list[tuple[str | None, frozenset, dict | None]]:
    """``inspect_file`` of every item, ``threads`` at a time (for remote files, whose network waits overlap)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda item: inspect_file(*item), items))


def _inspect_in_processes(items: list[tuple[str, str]], processes: int) -> list[tuple[str | None, frozenset, dict | None]]:
    """``inspect_file`` of every item in ``processes`` worker processes (forked where this process has
    not started TensorFlow's threads, else spawned), a few contiguous slices each."""
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "tensorflow" not in sys.modules and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    n_parts = min(len(items), processes * 4)
    bounds = [round(i * len(items) / n_parts) for i in range(n_parts + 1)]
    parts = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(method)) as pool:
        return [report for part in pool.map(_inspect_many, parts) for report in part]


def check_file(path: str, treename: str) -> str | None:
    """The problem with one input file, or None when it can be read (``inspect_file``)."""
    return inspect_file(path, treename)[0]


@dataclass
class InputCheck:
    fileset: dict
    skipped: list[dict] = field(default_factory=list)
    #: branch names of each good file's tree, so later checks need not open the files again
    branches: dict[str, frozenset] = field(default_factory=dict)


def check_fileset(fileset: dict, skip_bad_files: bool, threads: int = PREFLIGHT_THREADS,
                  processes: int | None = None) -> InputCheck:
    """Check every file; raise on the first bad one (fileset order), or drop and list bad ones.

    Local files are checked in ``processes`` worker processes (``preflight_processes``: one per core
    when there are enough files, none for a few), remote ones ``threads`` at a time (network waits overlap).
    """
    todo: list[tuple[str, str, str]] = []
    skipped: list[dict] = []
    seen: dict[tuple[str, str], str] = {}
    for dataset, entry in fileset.items():
        for path, tree in entry["files"].items():
            key = (os.path.realpath(path) if "://" not in path else path, tree)
            if key in seen:  # the same events twice would be counted twice: keep the first
                skipped.append({"dataset": dataset, "file": path,
                                "reason": f"duplicate of a file already in dataset {seen[key]!r}; processed once"})
                continue
            seen[key] = dataset
            todo.append((dataset, path, tree))
    local_items = [(p, t) for _, p, t in todo if "://" not in p]
    remote_items = [(p, t) for _, p, t in todo if "://" in p]
    procs = preflight_processes(len(local_items), processes)
    # local files: uproot's TTree reading holds the GIL, so processes or this one, never threads (16 threads
    # checked 200 local files at 0.7-0.9x the speed of one)
    local_reports = _inspect_in_processes(local_items, procs) if procs > 1 else _inspect_many(local_items)
    reports_of = dict(zip(local_items, local_reports))
    # remote (XRootD, HTTP) files: waiting on the network, threads overlap it
    remote_reports = (inspect_in_threads(remote_items, min(threads, len(remote_items)))
                      if threads > 1 and len(remote_items) > 1 else _inspect_many(remote_items))
    reports_of.update(zip(remote_items, remote_reports))
    reports = [reports_of[(path, tree)] for _, path, tree in todo]
    good: dict = {}
    branches: dict[str, frozenset] = {}
    for (dataset, path, tree), (problem, keys, facts) in zip(todo, reports):
        if problem is None:
            FILE_FACTS[(path, tree)] = facts
            good.setdefault(dataset, {"files": {}, "metadata": fileset[dataset].get("metadata", {})})
            good[dataset]["files"][path] = tree
            branches[path] = keys
        elif skip_bad_files:
            skipped.append({"dataset": dataset, "file": path, "reason": problem})
        else:
            raise BadInputError(f"{path}: {problem} (use --skip-bad-files to skip it)")
    if not good:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped)
        raise BadInputError(f"no readable input file left ({reasons})")
    return InputCheck(good, skipped, branches)


# --------------------------------------------------------------------------- branches

#: generator-level and bookkeeping branches collect needs besides the feature branches
COLLECT_BRANCHES = ("run", "luminosityBlock", "event", "Jet_genJetIdx", "Jet_hadronFlavour", "Jet_partonFlavour",
                    "GenJet_pt", "GenJet_eta", "GenJet_phi")


def required_branches() -> list[str]:
    """Every branch name ``collect`` reads (rho: either spelling, checked separately)."""
    from physics.features import REQUIRED_BRANCHES

    names = list(COLLECT_BRANCHES)
    for coll, fields in REQUIRED_BRANCHES.items():
        names += [f"{coll}_{f}" for f in fields]
    return names


def check_input_branches(fileset: dict, branches: dict[str, frozenset] | None = None) -> None:
    """Raise BadInputError naming the file and the first branch ``collect`` needs that it lacks.

    ``branches``: the branch names ``check_fileset`` found (``InputCheck.branches``); files not in it are opened.
    """
    import uproot

    branches = branches or {}
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            if path in branches:
                keys = branches[path]
            else:
                with uproot.open(path) as f:
                    keys = set(f[tree].keys())
            for name in required_branches():
                if name not in keys:
                    raise BadInputError(f"{path}: missing branch {name} (needed by collect)")
            if "fixedGridRhoFastjetAll" not in keys and "Rho_fixedGridRhoFastjetAll" not in keys:
                raise BadInputError(f"{path}: missing branch fixedGridRhoFastjetAll (or Rho_fixedGridRhoFastjetAll)")
