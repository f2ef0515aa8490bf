"""``runner.py plot OUTPUT``: the figures of an output file (``results.plotting``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from inputs.output import load_output
from results.plotting import make_plots


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="a .coffea file written by runner.py run")
    parser.add_argument("--out", default=None, help="figure folder (default: next to the output, <name>_plots)")
    parser.add_argument("--baseline", default="L1L2", help="correction the ratio panels divide by")


def main(args: argparse.Namespace) -> int:
    out = load_output(args.output)
    folder = Path(args.out) if args.out else Path(args.output).with_suffix("").parent / (Path(args.output).stem + "_plots")
    written = make_plots(out, folder, args.baseline)
    print(f"wrote {len(written)} figures ({len(written) // 2} PNG + PDF) to {folder}")
    return 0
