"""Executors: local (iterative, futures, dask LocalCluster) and HTCondor behind one function."""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import Iterator

from core.errors import BadInputError

EXECUTORS = ("iterative", "futures", "dask", "condor")
#: dask/condor: times a failed task is tried again (a lost worker, a preempted job); a chunk that
#: fails deterministically is turned into one line or a listed skip by execution.runner, so it
#: costs at most this many extra attempts, never an endless loop
TASK_RETRIES = 2
#: iterative/futures run on this machine: nothing to be preempted, a failure is deterministic
LOCAL_RETRIES = 0


def add_executor_arguments(parser: argparse.ArgumentParser, default_workers: int = 2) -> None:
    """The options every chunked command shares (run, collect, generate)."""
    g = parser.add_argument_group("execution")
    g.add_argument("--executor", choices=EXECUTORS, default="dask",
                   help="iterative (one process), futures (process pool), dask (distributed.LocalCluster), "
                        "condor (dask-jobqueue HTCondorCluster)")
    g.add_argument("--workers", type=int, default=default_workers, help="processes / dask workers / condor jobs")
    g.add_argument("--site", default="generic", help="condor site preset (condor/sites/*.yaml) or a YAML path")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--gpu-resource", action="store_true",
                   help="dask/condor: workers declare the resource GPU=1 and chunks ask for it, so inference "
                        "lands on GPU workers (each worker then runs one chunk at a time)")


def _worker_setup() -> None:
    """Keep each worker to one thread of BLAS / TensorFlow so workers do not fight."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no TensorFlow / absl / oneDNN start-up lines
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if os.environ.get("CALIBER_VERBOSE") != "1":  # runner.py -v shows the workers' warnings
        # NanoAOD schema notes (missing cross-references, ...) repeated by every worker for every chunk
        os.environ.setdefault("PYTHONWARNINGS", "ignore::RuntimeWarning,ignore::UserWarning,ignore::FutureWarning")


def _task_resources(gpu: bool):
    """A dask annotation asking for one GPU per task, or nothing."""
    import dask

    return dask.annotate(resources={"GPU": 1}) if gpu else contextlib.nullcontext()


@functools.lru_cache(maxsize=1)
def _quiet_iterative():
    """The class below, made on first use (importing this module does not import coffea)."""
    from coffea import processor
    from coffea.processor.accumulator import accumulate

    class QuietIterativeExecutor(processor.IterativeExecutor):
        """coffea's IterativeExecutor without its progress display when ``status`` is off: coffea starts
        (and at the end prints) a rich live display even for a hidden bar, ~5 ms per chunk."""

        def __call__(self, items, function, accumulator):
            if self.status:
                return super().__call__(items, function, accumulator)
            if len(items) == 0:
                return accumulator
            return accumulate(map(function, items), accumulator), 0

    return QuietIterativeExecutor


@contextlib.contextmanager
def make_executor(name: str, workers: int = 2, *, status: bool = True, desc: str = "Processing",
                  unit: str = "chunk", site: str = "generic", gpu_resource: bool = False,
                  condor_options: dict | None = None) -> Iterator:
    """A coffea executor by name; the dask/condor cluster lives as long as the context.

    The executor is callable as ``executor(items, function, accumulator)`` (coffea's
    executor interface), which is how ``generate`` runs seeds, and is what
    ``coffea.processor.Runner`` takes for ``run`` and ``collect``.
    """
    from coffea import processor

    if workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    if name == "iterative":
        yield (processor.IterativeExecutor if status else _quiet_iterative())(
            status=status, desc=desc, unit=unit, retries=LOCAL_RETRIES)
    elif name == "futures":
        yield processor.FuturesExecutor(workers=workers, status=status, desc=desc, unit=unit, retries=LOCAL_RETRIES)
    elif name == "dask":
        from distributed import Client, LocalCluster

        _worker_setup()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", resources={"GPU": 1} if gpu_resource else None)
        client = Client(cluster)
        try:
            with _task_resources(gpu_resource):
                yield processor.DaskExecutor(client=client, status=status, desc=desc, unit=unit,
                                             treereduction=4, retries=TASK_RETRIES)
        finally:
            client.close()
            cluster.close()
    elif name == "condor":
        from condor.cluster import condor_client

        # gpu_resource: the jobs request a GPU and their workers carry the dask resource GPU=1
        with condor_client(workers=workers, site=site, gpu=gpu_resource, **(condor_options or {})) as client:
            with _task_resources(gpu_resource):
                yield processor.DaskExecutor(client=client, status=status, desc=desc, unit=unit,
                                             treereduction=4, retries=TASK_RETRIES)
    else:
        raise BadInputError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
