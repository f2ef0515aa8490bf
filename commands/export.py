"""``runner.py export MODEL.keras --out DIR``: the model as ONNX (dynamic batch/constituent dims) + manifest."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="+", help="saved .keras model(s): jet models or the electron model")
    parser.add_argument("--out", default=None, help="output folder (default: next to each model)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: models.export.OPSET)")


def main(args: argparse.Namespace) -> int:
    import warnings

    from models.export import OPSET, export_model

    for model in args.model:
        out_dir = Path(args.out) if args.out else Path(model).parent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = export_model(model, out_dir, opset=args.opset or OPSET)
        print(f"{model} -> {path} (+ manifest; run it with --model NAME={path})")
    return 0
