#!/usr/bin/env python
"""caliber command line: ``runner.py COMMAND [options]``.

Each command lives in its own module, imported only when it is asked for, so
``runner.py plot`` does not pay for importing TensorFlow. A command module
provides ``add_arguments(parser)`` and ``main(args) -> int``.
"""
from __future__ import annotations

import os

# before anything imports TensorFlow (commands import it lazily): no C++/absl/oneDNN start-up lines
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
if __name__ == "__main__" and any(a in ("-v", "--verbose") for a in os.sys.argv[1:]):
    # -v anywhere: keep TensorFlow's start-up lines and the workers' repeated warnings
    os.environ["CALIBER_VERBOSE"] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    os.sys.argv[1:] = [a for a in os.sys.argv[1:] if a not in ("-v", "--verbose")]

import argparse  # noqa: E402
import importlib  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

#: command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("commands.run", "run a processor (jets, electrons) over a fileset and save histograms"),
    "collect": ("commands.collect", "write training shards (parquet) of features and targets"),
    "plot": ("commands.plot", "draw response, resolution and flavour figures from an output file"),
    "report": ("commands.report", "print and write the model-versus-L1L2 metrics of an output file"),
    "generate": ("commands.generate", "generate PFNano-layout samples (Pythia 8 + FastJet + detector)"),
    "derive-jec": ("commands.derive_jec", "derive L1FastJet + L2Relative text files for the detector"),
    "train": ("commands.train", "train a jet (or electron) regression from collected shards"),
    "evaluate-electrons": ("commands.evaluate_electrons",
                           "fit held-out m_ee (BW x CB) and E/E_true before and after electron models"),
    "make-run": ("commands.make_run", "the main job of `make run`: default sample, L1L2 + shipped model, report, plots"),
    "zee-study": ("commands.zee_study", "the Z->ee electron study: label reference, training, truth / fit / closure tables"),
    "bench": ("commands.bench", "benchmarks that print throughput figures"),
    "export": ("commands.export", "export a .keras jet or electron model to ONNX (+ manifest) for CMSSW / Triton / ORT"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported."""
    parser = argparse.ArgumentParser(prog="runner.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    from core.errors import BadInputError

    from core import interrupt

    previous = _sigterm_as_interrupt()
    previous_hook, sys.unraisablehook = sys.unraisablehook, interrupt.lost_interrupt_hook(sys.unraisablehook)
    interrupt.clear()
    try:
        return int(module.main(args) or 0)
    except BadInputError as err:
        print(f"caliber {args.command}: error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    except KeyboardInterrupt:
        print(f"caliber {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt (like Ctrl-C), so both end a run the same clean way.

    Returns the previous handler (None off the main thread, where handlers cannot be set).
    """
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
