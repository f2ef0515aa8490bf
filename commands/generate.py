"""``runner.py generate``: PFNano-layout QCD samples (Pythia 8 + pileup + detector + FastJet)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from execution.executors import add_executor_arguments

    parser.add_argument("--out", default="cache/samples/generated", help="output directory of the ROOT files")
    parser.add_argument("--events", type=int, default=1000, help="number of events")
    parser.add_argument("--events-per-file", type=int, default=250, help="events per file (one chunk, one seed)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pileup", type=float, default=30.0, help="mean number of pileup interactions")
    parser.add_argument("--process", default="qcd", help="qcd (jets) or zee (Z/gamma* -> ee, see --detector)")
    parser.add_argument("--validate", metavar="OUTDIR", default=None,
                        help="write validation figures (PNG+PDF) of the generated sample to OUTDIR")
    from samples.zee import add_zee_arguments

    add_zee_arguments(parser)
    add_executor_arguments(parser)


#: largest mean pileup accepted: HL-LHC runs at ~200; far beyond, generation would never end
MAX_PILEUP = 300.0


def validate(args) -> None:
    """One-line errors for settings outside their physical range, before any event is generated."""
    import math

    from core.errors import BadInputError

    if not math.isfinite(args.pileup) or not 0 <= args.pileup <= MAX_PILEUP:
        raise BadInputError(f"--pileup must be between 0 and {MAX_PILEUP:g} (mean interactions per crossing), "
                            f"got {args.pileup:g}")
    for flag in ("events", "events_per_file", "workers"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise BadInputError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")


def main(args) -> int:
    validate(args)
    from samples.generate import generate_sample

    if args.process == "zee":
        from samples.zee import generate_zee

        files = generate_zee(args.out, args.events, args.events_per_file, args.seed, args.detector,
                             executor=args.executor, workers=args.workers, ecm=args.ecm,
                             status=not args.no_progress)
        print("\n".join(files))
        return 0
    files = generate_sample(args.out, args.events, args.events_per_file, args.seed, pileup_mean=args.pileup,
                            process=args.process, executor=args.executor, workers=args.workers,
                            status=not getattr(args, "no_progress", False))
    for f in files:
        print(f)
    if args.validate:
        from samples.validate import validation_figures

        for p in validation_figures(files, args.validate):
            print(p)
    return 0
