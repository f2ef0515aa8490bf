"""``runner.py run``: a processor over a fileset with coffea's Runner, saved with coffea.util.save."""
from __future__ import annotations

import argparse
import numbers
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
    parser.add_argument("--no-reference-rows", action="store_true",
                        help="leave out the rows of CMS's own regressions (PNetReg, PNetReg+nu, UParTReg, UParTReg+nu)")
    parser.add_argument("--checkpoint", default=None, metavar="DIR",
                        help="keep each finished chunk in DIR; the same command after a kill resumes from it")
    parser.add_argument("--mode", choices=("virtual", "dask-awkward"), default="virtual",
                        help="virtual: coffea Runner over chunks (virtual arrays); dask-awkward: coffea.dataset_tools "
                             "preprocess + apply_to_fileset on the same cluster (chunks = --chunksize steps)")
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
        from physics.jec import build_jec_stack

        cfg = JECConfig.from_yaml(args.jec)
        build_jec_stack(cfg)  # a corrupt or wrong-era JEC is refused here, before any chunk runs
        return cfg
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
        try:
            specs.append(ModelSpec.from_argument(item))
        except BadInputError as err:
            if not args.skip_bad_files:
                raise
            skipped.append({"dataset": "*", "file": item.rpartition("=")[2], "reason": f"model not applied: {err}"})
    return specs


def build_processor(args, skipped: list[dict]):
    """The processor instance the command line asks for."""
    if args.processor == "jets":
        from processors.jets import JetResponseProcessor

        return JetResponseProcessor(jec=_load_jec(args, skipped), models=_load_models(args, skipped),
                                    min_pt_raw=args.min_pt_raw,
                                    reference_rows=not getattr(args, "no_reference_rows", False),
                                    skip_bad_input=args.skip_bad_files)
    from processors.electrons import ZeeProcessor

    return ZeeProcessor()


def run_fileset(fileset: dict, proc, *, executor: str = "dask", workers: int = 2, chunksize: int = 50_000,
                max_chunks: int | None = None, skip_bad_files: bool = False, status: bool = True,
                site: str = "generic", condor_opts: dict | None = None,
                gpu_resource: bool = False, checkpoint: str | None = None,
                checkpoint_key: str = "") -> tuple[dict, dict]:
    """Run ``proc`` over a checked fileset; returns (output, metrics)."""
    return run_processor(fileset, proc, executor=executor, workers=workers, chunksize=chunksize,
                         max_chunks=max_chunks, skip_bad_files=skip_bad_files, status=status, site=site,
                         condor_options=condor_opts, gpu_resource=gpu_resource, savemetrics=True,
                         checkpoint=checkpoint, checkpoint_key=checkpoint_key)


def run_electrons(fileset: dict, executor: str = "iterative", workers: int = 1, *, models: list | None = None,
                  kind: str | None = None, chunksize: int = 100_000, max_chunks: int | None = None,
                  skip_bad_files: bool = False, status: bool = False, site: str = "generic",
                  condor_options: dict | None = None) -> dict:
    """Histograms and cutflow of the Z->ee selection over a coffea fileset."""
    from processors.electrons import ZeeProcessor

    return run_processor(fileset, ZeeProcessor(models=models, kind=kind), executor=executor, workers=workers,
                         chunksize=chunksize, max_chunks=max_chunks, skip_bad_files=skip_bad_files, status=status,
                         site=site, condor_options=condor_options)


def merge_skipped(*lists: list[dict]) -> list[dict]:
    """One entry per (file, reason), in order: chunks of the same file report the same skip."""
    seen, merged = set(), []
    for entry in (e for lst in lists for e in lst):
        key = (entry.get("file"), entry.get("reason"))
        if key not in seen:
            seen.add(key)
            merged.append(entry)
    return merged


def default_output(name: str) -> Path:
    return Path("outputs") / f"{name}.coffea"


MAX_DATASET_COLUMNS = 6


def cutflow_table(cutflow: dict, title: str):
    """The cutflow as a rich table: one row per counter, one column per dataset, plus their sum when there is more
    than one (the sum alone past ``MAX_DATASET_COLUMNS`` datasets; every dataset stays in ``out["cutflow"]``).
    Counters go down the rows because each model adds four of them: as columns, a few models squeezed every
    header and number to an ellipsis."""
    from rich.table import Table

    datasets = sorted(cutflow)
    keys = sorted({k for c in cutflow.values() for k in c}, key=lambda k: (k != "events", not k.startswith("jets"), k))
    shown = datasets if len(datasets) <= MAX_DATASET_COLUMNS else []
    total = len(datasets) > 1
    table = Table(title=title, show_header=True, min_width=len(title))  # the title (the output path) on one line
    table.add_column("counter")
    for ds in shown:
        table.add_column(ds, justify="right")
    if total:
        table.add_column(f"all {len(datasets)} datasets", justify="right")
    for k in keys:
        row = [str(cutflow[ds].get(k, "")) for ds in shown]
        if total:
            row.append(str(sum(v for ds in datasets if isinstance(v := cutflow[ds].get(k), numbers.Integral))))
        table.add_row(k, *row)
    return table


def print_summary(out: dict, metrics: dict, seconds: float, path: Path, console=None) -> None:
    """One screen: events, jets, chunks, time, rate, anything skipped. Written to a file or a pipe (a batch job's
    log), the console is made as wide as the cutflow table so that nothing in it is cut."""
    from rich.console import Console
    from rich.measure import Measurement

    console = console or Console()
    cutflow = out.get("cutflow", {})
    events = sum(c.get("events", 0) for c in cutflow.values())
    table = cutflow_table(cutflow, f"caliber run -> {path}")
    if not console.is_terminal:
        natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console.width = max(console.width, natural)
    console.print(table)
    chunks = metrics.get("chunks", "?")
    processing = float(metrics.get("processing_seconds", seconds))
    console.print(f"events {events}  chunks {chunks}  time {seconds:.1f} s (start-up {max(seconds - processing, 0):.1f})  "
                  f"rate {events / max(processing, 1e-9):.0f} events/s")
    if out.get("datasets_without_gen"):
        console.print(f"no generator record (reco-level histograms only): {', '.join(sorted(out['datasets_without_gen']))}")
    for ds, row in sorted(out.get("accounting", {}).items()):
        console.print(f"{ds}: events in fileset {row['events_in_fileset']} = processed {row['events_processed']}"
                      f" + in skipped chunks {row['events_skipped']}")
    for c in out.get("skipped_chunks", []):
        console.print(f"[bold yellow]skipped chunk[/] {c['file']} entries {c['entrystart']}-{c['entrystop']} "
                      f"({c['events']} events): {c['reason']}", soft_wrap=True)
    skipped = out.get("skipped", [])
    if skipped:
        console.print(f"[bold yellow]skipped {len(skipped)}:[/]")
        for s in skipped:
            console.print(f"  {s['file']}: {s['reason']}")
    else:
        console.print("skipped: nothing")


def main(args: argparse.Namespace) -> int:
    from execution.runner import validate_sizes
    from inputs.output import OutputLock, check_output_writable, write_output

    validate_sizes(args.chunksize, args.max_chunks, args.workers)
    fileset = load_fileset(args.fileset)
    name = args.name or f"{args.processor}_{next(iter(fileset))}"
    path = check_output_writable(Path(args.output) if args.output else default_output(name))
    with OutputLock(path):
        check = check_fileset(fileset, args.skip_bad_files)
        skipped = list(check.skipped)
        proc = build_processor(args, skipped)
        start = time.perf_counter()
        key = [sorted(args.fileset), args.processor, args.jec, args.model, args.min_pt_raw, args.skip_bad_files,
               getattr(args, "no_reference_rows", False)]
        if getattr(args, "mode", "virtual") == "dask-awkward":
            from execution.dask_awkward import run_dask_awkward

            out, metrics = run_dask_awkward(check.fileset, proc, executor=args.executor, workers=args.workers,
                                            chunksize=args.chunksize, site=args.site,
                                            condor_options=condor_options(args))
        else:
            out, metrics = run_fileset(check.fileset, proc, executor=args.executor, workers=args.workers,
                                       chunksize=args.chunksize, max_chunks=args.max_chunks,
                                       skip_bad_files=args.skip_bad_files, status=not args.no_progress,
                                       site=args.site, condor_opts=condor_options(args),
                                       gpu_resource=args.gpu_resource, checkpoint=args.checkpoint,
                                       checkpoint_key=str(key))
        seconds = time.perf_counter() - start
        out["skipped"] = merge_skipped(skipped, out.get("skipped", []))
        out["run_info"] = {"name": name, "processor": args.processor, "executor": args.executor,
                           "workers": args.workers, "seconds": seconds,
                           "corrections": list(getattr(proc, "corrections", []))}
        write_output(out, path)
        from inputs.hist_io import write_portable

        write_portable(out, path)  # <name>.uhi.json and <name>.root next to the .coffea
    print_summary(out, metrics, seconds, path)
    return 0
