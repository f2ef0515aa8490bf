"""Where the jet processor spends its time: cProfile of ``process()`` chunk by chunk.

Each chunk is opened as coffea does (NanoEvents, PFNanoAOD schema, virtual arrays, so the
reading shows up as uproot calls); the first chunk is a warm-up (imports, JEC stack, model
loading, not profiled). Prints the seconds per chunk and the top functions of the whole run,
then the share of a few named steps (reading, JEC, features, inference, histogram filling).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
import warnings

#: named steps: a label and the substrings of 'file:function' that belong to it (cumulative time)
STEPS = {
    "reading (uproot)": ("uproot/",),
    "JEC (jetmet_tools)": ("jetmet_tools/",),
    "features": ("features.py:jet_features",),
    "inference (padding + model)": ("models/backends.py", "models/inference.py", "models/padding.py"),
    "histogram filling": ("hist/basehist.py:fill", "physics/jets.py:add_counts", "physics/jets.py:flow_index",
                          "physics/jets.py:flavour_index"),
}


def chunks(fileset: dict, chunksize: int, max_chunks: int | None) -> list[tuple[str, str, int, int]]:
    """(path, tree, entry_start, entry_stop) of every chunk of the fileset, coffea-like even splits."""
    import uproot

    out = []
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            with uproot.open(path) as f:
                n = f[tree].num_entries
            n_chunks = max(1, round(n / chunksize))
            edges = [round(i * n / n_chunks) for i in range(n_chunks + 1)]
            out += [(path, tree, a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return out[:max_chunks] if max_chunks else out


def open_chunk(path: str, tree: str, start: int, stop: int, dataset: str = "bench", proc=None):
    """The NanoEvents of one chunk, virtual arrays, opened as the Runner opens them for ``proc``
    (``execution.runner.read_options``: memory-mapped local file, the processor's branches only)."""
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from execution.runner import read_options

    options = read_options({dataset: {"files": {path: tree}}}, proc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({path: tree}, schemaclass=PFNanoAODSchema, mode="virtual",
                                           entry_start=start, entry_stop=stop,
                                           metadata={"dataset": dataset, "filename": path},
                                           uproot_options=options.get("uproot_options", {}),
                                           iteritems_options=options.get("iteritems_options", {})).events()


def step_shares(stats: pstats.Stats, total: float) -> dict[str, float]:
    """Cumulative seconds of each named step (its outermost matching functions only)."""
    out = {}
    for label, keys in STEPS.items():
        seconds = 0.0
        for (file, _line, func), (_cc, _nc, _tt, ct, callers) in stats.stats.items():
            name = f"{file}:{func}"
            if not any(k in name for k in keys):
                continue
            # count a function only where no caller belongs to the same step (no double counting)
            if any(any(k in f"{cf}:{cfn}" for k in keys) for (cf, _cl, cfn) in callers):
                continue
            seconds += ct
        out[label] = min(seconds, total)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.processor_bench import add_processor_arguments

    add_processor_arguments(parser)
    parser.add_argument("--max-chunks", type=int, default=None)
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime")
    parser.add_argument("--out", default=None, help="also write the pstats file here (snakeviz, pstats)")


def main(args: argparse.Namespace) -> int:
    from bench.processor_bench import processor_inputs
    from processors.jets import JetResponseProcessor

    fileset, jec, specs = processor_inputs(args)  # a bad input file: one line, before any profiling
    proc = JetResponseProcessor(jec=jec, models=specs)
    todo = chunks(fileset, args.chunksize, args.max_chunks)
    proc.process(open_chunk(*todo[0], proc=proc))  # warm-up: imports, JEC stack, model loading

    profiler = cProfile.Profile()
    total, events = 0.0, 0
    print(f"profile of JetResponseProcessor.process ({len(specs)} model(s), JEC {'on' if jec else 'off'})")
    for path, tree, start, stop in todo:
        chunk = open_chunk(path, tree, start, stop, proc=proc)
        tic = time.perf_counter()
        profiler.enable()
        proc.process(chunk)
        profiler.disable()
        seconds = time.perf_counter() - tic
        total += seconds
        events += stop - start
        print(f"  chunk {path.rsplit('/', 1)[-1]} [{start}, {stop}): {seconds:6.3f} s  ({(stop - start) / seconds:7.0f} ev/s)")
    print(f"total {total:.3f} s for {events} events ({events / max(total, 1e-9):.0f} ev/s, under the profiler)")
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats(args.sort).print_stats(args.top)
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[:20000])
    print("caliber functions by cumulative seconds:")
    ours = [(ct, f"{file.rsplit('/', 2)[-2]}/{file.rsplit('/', 1)[-1]}:{func}", nc)
            for (file, _l, func), (_cc, nc, _tt, ct, _c) in stats.stats.items()
            if "/site-packages/" not in file and "/work/" in file or file.startswith(("processors", "physics", "models"))]
    for ct, name, nc in sorted(ours, reverse=True)[:args.top]:
        print(f"  {ct:7.3f} s  {nc:6d} calls  {name}")
    print("named steps (cumulative seconds, share of process()):")
    for label, seconds in step_shares(stats, total).items():
        print(f"  {label:22s} {seconds:7.3f} s  {100 * seconds / max(total, 1e-9):5.1f} %")
    if args.out:
        stats.dump_stats(args.out)
        print(f"pstats written to {args.out}")
    return 0
