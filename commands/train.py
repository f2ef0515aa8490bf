"""``runner.py train``: a jet regression (Deep Sets / ParticleNet) or, with ``--task electrons``,
the electron regression, from collected shards; ``--submit condor`` writes and submits a GPU job."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.errors import BadInputError
from models.train_electrons import CONFIG_DEFAULT as ELECTRON_CONFIG_DEFAULT, MODES as ELECTRON_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", default=None, help="jet shard directory written by `runner.py collect`")
    parser.add_argument("--config", default="models/configs/deepsets_lite.yaml", help="model config (YAML)")
    parser.add_argument("--out", "--output", dest="out", required=True,
                        help="output DIR/NAME: writes DIR/NAME.keras (+ manifest, config, history)")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--max-jets", type=int, default=None, help="use at most this many training jets")
    parser.add_argument("--batch-size", type=int, default=None, help="override the config's batch size")
    parser.add_argument("--task", choices=("jets", "electrons"), default="jets")
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch lines")
    parser.add_argument("--submit", choices=("condor",), default=None,
                        help="write and submit an HTCondor GPU job running this training (condor/train_job.py)")
    parser.add_argument("--site", default="generic", help="HTCondor site preset (with --submit condor)")
    from condor.sites import add_condor_arguments

    add_condor_arguments(parser)
    add_electron_arguments(parser)


def add_electron_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``runner.py train --task electrons``."""
    g = parser.add_argument_group("electron regression")
    g.add_argument("--mode", choices=ELECTRON_MODES, default="simultaneous",
                   help="mc: MC truth only; data: Z-mass labels on data only; simultaneous: both losses")
    g.add_argument("--shards-mc", default=None, help="directory of MC electron shards (collect --processor electrons)")
    g.add_argument("--shards-data", default=None, help="directory of data electron shards")
    g.add_argument("--electron-config", default=None,
                   help=f"electron model YAML (default {ELECTRON_CONFIG_DEFAULT.relative_to(Path(__file__).resolve().parents[1])})")
    g.add_argument("--w-mc", type=float, default=None, help="override the MC loss weight")
    g.add_argument("--w-data", type=float, default=None, help="override the data loss weight")


def validate(args: argparse.Namespace) -> None:
    """One-line errors for sizes that must be positive, before anything is loaded."""
    for flag in ("epochs", "batch_size", "max_jets"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise BadInputError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")


def main(args: argparse.Namespace) -> int:
    validate(args)
    if getattr(args, "submit", None) == "condor":
        from condor.train_job import submit_from_args
        from models.train import output_paths

        argv = sys.argv[sys.argv.index("train") + 1:] if "train" in sys.argv else []
        shards = [args.shards] if args.shards else [p for p in (args.shards_mc, args.shards_data) if p]
        submit_from_args(args, argv, shards=shards, config=args.config, out=str(output_paths(args.out)["model"]))
        return 0
    from models.backends import quiet_native_stderr

    with quiet_native_stderr():  # TensorFlow's C++ start-up lines (runner.py -v shows them)
        import tensorflow  # noqa: F401
    if args.task == "electrons":
        return train_electron_model(args)
    if not args.shards:
        raise BadInputError("train: --shards DIR is required for --task jets")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from models.config import load_config
    from models.train import output_paths, train

    config = load_config(args.config)
    summary = train(args.shards, config, args.out, epochs=args.epochs, max_jets=args.max_jets,
                    batch_size=args.batch_size, progress=not args.no_progress)
    print(f"saved {summary['model']}  ({summary['epochs_run']} epochs, best {summary['best_epoch']}, "
          f"{summary['train_seconds']:.0f} s)")
    print(f"validation masked MAE: model {summary['val_loss']:.5f}   best constant "
          f"(train median {summary['constant']:+.4f}) {summary['val_loss_constant']:.5f}   "
          f"on {summary['n_validation']} jets")
    return 0


def train_electron_model(args: argparse.Namespace) -> int:
    """``runner.py train --task electrons`` entry point."""
    from models.electron import ElectronModelConfig
    from models.train_electrons import load_shards, train

    # --electron-config wins; a shared --config is used only when it names an electron config
    generic = getattr(args, "config", None)
    cfg_path = getattr(args, "electron_config", None) or (
        generic if generic and Path(generic).name.startswith("electron") else None) or ELECTRON_CONFIG_DEFAULT
    cfg = ElectronModelConfig.from_yaml(cfg_path)
    if getattr(args, "epochs", None):
        cfg.epochs = cfg.max_epochs = args.epochs
    if getattr(args, "w_mc", None) is not None:
        cfg.w_mc = args.w_mc
    if getattr(args, "w_data", None) is not None:
        cfg.w_data = args.w_data
    # data-only mode uses MC shards, when given, only for the reference mass of the labels
    mc = load_shards(args.shards_mc, cfg.max_cands) if args.shards_mc else None
    data = load_shards(args.shards_data, cfg.max_cands) if args.shards_data and args.mode != "mc" else None
    if cfg.steps_per_epoch > 0:  # the default: the Z->ee study's protocol and labels (converged rounds)
        from models.train_zee import train_fair as train
    train(args.mode, mc, data, cfg, args.out)
    return 0
