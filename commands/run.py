"""``runner.py run``: a processor over a fileset with coffea's Runner, saved with coffea.util.save."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from core.errors import BadInputError
from execution.executors import add_executor_arguments
from execution.runner import run_processor
from inputs.fileset import check_fileset, load_fileset

PROCESSORS = ("jets", "electrons")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fileset", nargs="+", required=True,
                        help="a coffea fileset JSON, or one or more ROOT files (each its own dataset)")
    parser.add_argument("--processor", choices=PROCESSORS, default="jets")
    parser.add_argument("--jec", default=None,
                        help="YAML config of the L1L2 baseline (text files or correctionlib); none: raw only")
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH",
                        help="a trained .keras model to add as a correction row (repeatable)")
    parser.add_argument("--chunksize", type=int, default=50_000, help="events per chunk")
    parser.add_argument("--max-chunks", type=int, default=None, help="at most this many chunks per dataset")
    parser.add_argument("--output", default=None, help="output file (default outputs/<name>.coffea)")
    parser.add_argument("--name", default=None, help="name of the run (default: processor and first dataset)")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip unreadable inputs (and a missing JEC/model) and list them instead of stopping")
    parser.add_argument("--min-pt-raw", type=float, default=10.0, help="raw jet pT cut (GeV)")
    add_executor_arguments(parser)
    try:
        from condor.sites import add_condor_arguments
    except ImportError:
        return
    add_condor_arguments(parser)


def condor_options(args: argparse.Namespace) -> dict:
    """Command-line overrides for the condor executor, when the condor package provides them."""
    if args.executor != "condor":
        return {}
    from condor.sites import condor_options_from_args

    return condor_options_from_args(args)


def _load_jec(args, skipped: list[dict]):
    from physics.jec import JECConfig

    if not args.jec:
        return None
    try:
        return JECConfig.from_yaml(args.jec)
    except BadInputError as err:
        if not args.skip_bad_files:
            raise
        skipped.append({"dataset": "*", "file": args.jec, "reason": f"L1L2 baseline not applied: {err}"})
        return None


def _load_models(args, skipped: list[dict]) -> list:
    if not args.model:
        return []
    from models.correction import ModelSpec

    specs = []
    for item in args.model:
        name, _, path = item.rpartition("=")
        try:
            specs.append(ModelSpec.from_path(path, name=name or None))
        except BadInputError as err:
            if not args.skip_bad_files:
                raise
            skipped.append({"dataset": "*", "file": path, "reason": f"model not applied: {err}"})
    return specs


def build_processor(args, skipped: list[dict]):
    """The processor instance the command line asks for."""
    if args.processor == "jets":
        from processors.jets import JetResponseProcessor

        return JetResponseProcessor(jec=_load_jec(args, skipped), models=_load_models(args, skipped),
                                    min_pt_raw=args.min_pt_raw)
    from processors.electrons import ZeeProcessor

    return ZeeProcessor()


def run_fileset(fileset: dict, proc, *, executor: str = "dask", workers: int = 2, chunksize: int = 50_000,
                max_chunks: int | None = None, skip_bad_files: bool = False, status: bool = True,
                site: str = "generic", condor_opts: dict | None = None,
                gpu_resource: bool = False) -> tuple[dict, dict]:
    """Run ``proc`` over a checked fileset; returns (output, metrics)."""
    return run_processor(fileset, proc, executor=executor, workers=workers, chunksize=chunksize,
                         max_chunks=max_chunks, skip_bad_files=skip_bad_files, status=status, site=site,
                         condor_options=condor_opts, gpu_resource=gpu_resource, savemetrics=True)


def run_electrons(fileset: dict, executor: str = "iterative", workers: int = 1, *, models: list | None = None,
                  kind: str | None = None, chunksize: int = 100_000, max_chunks: int | None = None,
                  skip_bad_files: bool = False, status: bool = False, site: str = "generic",
                  condor_options: dict | None = None) -> dict:
    """Histograms and cutflow of the Z->ee selection over a coffea fileset."""
    from processors.electrons import ZeeProcessor

    return run_processor(fileset, ZeeProcessor(models=models, kind=kind), executor=executor, workers=workers,
                         chunksize=chunksize, max_chunks=max_chunks, skip_bad_files=skip_bad_files, status=status,
                         site=site, condor_options=condor_options)


def default_output(name: str) -> Path:
    return Path("outputs") / f"{name}.coffea"


def print_summary(out: dict, metrics: dict, seconds: float, path: Path, console=None) -> None:
    """One screen: events, jets, chunks, time, rate, anything skipped."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    cutflow = out.get("cutflow", {})
    events = sum(c.get("events", 0) for c in cutflow.values())
    table = Table(title=f"caliber run -> {path}", show_header=True)
    table.add_column("dataset")
    keys = sorted({k for c in cutflow.values() for k in c}, key=lambda k: (k != "events", k))
    for k in keys:
        table.add_column(k, justify="right")
    for ds, c in sorted(cutflow.items()):
        table.add_row(ds, *[str(c.get(k, "")) for k in keys])
    console.print(table)
    chunks = metrics.get("chunks", "?")
    console.print(f"events {events}  chunks {chunks}  time {seconds:.1f} s  "
                  f"rate {events / max(seconds, 1e-9):.0f} events/s")
    if out.get("datasets_without_gen"):
        console.print(f"no generator record (reco-level histograms only): {', '.join(sorted(out['datasets_without_gen']))}")
    skipped = out.get("skipped", [])
    if skipped:
        console.print(f"[bold yellow]skipped {len(skipped)}:[/]")
        for s in skipped:
            console.print(f"  {s['file']}: {s['reason']}")
    else:
        console.print("skipped: nothing")


def main(args: argparse.Namespace) -> int:
    from coffea.util import save

    fileset = load_fileset(args.fileset)
    check = check_fileset(fileset, args.skip_bad_files)
    skipped = list(check.skipped)
    proc = build_processor(args, skipped)
    start = time.perf_counter()
    out, metrics = run_fileset(check.fileset, proc, executor=args.executor, workers=args.workers,
                               chunksize=args.chunksize, max_chunks=args.max_chunks,
                               skip_bad_files=args.skip_bad_files, status=not args.no_progress,
                               site=args.site, condor_opts=condor_options(args), gpu_resource=args.gpu_resource)
    seconds = time.perf_counter() - start
    out["skipped"] = skipped
    name = args.name or f"{args.processor}_{next(iter(fileset))}"
    out["run_info"] = {"name": name, "processor": args.processor, "executor": args.executor,
                       "workers": args.workers, "seconds": seconds,
                       "corrections": list(getattr(proc, "corrections", []))}
    path = Path(args.output) if args.output else default_output(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(out, str(path))
    print_summary(out, metrics, seconds, path)
    return 0
