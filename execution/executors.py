"""Executors: local (iterative, futures, dask LocalCluster) and HTCondor behind one function."""
from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from core.errors import BadInputError

EXECUTORS = ("iterative", "futures", "dask", "condor")


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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _task_resources(gpu: bool):
    """A dask annotation asking for one GPU per task, or nothing."""
    import dask

    return dask.annotate(resources={"GPU": 1}) if gpu else contextlib.nullcontext()


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
        yield processor.IterativeExecutor(status=status, desc=desc, unit=unit)
    elif name == "futures":
        yield processor.FuturesExecutor(workers=workers, status=status, desc=desc, unit=unit)
    elif name == "dask":
        from distributed import Client, LocalCluster

        _worker_setup()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, resources={"GPU": 1} if gpu_resource else None)
        client = Client(cluster)
        try:
            with _task_resources(gpu_resource):
                yield processor.DaskExecutor(client=client, status=status, desc=desc, unit=unit,
                                             treereduction=4, retries=0)
        finally:
            client.close()
            cluster.close()
    elif name == "condor":
        from condor.cluster import condor_client

        # gpu_resource: the jobs request a GPU and their workers carry the dask resource GPU=1
        with condor_client(workers=workers, site=site, gpu=gpu_resource, **(condor_options or {})) as client:
            with _task_resources(gpu_resource):
                yield processor.DaskExecutor(client=client, status=status, desc=desc, unit=unit,
                                             treereduction=4, retries=0)
    else:
        raise BadInputError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
