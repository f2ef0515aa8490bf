"""The jet processor on 1 and on 2 dask workers (LocalCluster, one thread each), same fileset: speed-up.

Each run goes through ``execution.runner.run_processor`` as ``runner.py run --executor dask`` does.
The cluster's start-up (worker processes, imports, JEC stack and model loading) is measured
separately with a run of one tiny chunk and taken off, so the speed-up is that of the processing;
both the raw and the start-up-corrected figures are printed.
"""
from __future__ import annotations

import argparse
import os
import time


def timed_run(fileset: dict, proc, workers: int, chunksize: int, max_chunks: int | None = None) -> tuple[float, int]:
    """(seconds, events) of one dask run with ``workers`` workers, cluster start-up included."""
    from execution.runner import run_processor

    tic = time.perf_counter()
    out = run_processor(fileset, proc, executor="dask", workers=workers, chunksize=chunksize, max_chunks=max_chunks,
                        status=False)
    seconds = time.perf_counter() - tic
    return seconds, sum(c.get("events", 0) for c in out["cutflow"].values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fileset", nargs="+", required=True)
    parser.add_argument("--jec", default=None)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--chunksize", type=int, default=250, help="events per chunk (several chunks per worker)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])


def main(args: argparse.Namespace) -> int:
    from inputs.fileset import check_fileset, load_fileset
    from models.correction import ModelSpec
    from physics.jec import JECConfig
    from processors.jets import JetResponseProcessor

    fileset = check_fileset(load_fileset(args.fileset), False).fileset
    jec = JECConfig.from_yaml(args.jec) if args.jec else None
    specs = [ModelSpec.from_argument(item) for item in args.model]
    proc = JetResponseProcessor(jec=jec, models=specs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"jet processor ({len(specs)} model(s)) on dask LocalCluster workers, chunksize {args.chunksize}; "
          f"os.cpu_count() = {os.cpu_count()}, load average before: {load:.1f}")
    print(f"{'workers':>7s} {'events':>8s} {'total s':>8s} {'start-up s':>10s} {'processing s':>12s} {'ev/s':>8s}")
    rows = {}
    for n in args.workers:
        startup, _ = timed_run(fileset, proc, n, chunksize=1, max_chunks=1)
        total, events = timed_run(fileset, proc, n, args.chunksize)
        work = total - startup
        rows[n] = (total, work)
        rate = f"{events / work:8.0f}" if work > 0 else "     n/a"
        print(f"{n:7d} {events:8d} {total:8.2f} {startup:10.2f} {work:12.2f} {rate}")
    if 1 in rows:
        for n, (total, work) in rows.items():
            if n != 1:
                proc = (f"{rows[1][1] / work:.2f}x processing" if work > 0 and rows[1][1] > 0
                        else "processing n/a: start-up dominates, give more events")
                print(f"speed-up {n} workers / 1: {proc} ({rows[1][0] / total:.2f}x with start-up)")
    return 0
