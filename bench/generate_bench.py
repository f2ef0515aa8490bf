"""Generator benchmark: jets per second per core and file size per jet (one core, iterative executor).

Run: ``runner.py bench generate [--events N] [--pileup MU]`` (or ``python bench/generate_bench.py``)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200, help="events to generate (one file, one core)")
    parser.add_argument("--pileup", type=float, default=30.0, help="mean number of pileup interactions")
    parser.add_argument("--seed", type=int, default=3)


def main(args: argparse.Namespace) -> int:
    import uproot

    from samples.generate import generate_sample, pileup_library

    if args.pileup > 0:
        pileup_library(Path(__file__).resolve().parents[1] / "cache" / "pileup")  # built once, not timed
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = generate_sample(tmp, args.events, args.events, seed=args.seed, pileup_mean=args.pileup,
                                executor="iterative", workers=1)
        dt = time.perf_counter() - t0
        n_jets = sum(int(uproot.open(f)["Events"]["nJet"].array(library="np").sum()) for f in files)
        n_bytes = sum(Path(f).stat().st_size for f in files)
    print(f"events: {args.events}  pileup mean: {args.pileup}  wall: {dt:.1f} s (1 core)")
    print(f"events/s/core: {args.events / dt:.1f}")
    print(f"reco jets (pt_raw > 15 GeV): {n_jets}  jets/s/core: {n_jets / dt:.1f}")
    print(f"file size: {n_bytes / 1e6:.2f} MB  bytes/jet: {n_bytes / max(n_jets, 1):.0f}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(_parser)
    raise SystemExit(main(_parser.parse_args()))
