"""``runner.py collect``: training shards (parquet) of jet features and targets, or of Z->ee electrons.

The shards are written by ``processors.collect.CollectProcessor`` (one per chunk) and
``inputs.shards.finalize`` (normalisation, flat weights, manifest).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from core.errors import BadInputError
from execution.executors import add_executor_arguments
from execution.runner import run_processor
from inputs.fileset import check_fileset, check_input_branches, load_fileset
from inputs.shards import DEFAULT_FRACTIONS, MANIFEST, empty_output, event_split, finalize, prepare_out_dir, shard_name, write_shard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fileset", nargs="+", required=True,
                        help="a coffea fileset JSON, or one or more PFNano ROOT files (each its own dataset)")
    parser.add_argument("--out", required=True,
                        help="output directory of the shards and manifest.json (on a filesystem every worker "
                             "sees, for the condor executor)")
    parser.add_argument("--processor", choices=("jets", "electrons"), default="jets",
                        help="jets: jet features + log(pt_gen/pt_raw); electrons: Z->ee electron features, "
                             "mass-constraint labels and (in MC) true energies")
    parser.add_argument("--kind", choices=("mc", "data"), default=None,
                        help="electrons: what the files are (default: mc where a generator record exists)")
    parser.add_argument("--format", choices=("pfnano", "mljec"), default="pfnano",
                        help="pfnano: NanoEvents through the executor; mljec: ml-jec-vars files (tree Jets), "
                             "one shard per file, in this process")
    parser.add_argument("--chunksize", type=int, default=10_000,
                        help="events per chunk (= per shard); PFNano with every PF candidate of the event "
                             "takes about 0.2 GB of memory per 1000 events")
    parser.add_argument("--max-chunks", type=int, default=None, help="at most this many chunks per dataset")
    parser.add_argument("--min-pt-raw", type=float, default=15.0, help="raw jet pT cut (GeV)")
    parser.add_argument("--max-abs-eta", type=float, default=4.7, help="jet |eta| cut")
    parser.add_argument("--max-dr", type=float, default=0.2, help="gen-match distance")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=list(DEFAULT_FRACTIONS),
                        metavar=("TRAIN", "VALIDATION", "TEST"))
    parser.add_argument("--flat-min-count", type=float, default=10.0,
                        help="flat weights use 1/max(count, this) per (pt_gen, |eta_gen|) bin")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing collection in --out (its listed shards are removed)")
    parser.add_argument("--skip-bad-files", action="store_true", help="skip unreadable inputs instead of stopping")
    parser.add_argument("--checkpoint", default=None, metavar="DIR",
                        help="keep each finished chunk in DIR; the same command after a kill resumes from it")
    add_executor_arguments(parser)
    try:
        from condor.sites import add_condor_arguments
    except ImportError:
        return
    add_condor_arguments(parser)


def collect(fileset: dict, out_dir: str | Path, *, executor: str = "iterative", workers: int = 1,
            chunksize: int = 10_000, max_chunks: int | None = None, min_pt_raw: float = 15.0,
            max_abs_eta: float = 4.7, max_dr: float = 0.2,
            fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, flat_min_count: float = 10.0,
            skip_bad_files: bool = False, status: bool = False, site: str = "generic",
            condor_opts: dict | None = None, overwrite: bool = False, checkpoint: str | None = None) -> dict:
    """Run the collection over a fileset and write the shards and manifest; returns the manifest.

    ``checkpoint``: directory keeping each finished chunk (its shard stays in ``out_dir``).
    """
    from processors.collect import CollectProcessor

    if not fileset or not any(entry.get("files") for entry in fileset.values()):
        raise BadInputError("empty fileset: no dataset lists an input file")
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise BadInputError(f"--split-fractions must be non-negative and sum to 1, got {list(fractions)}")
    checked = check_fileset(fileset, skip_bad_files)
    check_input_branches(checked.fileset, checked.branches)  # the names the pre-check found: no second opening
    out_dir = Path(out_dir).resolve()
    prepare_out_dir(out_dir, overwrite)
    proc = CollectProcessor(str(out_dir), min_pt_raw=min_pt_raw, max_abs_eta=max_abs_eta, max_dr=max_dr,
                            fractions=fractions)
    output = run_processor(checked.fileset, proc, executor=executor, workers=workers, chunksize=chunksize,
                           max_chunks=max_chunks, skip_bad_files=skip_bad_files, status=status, desc="Collecting",
                           site=site, condor_options=condor_opts, checkpoint=checkpoint,
                           checkpoint_key=str([str(out_dir), min_pt_raw, max_abs_eta, max_dr, list(fractions)]))
    if not output or "shards" not in output:
        output = proc.empty_output("none")
    return finalize(out_dir, output, fractions=tuple(fractions), min_count=flat_min_count,
                    extra={"skipped_files": checked.skipped})


def collect_mljec(paths: list[str], out_dir: str | Path, *, min_pt_raw: float = 15.0, max_abs_eta: float = 4.7,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, flat_min_count: float = 10.0,
                  overwrite: bool = False) -> dict:
    """Shards from ml-jec-vars files (``read_mljec``), one per file, in this process; returns the manifest.

    The format has no event id: ``run`` is 0, ``luminosityBlock`` the CRC-32 of the file name and
    ``event`` the entry number, and the split is the same hash of these. Its jets are all
    gen-matched; weight_natural is 1.
    """
    import zlib

    from coffea.processor import accumulate

    from physics.features import read_mljec

    if not paths:
        raise BadInputError("empty fileset: no ml-jec-vars file given")
    out_dir = Path(out_dir).resolve()
    prepare_out_dir(out_dir, overwrite)
    outputs = []
    for path in paths:
        feats, info = read_mljec(str(path))
        keep = (info["pt_raw"] > min_pt_raw) & (np.abs(info["eta"]) < max_abs_eta) & (info["pt_gen"] > 0)
        entry = np.nonzero(keep)[0].astype(np.int64)
        lumi = np.full(len(entry), zlib.crc32(Path(path).name.encode()), dtype=np.int64)
        run = np.zeros(len(entry), dtype=np.int64)
        dataset = Path(path).name.removesuffix(".root")
        out = empty_output(dataset)
        out["cutflow"][dataset] = {"jets": len(keep), "jets_selected": len(entry)}
        if len(entry):
            columns = {k: info[k][keep] for k in ("pt_raw", "pt_gen", "eta", "eta_gen", "phi", "flavour")}
            columns.update(weight_natural=np.ones(len(entry), dtype=np.float32), run=run, luminosityBlock=lumi,
                           event=entry, split=event_split(run, lumi, entry, fractions))
            name = shard_name(dataset, str(path), 0, len(keep))
            write_shard(out_dir / name, columns, {k: v[keep] for k, v in feats.items()}, out)
        outputs.append(out)
    return finalize(out_dir, accumulate(outputs), fractions=tuple(fractions), min_count=flat_min_count,
                    extra={"input_format": "ml-jec-vars"})


def validate(args: argparse.Namespace) -> None:
    """One-line errors for settings that cannot work, before any file is read."""
    from execution.runner import validate_sizes

    validate_sizes(args.chunksize, args.max_chunks, args.workers)
    fractions = list(args.split_fractions)
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise BadInputError(f"--split-fractions must be non-negative and sum to 1, got {fractions} "
                            f"(sum {sum(fractions):g})")


def main(args: argparse.Namespace) -> int:
    validate(args)
    condor_opts = {}
    if args.executor == "condor":
        from condor.sites import condor_options_from_args

        condor_opts = condor_options_from_args(args)
    if args.processor == "jets" and args.format == "mljec":
        tic = time.time()
        paths = list(args.fileset)
        if len(paths) == 1 and paths[0].endswith(".json"):
            paths = [f for entry in load_fileset(paths, treename="Jets").values() for f in entry["files"]]
        manifest = collect_mljec(paths, args.out, min_pt_raw=args.min_pt_raw, max_abs_eta=args.max_abs_eta,
                                 fractions=tuple(args.split_fractions), flat_min_count=args.flat_min_count,
                                 overwrite=args.overwrite)
        _print_summary(manifest, args.out, time.time() - tic)
        return 0
    fileset = load_fileset(args.fileset)
    if not fileset or not any(entry.get("files") for entry in fileset.values()):
        raise BadInputError(f"{' '.join(args.fileset)}: empty fileset (no dataset lists an input file)")
    if args.processor == "electrons":
        return _collect_electrons(args, fileset, condor_opts)
    tic = time.time()
    manifest = collect(fileset, args.out, executor=args.executor, workers=args.workers, chunksize=args.chunksize,
                       max_chunks=args.max_chunks, min_pt_raw=args.min_pt_raw, max_abs_eta=args.max_abs_eta,
                       max_dr=args.max_dr, fractions=tuple(args.split_fractions),
                       flat_min_count=args.flat_min_count, skip_bad_files=args.skip_bad_files,
                       status=not args.no_progress, site=args.site, condor_opts=condor_opts,
                       overwrite=args.overwrite, checkpoint=args.checkpoint)
    _print_summary(manifest, args.out, time.time() - tic)
    return 0


def _collect_electrons(args: argparse.Namespace, fileset: dict, condor_opts: dict) -> int:
    """``collect --processor electrons``: parquet shards of the selected Z->ee electrons."""
    from rich.console import Console

    checked = check_fileset(fileset, args.skip_bad_files)
    tic = time.time()
    out = collect_electrons(checked.fileset, args.out, executor=args.executor, workers=args.workers,
                            kind=args.kind, chunksize=args.chunksize, max_chunks=args.max_chunks,
                            skip_bad_files=args.skip_bad_files, status=not args.no_progress, site=args.site,
                            condor_options=condor_opts)
    console = Console()
    console.print(f"caliber collect --processor electrons -> {args.out}: {len(out.get('shards', []))} shards "
                  f"in {time.time() - tic:.1f} s")
    for dataset, flow in sorted(out.get("cutflow", {}).items()):
        console.print(f"  {dataset}: " + ", ".join(f"{k} {v}" for k, v in flow.items()))
    for item in checked.skipped:
        console.print(f"  skipped {item['file']}: {item['reason']}")
    for w in sorted(out.get("warnings", ())):
        console.print(f"  warning: {w}")
    return 0


def _print_summary(manifest: dict, out: str, seconds: float) -> None:
    from rich.console import Console

    n = manifest["n_jets"]
    total = sum(n.values())
    console = Console()
    console.print(f"caliber collect -> {Path(out) / MANIFEST}")
    console.print(f"  shards: {len(manifest['shards'])}   jets: {total} "
                  f"(train {n['train']}, validation {n['validation']}, test {n['test']})   "
                  f"time: {seconds:.1f} s ({total / max(seconds, 1e-9):.0f} jets/s)")
    console.print(f"  max constituents: {manifest['max_constituents']}")
    for item in manifest.get("skipped_files", []):
        console.print(f"  skipped {item['file']}: {item['reason']}")
    if total == 0:
        console.print("  warning: no gen-matched jet passed the cuts")


def collect_electrons(fileset: dict, out: str | Path, executor: str = "iterative", workers: int = 1, *,
                      kind: str | None = None, chunksize: int = 100_000, max_chunks: int | None = None,
                      skip_bad_files: bool = False, status: bool = False, site: str = "generic",
                      condor_options: dict | None = None) -> dict:
    """Write parquet shards of selected Z->ee electrons to ``out``; returns the processor output
    (with ``shards``: the written files, and the cutflow)."""
    from processors.electrons import ZeeProcessor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return run_processor(fileset, ZeeProcessor(collect_dir=str(out.resolve()), kind=kind), executor=executor,
                         workers=workers, chunksize=chunksize, max_chunks=max_chunks, skip_bad_files=skip_bad_files,
                         status=status, desc="Collecting", site=site, condor_options=condor_options)
