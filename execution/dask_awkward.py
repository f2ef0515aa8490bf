"""The dask-awkward path: ``coffea.dataset_tools`` (``preprocess`` + ``apply_to_fileset``) on the same cluster.

This is how a coffea user runs a processor without the ``Runner``: the fileset is
preprocessed into steps (``step_size`` = chunk size), ``apply_to_fileset`` builds lazy
dask-awkward events (PFNanoAOD schema) per dataset, and the same processor's
``process()`` runs on each partition's materialised events (our feature builder and
networks work on concrete arrays; ``models.backends`` also accepts dask-awkward arrays
directly). The per-partition outputs are accumulated with ``coffea.processor.accumulate``
in the graph and computed once on the distributed LocalCluster (or HTCondor).
"""
from __future__ import annotations

import warnings

from execution.executors import make_executor


class PartitionProcess:
    """Runs ``proc.process`` on one materialised partition of dask-awkward events (picklable)."""

    def __init__(self, proc, dataset: str):
        self.proc = proc
        self.dataset = dataset

    def __call__(self, events):
        meta = getattr(events, "metadata", None)
        if isinstance(meta, dict):
            meta.setdefault("dataset", self.dataset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.proc.process(events)


def dataset_graph(proc, dataset: str):
    """The function ``apply_to_fileset`` calls with a dataset's dask-awkward events: a delayed output."""
    import dask
    from coffea.processor import accumulate

    def analysis(events):
        parts = events.to_delayed(optimize_graph=False)
        outputs = [dask.delayed(PartitionProcess(proc, dataset))(p) for p in parts]
        return dask.delayed(accumulate)(outputs)

    return analysis


def run_dask_awkward(fileset: dict, proc, *, executor: str = "dask", workers: int = 2, chunksize: int = 50_000,
                     status: bool = True, site: str = "generic", condor_options: dict | None = None,
                     treename: str = "Events") -> tuple[dict, dict]:
    """(accumulated output, metrics) of ``proc`` over a checked fileset through ``apply_to_fileset``."""
    import dask
    from coffea.dataset_tools import apply_to_fileset, preprocess
    from coffea.nanoevents import PFNanoAODSchema
    from coffea.processor import accumulate

    from execution.runner import bad_input_in

    from coffea.dataset_tools import DataGroupSpec

    spec = DataGroupSpec.model_validate(
        {name: {"files": {f: (t if isinstance(t, str) else treename) for f, t in ds["files"].items()},
                "metadata": dict(ds.get("metadata") or {})} for name, ds in fileset.items()})
    with make_executor("dask" if executor not in ("dask", "condor") else executor, workers, status=False,
                       site=site, condor_options=condor_options):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                runnable, _ = preprocess(spec, step_size=chunksize, align_clusters=False)
                outputs = {}
                for name in runnable:
                    outputs[name] = apply_to_fileset(dataset_graph(proc, name), {name: runnable[name]},
                                                     schemaclass=PFNanoAODSchema)[name]
                (computed,) = dask.compute(outputs)
            except Exception as err:
                bad = bad_input_in(err)
                if bad is not None:
                    raise bad from None
                raise
    out = accumulate(list(computed.values()))
    dumped = runnable.model_dump() if hasattr(runnable, "model_dump") else runnable
    chunks = sum(len(f.get("steps") or []) for ds in dumped.values() for f in ds["files"].values())
    return out, {"chunks": chunks, "mode": "dask-awkward"}
