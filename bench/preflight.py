"""The input pre-check at scale: N small files, checked one after the other and in parallel.

Times ``inputs.fileset.check_fileset`` with one thread (the old, serial client-side check), with
``--threads`` (threads hold uproot's GIL-bound TTree reading: no gain on local files) and as it runs
by default (local files in one worker process per core), then collect's branch check (``check_input_branches``) opening every file again (old)
and reusing the names the pre-check found (new), then coffea's preprocessing (entries and uuid of
each file) opening every file again (old) and taking them from the pre-check (new). The files, in a temporary folder, are either
hard links (copies where links fail) of ``--file``, or with ``--slices-of`` distinct small files:
consecutive slices of ``--events-per-file`` events of a generated PFNano file, written with uproot
(``samples.writer``). Each timing is the best of ``--repeat``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def make_copies(source: str, n: int, folder: Path) -> list[str]:
    """``n`` distinct file names for the same content (hard links, or copies across filesystems)."""
    paths = []
    for i in range(n):
        target = folder / f"copy_{i:04d}.root"
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        paths.append(str(target))
    return paths


def write_slices(source: str, n: int, events_per_file: int, folder: Path) -> list[str]:
    """``n`` small PFNano files, each ``events_per_file`` consecutive events of ``source`` (wrapping around)."""
    import awkward as ak
    import uproot

    from samples.writer import write_events

    with uproot.open(source) as f:
        tree = f["Events"]
        total = tree.num_entries
        keys = list(tree.keys())
        events = tree.arrays(keys, library="ak")
    collections = {k[1:] for k in keys if k.startswith("n") and any(b.startswith(k[1:] + "_") for b in keys)}
    members = {c: [b for b in keys if b.startswith(c + "_")] for c in collections}
    scalars = [b for b in keys if b not in {f"n{c}" for c in collections} and not any(b in m for m in members.values())]
    per_file = max(1, min(events_per_file, total))
    paths = []
    for i in range(n):
        start = (i * per_file) % max(1, total - per_file + 1)
        part = events[start:start + per_file]
        cols = {c: {"counts": ak.to_numpy(part[f"n{c}"]),
                    **{b[len(c) + 1:]: ak.to_numpy(ak.flatten(part[b])) for b in members[c]}} for c in collections}
        target = folder / f"slice_{i:04d}.root"
        write_events(target, {b: ak.to_numpy(part[b]) for b in scalars}, cols)
        paths.append(str(target))
    return paths


def coffea_preprocess(fileset: dict, reuse_check: bool) -> int:
    """Chunks of coffea's preprocessing with a fresh metadata cache (``execution.runner.preprocess_only``)."""
    from execution.runner import preprocess_only

    return len(preprocess_only(fileset, reuse_check))


def best(fn, repeat: int) -> float:
    """Best wall time (s) of ``repeat`` calls."""
    times = []
    for _ in range(max(1, repeat)):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)


def threaded_check(fileset: dict, threads: int) -> list:
    """The previous default on local files: ``inspect_file`` of every file, ``threads`` at a time (what
    ``check_fileset`` still does for remote files)."""
    from inputs.fileset import inspect_in_threads

    return inspect_in_threads([(path, tree) for entry in fileset.values() for path, tree in entry["files"].items()],
                              threads)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", default=None, help="a small NanoAOD file (default: the real CMS NanoAOD DY test file)")
    parser.add_argument("--files", type=int, default=200, help="how many files")
    parser.add_argument("--slices-of", default=None, metavar="FILE",
                        help="write distinct small files, slices of this generated PFNano file, instead of copies")
    parser.add_argument("--events-per-file", type=int, default=5, help="events per slice (--slices-of)")
    parser.add_argument("--threads", type=int, default=None, help="parallel checks (default: PREFLIGHT_THREADS)")
    parser.add_argument("--repeat", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    from bench.scaling import load_average
    from core.errors import BadInputError
    from inputs.fileset import PREFLIGHT_THREADS, check_fileset, check_input_branches, preflight_processes

    source = args.slices_of or args.file or str(Path(os.environ.get("CALIBER_SHARED_DATA", Path(__file__).resolve().parents[2]
                                                   / "shared" / "data")) / "cms" / "nano_dy.root")
    if not Path(source).exists():
        raise BadInputError(f"{source}: file does not exist (give --file)")
    threads = args.threads or PREFLIGHT_THREADS
    with tempfile.TemporaryDirectory(prefix="caliber-preflight-") as tmp:
        tic = time.perf_counter()
        paths = (write_slices(source, args.files, args.events_per_file, Path(tmp)) if args.slices_of
                 else make_copies(source, args.files, Path(tmp)))
        made = time.perf_counter() - tic
        size = sum(Path(p).stat().st_size for p in paths) / len(paths)
        fileset = {"copies": {"files": {p: "Events" for p in paths}, "metadata": {}}}
        check_fileset(fileset, False, threads=1)  # warm the page cache: both timings read from memory
        serial = best(lambda: check_fileset(fileset, False, threads=1, processes=1), args.repeat)
        threaded = best(lambda: threaded_check(fileset, threads), args.repeat)
        in_processes = best(lambda: check_fileset(fileset, False, threads=threads, processes=2), args.repeat)
        parallel = best(lambda: check_fileset(fileset, False, threads=threads), args.repeat)
        checked = check_fileset(fileset, False, threads=threads)

        def reopen():
            try:
                check_input_branches(checked.fileset)
            except BadInputError:
                pass  # a file without collect's branches: the time to find out is what counts

        def reuse():
            try:
                check_input_branches(checked.fileset, checked.branches)
            except BadInputError:
                pass

        again = best(reopen, args.repeat)
        reused = best(reuse, args.repeat)
        pre_again = best(lambda: coffea_preprocess(checked.fileset, False), args.repeat)
        pre_reused = best(lambda: coffea_preprocess(checked.fileset, True), args.repeat)
    what = (f"slices of {args.events_per_file} events of {Path(source).name}" if args.slices_of
            else f"copies of {Path(source).name}")
    load = load_average()
    print(f"pre-check of {args.files} {what} ({size / 1e6:.2f} MB each, made in {made:.1f} s), "
          f"os.cpu_count() = {os.cpu_count()}, load average {load:.1f}")
    print(f"  check_fileset, serial (1 thread)      {serial:7.3f} s  ({args.files / serial:7.0f} files/s)")
    print(f"  check_fileset, {threads:2d} threads (previous default) {threaded:7.3f} s  "
          f"({args.files / threaded:7.0f} files/s)  speed-up {serial / threaded:.2f}x")
    print(f"  check_fileset, 2 worker processes     {in_processes:7.3f} s  ({args.files / in_processes:7.0f} files/s)"
          f"  speed-up {serial / in_processes:.2f}x")
    procs = preflight_processes(args.files)
    where = "in this process" if procs == 1 else f"{procs} processes"
    print(f"  check_fileset, default ({where}) {parallel:7.3f} s  ({args.files / parallel:7.0f} files/s)"
          f"  speed-up {serial / parallel:.2f}x")
    print(f"  collect branch check, files reopened  {again:7.3f} s")
    print(f"  collect branch check, names reused    {reused:7.3f} s")
    print(f"  coffea preprocessing, files reopened  {pre_again:7.3f} s")
    print(f"  coffea preprocessing, check reused    {pre_reused:7.3f} s")
    before, after = threaded + again + pre_again, parallel + reused + pre_reused  # previous default, this one
    print(f"  collect pre-flight total (check + branch check + preprocessing): before {before:.3f} s, "
          f"after {after:.3f} s ({before / after:.1f}x)")
    return 0
