"""The one place that builds coffea's ``Runner``: a processor over a fileset on any executor."""
from __future__ import annotations

import re
import warnings

from core.errors import BadInputError
from execution.executors import make_executor


def bad_input_in(err: BaseException) -> BadInputError | None:
    """The BadInputError behind an executor's wrapped exception, if any.

    Executors re-raise a chunk's exception wrapped (dask pickles it, futures chains it);
    this finds the user-facing error behind it so the command line can print one line.
    """
    seen = err
    while seen is not None:
        if isinstance(seen, BadInputError):
            return seen
        seen = seen.__cause__ or seen.__context__
    match = re.search(r"BadInputError\(['\"](.*)['\"]\)", str(err))
    return BadInputError(match.group(1)) if match else None


def run_processor(fileset: dict, proc, *, executor: str = "dask", workers: int = 2, chunksize: int = 50_000,
                  max_chunks: int | None = None, skip_bad_files: bool = False, status: bool = True,
                  desc: str = "Processing", site: str = "generic", condor_options: dict | None = None,
                  gpu_resource: bool = False, savemetrics: bool = False, treename: str = "Events"):
    """Run ``proc`` over a checked fileset with coffea's ``Runner`` (PFNanoAOD schema, virtual arrays).

    Returns the accumulated output, or ``(output, metrics)`` with ``savemetrics``. A
    ``BadInputError`` raised inside a chunk reaches the caller unwrapped.
    """
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    with make_executor(executor, workers, status=status, desc=desc, site=site, condor_options=condor_options,
                       gpu_resource=gpu_resource) as ex:
        runner = processor.Runner(executor=ex, chunksize=chunksize, maxchunks=max_chunks,
                                  skipbadfiles=skip_bad_files, schema=PFNanoAODSchema, savemetrics=savemetrics)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return runner(fileset, proc, treename=treename)
        except Exception as err:
            bad = bad_input_in(err)
            if bad is not None:
                raise bad from None
            raise
