"""``runner.py bench WHAT ...``: benchmarks that print their figures.

- ``processor``: processor events/s (baseline, + each model) over a bare uproot read of the same columns;
- ``models``: training and inference jets/s of Deep Sets and ParticleNet at batch 256 and 4096;
- ``generate``: generated jets/s per core and file size per jet;
- ``per-candidate``: a non-ML per-candidate calibration against L1L2 (is the detector too easy?);
- ``profile``: cProfile of the jet processor chunk by chunk (top functions, share of each step);
- ``scaling``: the same fileset on 1 and 2 dask workers, speed-up printed;
- ``preflight``: the per-file pre-check of many files, serial and in parallel.
Remaining arguments go to the benchmark.
"""
from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "processor": "bench.processor_bench",
    "models": "bench.model_bench",
    "generate": "bench.generate_bench",
    "per-candidate": "bench.per_candidate",
    "profile": "bench.profile_processor",
    "scaling": "bench.scaling",
    "preflight": "bench.preflight",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(BENCHES))
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of that benchmark")


def main(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHES[args.what])
    sub = argparse.ArgumentParser(prog=f"runner.py bench {args.what}", description=module.__doc__.splitlines()[0])
    module.add_arguments(sub)
    return int(module.main(sub.parse_args(args.rest)) or 0)
