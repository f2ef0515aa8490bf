"""The jet processor on 1 and on 2 dask workers (LocalCluster, one thread each), same fileset: speed-up.

Each run goes through ``execution.runner.run_processor`` as ``runner.py run --executor dask`` does.
Three figures per worker count: the whole run (cluster start-up included); the processing, the
wall time of the chunks alone (``processing_seconds``: no cluster start-up, no preprocessing);
and that processing less each worker's first-chunk warm-up (imports, JEC stack, model loading),
measured as the processing of a run of one one-event chunk per worker. The speed-up is printed
on the last, on the processing, and on the whole run. The load average is printed before and
after: other jobs on the machine take the cores the second worker needs.
"""
from __future__ import annotations

import argparse
import os
import time


def timed_run(fileset: dict, proc, workers: int, chunksize: int,
              max_chunks: int | None = None) -> tuple[float, float, int, float]:
    """(seconds in all, seconds of processing the chunks, events, CPU seconds of the workers) of one dask
    run with ``workers`` workers."""
    from execution.runner import run_processor

    tic, cpu = time.perf_counter(), children_cpu()
    out, metrics = run_processor(fileset, proc, executor="dask", workers=workers, chunksize=chunksize,
                                 max_chunks=max_chunks, status=False, savemetrics=True)
    seconds = time.perf_counter() - tic
    processing = float(metrics.get("processing_seconds", seconds)) if isinstance(metrics, dict) else seconds
    return seconds, processing, sum(c.get("events", 0) for c in out["cutflow"].values()), children_cpu() - cpu


def children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the dask workers, once their cluster closed)."""
    t = os.times()
    return t.children_user + t.children_system


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.processor_bench import add_processor_arguments

    add_processor_arguments(parser, 250, "events per chunk (several chunks per worker)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])


def main(args: argparse.Namespace) -> int:
    from bench.processor_bench import processor_inputs
    from processors.jets import JetResponseProcessor

    fileset, jec, specs = processor_inputs(args)
    proc = JetResponseProcessor(jec=jec, models=specs)
    print(f"jet processor ({len(specs)} model(s)) on dask LocalCluster workers, chunksize {args.chunksize}; "
          f"os.cpu_count() = {os.cpu_count()}, load average before: {load_average():.1f}")
    print(f"{'workers':>7s} {'events':>8s} {'total s':>8s} {'start-up s':>10s} {'processing s':>12s} "
          f"{'warm-up s':>9s} {'net s':>7s} {'net ev/s':>9s} {'cores used':>10s}")
    rows = {}
    for n in args.workers:
        _, warm, _, _ = timed_run(fileset, proc, n, chunksize=1, max_chunks=n)  # one one-event chunk per worker
        total, processing, events, cpu = timed_run(fileset, proc, n, args.chunksize)
        net = processing - warm
        rows[n] = (total, processing, net)
        rate = f"{events / net:9.0f}" if net > 0 else "      n/a"
        print(f"{n:7d} {events:8d} {total:8.2f} {total - processing:10.2f} {processing:12.2f} {warm:9.2f} "
              f"{net:7.2f} {rate} {cpu / total:10.2f}")
    print(f"load average after: {load_average():.1f}; cores used = the workers' CPU seconds / the whole run's "
          f"wall time (what the other jobs on the machine left them)")
    if 1 in rows:
        for n, (total, processing, net) in rows.items():
            if n == 1:
                continue
            net_ratio = (f"{rows[1][2] / net:.2f}x processing without warm-up" if net > 0 and rows[1][2] > 0
                         else "n/a without warm-up: warm-up dominates, give more events")
            print(f"speed-up {n} workers / 1: {net_ratio}, {rows[1][1] / processing:.2f}x processing, "
                  f"{rows[1][0] / total:.2f}x whole run")
    return 0
