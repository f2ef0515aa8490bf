"""``runner.py plot OUTPUT``: the figures of an output file (``results.plotting``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import BadInputError
from inputs.output import load_output
from results.plotting import make_plots


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="a .coffea (or its pickle-free .uhi.json) file written by runner.py run")
    parser.add_argument("--out", default=None, help="figure folder (default: next to the output, <name>_plots)")
    parser.add_argument("--baseline", default="L1L2", help="correction the ratio panels divide by")


def check_plottable(out: dict, path: str) -> None:
    """One line naming the file when its histograms are missing or of the wrong type."""
    import hist

    found = {k: out[k] for k in ("response", "reco_pt") if k in out}
    if not found:
        raise BadInputError(f"{path}: no 'response' or 'reco_pt' histogram to plot (keys: {sorted(map(str, out))[:8]})")
    for key, value in found.items():
        if not isinstance(value, hist.Hist) or "correction" not in value.axes.name:
            raise BadInputError(f"{path}: '{key}' is a {type(value).__name__}, not a caliber histogram "
                                "(is this a runner.py run output?)")


def main(args: argparse.Namespace) -> int:
    out = load_output(args.output)
    check_plottable(out, args.output)
    folder = Path(args.out) if args.out else Path(args.output).with_suffix("").parent / (Path(args.output).stem + "_plots")
    written = make_plots(out, folder, args.baseline)
    print(f"wrote {len(written)} figures ({len(written) // 2} PNG + PDF) to {folder}")
    return 0
