"""Generator benchmark: jets per second per core and file size per jet (one core, iterative executor).

Run: ``.venv/bin/python bench/generate_bench.py [--events N] [--pileup MU]``
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    import uproot

    from samples.generate import generate_sample, pileup_library

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--pileup", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args(argv)
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
    raise SystemExit(main())
