"""``runner.py evaluate-electrons``: held-out m_ee fits (BW x CB) and E/E_true resolution of electron models."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards-mc", default=None, help="MC electron shard directory")
    parser.add_argument("--shards-data", default=None, help="'data' electron shard directory")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="an electron model (repeatable)")
    parser.add_argument("--out", default="outputs/electrons", help="folder of the JSON, table and figures")
    parser.add_argument("--all-pairs", action="store_true",
                        help="the shards are a dedicated held-out sample: use every pair, not the test split")


def main(args: argparse.Namespace) -> int:
    from models.electron import ElectronModelConfig
    from models.electron_evaluation import evaluate
    from models.train_electrons import load_shards

    max_cands = ElectronModelConfig().max_cands
    mc = load_shards(args.shards_mc, max_cands) if args.shards_mc else None
    data = load_shards(args.shards_data, max_cands) if args.shards_data else None
    models = dict(item.split("=", 1) for item in args.model)
    evaluate(models, mc, data, args.out, all_pairs=args.all_pairs)
    return 0
