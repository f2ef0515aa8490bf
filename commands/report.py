"""``runner.py report OUTPUT``: print and write the model-versus-L1L2 metrics (``results.report``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from inputs.output import load_output
from results.report import build_report, to_markdown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="a .coffea (or its pickle-free .uhi.json) file written by runner.py run")
    parser.add_argument("--out", default=None, help="folder for report.json and report.md (default next to the output)")
    parser.add_argument("--baseline", default="L1L2")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicas for uncertainties")
    parser.add_argument("--pt-min", type=float, default=30.0, help="pooled selection: pt_gen above this (GeV)")
    parser.add_argument("--seed", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    out = load_output(args.output)
    rep = build_report(out, args.baseline, args.bootstrap, args.pt_min, args.seed)
    folder = Path(args.out) if args.out else Path(args.output).parent / (Path(args.output).stem + "_report")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(rep, indent=1, default=float))
    md = to_markdown(rep)
    (folder / "report.md").write_text(md)
    print(md)
    untrusted = [c for c, t in rep.get("trust", {}).items() if not t["trusted"]]
    if untrusted:
        print(f"NOT TO BE TRUSTED on these jets (out of domain / clipped / non-finite, see 'Trust'): "
              f"{', '.join(untrusted)}")
    print(f"wrote {folder / 'report.json'} and {folder / 'report.md'}")
    return 0
