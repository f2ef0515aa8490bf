"""The input pre-check at scale: N copies of one small file, checked one after the other and in parallel.

Times ``inputs.fileset.check_fileset`` with one thread (the old, serial client-side check) and with
``--threads``, then collect's branch check (``check_input_branches``) opening every file again (old)
and reusing the names the pre-check found (new). Files are hard links (copies where links fail)
of ``--file`` in a temporary folder; each timing is the best of ``--repeat``.
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


def best(fn, repeat: int) -> float:
    """Best wall time (s) of ``repeat`` calls."""
    times = []
    for _ in range(max(1, repeat)):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", default=None, help="a small NanoAOD file (default: the real CMS NanoAOD DY test file)")
    parser.add_argument("--files", type=int, default=200, help="how many copies")
    parser.add_argument("--threads", type=int, default=None, help="parallel checks (default: PREFLIGHT_THREADS)")
    parser.add_argument("--repeat", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    from core.errors import BadInputError
    from inputs.fileset import PREFLIGHT_THREADS, check_fileset, check_input_branches

    source = args.file or str(Path(os.environ.get("CALIBER_SHARED_DATA", Path(__file__).resolve().parents[2]
                                                   / "shared" / "data")) / "cms" / "nano_dy.root")
    if not Path(source).exists():
        raise BadInputError(f"{source}: file does not exist (give --file)")
    threads = args.threads or PREFLIGHT_THREADS
    with tempfile.TemporaryDirectory(prefix="caliber-preflight-") as tmp:
        paths = make_copies(source, args.files, Path(tmp))
        fileset = {"copies": {"files": {p: "Events" for p in paths}, "metadata": {}}}
        check_fileset(fileset, False, threads=1)  # warm the page cache: both timings read from memory
        serial = best(lambda: check_fileset(fileset, False, threads=1), args.repeat)
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
    print(f"pre-check of {args.files} copies of {Path(source).name} ({Path(source).stat().st_size / 1e6:.1f} MB), "
          f"os.cpu_count() = {os.cpu_count()}")
    print(f"  check_fileset, serial (1 thread)      {serial:7.3f} s  ({args.files / serial:7.0f} files/s)")
    print(f"  check_fileset, {threads:2d} threads            {parallel:7.3f} s  ({args.files / parallel:7.0f} files/s)"
          f"  speed-up {serial / parallel:.2f}x")
    print(f"  collect branch check, files reopened  {again:7.3f} s")
    print(f"  collect branch check, names reused    {reused:7.3f} s")
    print(f"  collect pre-flight total: before {serial + again:.3f} s, after {parallel + reused:.3f} s "
          f"({(serial + again) / (parallel + reused):.1f}x)")
    return 0
