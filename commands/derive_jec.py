"""``runner.py derive-jec``: derive L1FastJet + L2Relative text files for this detector.

Generates (or takes) the same events with and without pileup, then
``samples.derive_jec.derive_jec`` fits both levels, writes the files and the
closure; this module parses the options and prints.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from execution.executors import add_executor_arguments

    parser.add_argument("--events", type=int, default=20000, help="events to generate (each of PU and noPU)")
    parser.add_argument("--events-per-file", type=int, default=2000, help="events per generated file")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (the same for PU and noPU)")
    parser.add_argument("--pileup", type=float, default=30.0, help="mean pileup of the PU sample")
    parser.add_argument("--process", default="qcd", help="generator process")
    parser.add_argument("--out", default="outputs/jec", help="folder for the text files")
    parser.add_argument("--name", default="Caliber_V6_MC", help="era name, Campaign_Era_MC")
    parser.add_argument("--algorithm", default="AK4PF", help="jet algorithm field of the file names")
    parser.add_argument("--workdir", default="cache/derive_jec", help="where generated samples go")
    parser.add_argument("--fileset-pu", nargs="+", help="existing PU sample (ROOT files or a fileset JSON)")
    parser.add_argument("--fileset-nopu", nargs="+", help="the same events without pileup")
    parser.add_argument("--degree", type=int, default=4, help="L2Relative polynomial degree in log10 pT")
    parser.add_argument("--iterations", type=int, default=4, help="L2 numerical-inversion iterations")
    parser.add_argument("--min-pt-gen", type=float, default=10.0, help="lowest pt_gen (GeV) of the L2 inversion")
    parser.add_argument("--min-efficiency", type=float, default=0.98,
                        help="start the L2 inversion where the gen-jet reconstruction efficiency reaches this "
                             "fraction of its plateau (avoids the reco-threshold bias)")
    add_executor_arguments(parser)


def _paths(specs: list[str]) -> list[str]:
    from inputs.fileset import load_fileset

    fs = load_fileset(specs)
    return [p for entry in fs.values() for p in entry["files"]]


def _generate(args, pileup: float, sub: str) -> list[str]:
    from core.errors import BadInputError

    try:
        from samples.generate import generate_sample
    except ImportError as err:
        raise BadInputError(f"samples/generate.py is not usable ({err}); give --fileset-pu and --fileset-nopu") from None
    outdir = Path(args.workdir) / f"{args.process}_seed{args.seed}_n{args.events}" / sub
    return list(generate_sample(str(outdir), n_events=args.events, events_per_file=args.events_per_file,
                                seed=args.seed, pileup_mean=pileup, process=args.process,
                                executor=args.executor, workers=args.workers))


def main(args) -> int:
    from core.errors import BadInputError
    from samples.derive_jec import derive_jec, format_report

    t0 = time.time()
    if bool(args.fileset_pu) != bool(args.fileset_nopu):
        raise BadInputError("give both --fileset-pu and --fileset-nopu (the same events with and without pileup)")
    if args.fileset_pu:
        files_pu, files_nopu = _paths(args.fileset_pu), _paths(args.fileset_nopu)
    else:
        print(f"generating {args.events} events with pileup {args.pileup} and without (seed {args.seed})")
        files_pu = _generate(args, args.pileup, "pu")
        files_nopu = _generate(args, 0.0, "nopu")
    t_gen = time.time()
    result = derive_jec(files_pu, files_nopu, args.out, args.name, algorithm=args.algorithm, degree=args.degree,
                        iterations=args.iterations, min_pt_gen=args.min_pt_gen, min_efficiency=args.min_efficiency,
                        pileup_mean=args.pileup, seed=args.seed)
    print(format_report(result))
    print(f"wrote {', '.join(result['paths'])}")
    print(f"time: generation {t_gen - t0:.0f} s, derivation {time.time() - t_gen:.0f} s")
    return 0
