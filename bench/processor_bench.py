"""Processor throughput as a ratio to a bare uproot read of the same columns, in one run.

For each configuration (baseline only, baseline + each model) the jet response
processor runs on one core (iterative executor) over the fileset; the columns
coffea actually read (from the Runner's metrics) are then read again with bare
uproot from the same files, and the two rates are printed side by side.
Inference alone (features prepared, ``model.predict`` only) is timed in jets/s.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def branches_from_metrics(columns) -> list[str]:
    """coffea's column keys ('Jet_pt-data', 'nJet-offsets') to branch names."""
    out = set()
    for c in columns:
        name, _, kind = c.rpartition("-")
        out.add(name if name else c)
    return sorted(out)


def bare_uproot_read(fileset: dict, branches: list[str]) -> tuple[int, float]:
    """(events, seconds) to read ``branches`` from every file of the fileset with uproot."""
    import uproot

    start = time.perf_counter()
    n = 0
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            with uproot.open(path) as f:
                t = f[tree]
                present = [b for b in branches if b in t]
                t.arrays(present, library="ak")
                n += t.num_entries
    return n, time.perf_counter() - start


def time_processor(fileset: dict, proc, chunksize: int) -> tuple[int, float, list[str]]:
    """(events, seconds, branches read) of one iterative run."""
    from execution.runner import run_processor

    start = time.perf_counter()
    out, metrics = run_processor(fileset, proc, executor="iterative", workers=1, chunksize=chunksize, status=False,
                                 savemetrics=True)
    seconds = time.perf_counter() - start
    events = sum(c["events"] for c in out["cutflow"].values())
    return events, seconds, branches_from_metrics(metrics.get("columns", []))


def time_inference(fileset: dict, spec, max_events: int = 20000, repeat: int = 3) -> tuple[int, float]:
    """(jets, best seconds) of model prediction alone on the features of the fileset's jets."""
    import warnings

    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from models.inference import predict_log_correction
    from models.correction import cached_model
    from physics.features import jet_features
    from physics.jets import jets_at, select_flat_jets
    from processors.jets import JetResponseProcessor

    path, tree = next(iter(next(iter(fileset.values()))["files"].items()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root({path: tree}, schemaclass=PFNanoAODSchema, mode="eager",
                                            entry_stop=max_events).events()
    proc = JetResponseProcessor()
    jets = jets_at(events, select_flat_jets(events, proc.min_pt_raw, proc.max_abs_eta)[0]["index"])
    features = jet_features(events, jets)
    model = cached_model(spec)
    n = len(features["globals"])
    predict_log_correction(model, features, batch_size=spec.batch_size)  # warm-up
    from models.padding import clear_padded_cache

    best = np.inf
    for _ in range(repeat):
        clear_padded_cache()  # padding counts, as in a processor's first model
        start = time.perf_counter()
        predict_log_correction(model, features, batch_size=spec.batch_size)
        best = min(best, time.perf_counter() - start)
    return n, best


def gpu_seen(specs) -> bool:
    """Whether TensorFlow (.keras models) or ONNX Runtime (.onnx models, CUDA provider) sees a GPU."""
    from models.backends import quiet_native_stderr

    with quiet_native_stderr():  # TensorFlow's C++ start-up lines, as in bench models
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return True
    if any(s.path.endswith(".onnx") for s in specs):
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    return False


def device_scope(default_device: bool):
    """Nothing with ``default_device`` (the GPU where there is one), else TensorFlow pinned to the CPU.
    (ONNX Runtime sessions keep the providers they were made with: their CPU rows run where they run.)"""
    import contextlib

    if default_device:
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.device("/CPU:0")


def add_processor_arguments(parser: argparse.ArgumentParser, chunksize: int = 50_000, chunk_help: str | None = None) -> None:
    """The arguments every processor bench takes: --fileset, --jec, --model NAME=PATH, --chunksize."""
    parser.add_argument("--fileset", nargs="+", required=True)
    parser.add_argument("--jec", default=None)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--chunksize", type=int, default=chunksize, help=chunk_help)


def processor_inputs(args: argparse.Namespace, batch_size: int = 4096) -> tuple[dict, object, list]:
    """(checked fileset, JEC config or None, model specs) of ``add_processor_arguments``' arguments."""
    from inputs.fileset import check_fileset, load_fileset
    from models.correction import ModelSpec
    from physics.jec import JECConfig

    fileset = check_fileset(load_fileset(args.fileset), False).fileset
    jec = JECConfig.from_yaml(args.jec) if args.jec else None
    return fileset, jec, [ModelSpec.from_argument(item, batch_size=batch_size) for item in args.model]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_processor_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=4096,
                        help="jets per padded batch (a Deep Sets model runs flat, in blocks of ~2^19 constituents)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="rounds over every configuration, each run followed by its bare read; the best of each "
                             "counts (robust against other load on the machine, and load drift hits every row alike); "
                             "default: one round per configuration, so each runs once in every position")


def main(args: argparse.Namespace) -> int:
    from processors.jets import JetResponseProcessor

    fileset, jec, specs = processor_inputs(args, batch_size=args.batch_size)
    gpu = gpu_seen(specs)
    configs = [("baseline only", JetResponseProcessor(jec=jec), False)]
    configs += [(f"baseline + {s.name}", JetResponseProcessor(jec=jec, models=[s]), False) for s in specs]
    if len(specs) > 1:  # every model in one processor: the features are built once and shared
        configs.append(("baseline + " + " + ".join(s.name for s in specs), JetResponseProcessor(jec=jec, models=specs),
                        False))
    if gpu:  # the rows above on the CPU (comparable across versions), these on the GPU
        configs += [(f"{label} [GPU]", proc, True) for label, proc, _ in configs[1:]]
    # warm-up: imports, JEC stack and model loading happen once per process, not per chunk; so does growing the
    # memory a chunk of the bench's size needs (kept between chunks, core.memory): each configuration runs once over
    # the first file at the bench's chunk size (with 1000-event chunks the first model row stayed the slower of two
    # identical model rows in every run)
    for _, proc, on_gpu in configs:
        with device_scope(on_gpu or not gpu):
            time_processor({k: v for k, v in list(fileset.items())[:1]}, proc, chunksize=args.chunksize)

    print("processor throughput on one core (iterative executor), inference device: CPU"
          + (" and GPU ([GPU] rows)" if gpu else ""))
    print(f"{'configuration':28s} {'events':>8s} {'proc ev/s':>10s} {'uproot ev/s':>12s} {'ratio':>7s}")
    # every configuration in turn, each run followed by its bare read, ``repeat`` rounds: configurations
    # compared with each other (2 models / 1 model) see the same load drift; the best of each counts. Each round
    # starts one configuration later, so no configuration always runs right after the light baseline (with one
    # order, the first of two identical model rows was the slower in every run)
    best: dict[str, list] = {label: [np.inf, np.inf, 0, 0, []] for label, _, _ in configs}
    for round_ in range(max(1, args.repeat or len(configs))):
        shift = round_ % len(configs)
        for label, proc, on_gpu in configs[shift:] + configs[:shift]:
            with device_scope(on_gpu or not gpu):
                events, t_proc, branches = time_processor(fileset, proc, args.chunksize)
            n_bare, t_read = bare_uproot_read(fileset, branches)
            row = best[label]
            best[label] = [min(row[0], t_proc), min(row[1], t_read), events, n_bare, branches]
    cost: dict[str, float] = {}
    for label, _, _ in configs:
        seconds, t_bare, events, n_bare, branches = best[label]
        rate, bare = events / seconds, n_bare / t_bare
        cost[label] = seconds
        print(f"{label:28s} {events:8d} {rate:10.0f} {bare:12.0f} {rate / bare:7.3f}   ({len(branches)} branches)")
    if len(specs) > 1:
        one = cost[f"baseline + {specs[0].name}"]
        every = cost["baseline + " + " + ".join(s.name for s in specs)]
        print(f"{len(specs)} models in one processor cost {every / one:.2f}x one model (features built once, shared)")
    for s in specs:
        for on_gpu in ((False, True) if gpu else (False,)):
            with device_scope(on_gpu or not gpu):
                n, t = time_inference(fileset, s)
            print(f"inference alone {s.name:12s} {n:8d} jets  {n / t:10.0f} jets/s  (batch {s.batch_size}, "
                  f"{'GPU' if on_gpu else 'CPU'})")
    return 0
