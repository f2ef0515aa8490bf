"""The one place that builds coffea's ``Runner``: a processor over a fileset on any executor.

Besides running, it closes the gaps of coffea's own ``skipbadfiles`` (which covers opening
a file, not a chunk that fails while it is processed):

* every chunk runs inside a guard: a failure names the file, the entry range and the problem
  in one line; with ``skip_bad_files`` the chunk is listed in ``out["skipped_chunks"]`` and
  every other chunk's result is kept;
* ``out["accounting"]`` per dataset: events in the chunks asked for = processed + skipped;
* ``checkpoint``: each finished chunk is kept (coffea's ``SimpleCheckpointer``, written
  atomically), so the same call after a kill processes only what is missing;
* Ctrl-C / SIGTERM end with ``RunInterrupted`` ("interrupted after N of M chunks ...").
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
import warnings
from pathlib import Path

from core.errors import BadInputError
from core.interrupt import raise_if_interrupted
from execution.executors import make_executor

#: keys the guard adds to a chunk's output (removed again after the run)
_FAILED, _EVENTS = "_caliber_failed_chunks", "_caliber_events"


class RunInterrupted(BadInputError):
    """Ctrl-C or SIGTERM during a run; the message says how far it got and how to resume."""

    exit_code = 130


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


def problem_text(err: BaseException) -> str:
    """The root cause of a chunk failure as one short line (``Type: message``)."""
    bad = bad_input_in(err)
    if bad is not None:
        return str(bad)
    root = err
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    lines = str(root).strip().splitlines()
    return f"{type(root).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")


def chunk_line(dataset: str, filename: str, start: int, stop: int, problem: str) -> str:
    """One line naming a failed chunk: file, entry range, dataset and problem (the file named once)."""
    problem = problem.removeprefix(f"{filename}: ")
    return f"{filename}: entries {start}-{stop} (dataset {dataset}) failed: {problem}"


@contextlib.contextmanager
def quiet_schema_notes():
    """Hide NanoEvents' note about optional cross-references a file lacks (``JetSVs_sVIdx => SV`` ...), which it
    repeats for every chunk; ``runner.py -v`` (CALIBER_VERBOSE) shows it."""
    with warnings.catch_warnings():
        if not os.environ.get("CALIBER_VERBOSE"):
            warnings.filterwarnings("ignore", message="Missing cross-reference index", category=RuntimeWarning)
        yield


def _guarded_work(skip: bool, work, *args, **kwargs) -> dict:
    """coffea's per-chunk work function, with a failure turned into one line or a listed skip."""
    item = kwargs.get("item") if "item" in kwargs else args[5]
    if isinstance(item, tuple):  # dask sends (item, heavy processor)
        item = item[0]
    raise_if_interrupted()  # an interrupt swallowed since the last chunk (core.interrupt)
    try:
        with quiet_schema_notes():
            out = work(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - any failure of one chunk is reported, never lost
        line = chunk_line(item.dataset, item.filename, item.entrystart, item.entrystop, problem_text(err))
        if not skip:
            raise BadInputError(line + " (use --skip-bad-files to skip such chunks)") from None
        record = {"dataset": item.dataset, "file": item.filename, "entrystart": int(item.entrystart),
                  "entrystop": int(item.entrystop), "events": int(item.entrystop - item.entrystart),
                  "reason": problem_text(err)}
        return {"out": {_FAILED: [record]}, "metrics": {}, "processed": set()}
    if isinstance(out.get("out"), dict):
        out["out"][_EVENTS] = {item.dataset: int(item.entrystop - item.entrystart)}
    return out


def _make_checkpointer(directory: str | Path, fingerprint: str):
    """coffea's SimpleCheckpointer writing each chunk atomically, tied to one command (fingerprint)."""
    import cloudpickle
    from coffea.processor import SimpleCheckpointer

    class AtomicCheckpointer(SimpleCheckpointer):
        """Temporary file + rename, so a kill mid-write never leaves a half chunk to load."""

        def save(self, output, metadata, processor_instance) -> None:
            path = Path(self.filepath(metadata, processor_instance))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            with self.fs.open(str(tmp), "wb", compression="lz4") as fout:
                cloudpickle.dump(output, fout)
            os.replace(tmp, path)

    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInputError(f"{directory}: cannot create the checkpoint directory ({err.strerror})") from None
    stamp = directory / "caliber-checkpoint.json"
    if stamp.exists():
        try:
            old = json.loads(stamp.read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            old = None
        if old != fingerprint:
            raise BadInputError(f"{directory}: checkpoint written by a different command (other inputs or "
                                "settings); give a new --checkpoint directory")
    else:
        stamp.write_text(json.dumps({"fingerprint": fingerprint}))
    return AtomicCheckpointer(str(directory))


def fingerprint(*parts) -> str:
    """A short hash of whatever defines a run's result (for the checkpoint stamp)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _chunk_meta(chunk) -> dict:
    return {"dataset": chunk.dataset, "filename": chunk.filename, "treename": chunk.treename,
            "entrystart": chunk.entrystart, "entrystop": chunk.entrystop,
            "fileuuid": str(uuid.UUID(bytes=chunk.fileuuid)) if len(chunk.fileuuid) else ""}


def chunks_done(checkpointer, chunks: list) -> int:
    """How many of ``chunks`` have a saved result in the checkpoint directory."""
    if checkpointer is None:
        return 0
    return sum(os.path.exists(checkpointer.filepath(_chunk_meta(c), None)) for c in chunks)


def accounting(chunks: list, out: dict) -> dict:
    """Per dataset: events in the chunks asked for, processed, and in skipped chunks (exact)."""
    table: dict[str, dict[str, int]] = {}
    for c in chunks:
        row = table.setdefault(c.dataset, {"events_in_fileset": 0, "events_processed": 0, "events_skipped": 0})
        row["events_in_fileset"] += int(c.entrystop - c.entrystart)
    for ds, n in out.pop(_EVENTS, {}).items():
        table[ds]["events_processed"] += int(n)
    for rec in out.get("skipped_chunks", []):
        table[rec["dataset"]]["events_skipped"] += rec["events"]
    return table


def with_tree_names(fileset: dict, treename: str) -> dict:
    """The fileset with every file's tree named, so coffea reads the tree the fileset asks for
    (given ``treename`` as well, coffea would silently use that one for every file)."""
    out = {}
    for ds, entry in fileset.items():
        files = entry["files"] if isinstance(entry, dict) else entry
        if not isinstance(files, dict):
            files = {f: treename for f in files}
        out[ds] = {**(entry if isinstance(entry, dict) else {}),
                   "files": {f: (t or treename) for f, t in files.items()}}
    return out


def prefill_metadata(cache, fileset: dict) -> int:
    """Put what the pre-check read of each file (entries, uuid: ``inputs.fileset.known_file_metadata``)
    into coffea's metadata cache, so its preprocessing does not open those files again; how many."""
    from coffea.processor.executor import FileMeta

    from inputs.fileset import known_file_metadata

    n = 0
    for dataset, entry in fileset.items():
        user = entry.get("metadata") or {}
        for path, tree in entry["files"].items():
            facts = known_file_metadata(path, tree)
            if facts is not None:
                cache[FileMeta(dataset, path, tree, None)] = {**user, **facts}
                n += 1
    return n


def coffea_runner(executor, *, skipbadfiles: bool = False, **options):
    """coffea's Runner whose per-chunk work function reports or skips a failing chunk (``options``: the
    Runner's own)."""
    from functools import partial

    from coffea import processor

    class Runner(processor.Runner):
        _work_function = staticmethod(partial(_guarded_work, skipbadfiles, processor.Runner._work_function))

    return Runner(executor=executor, skipbadfiles=skipbadfiles, **options)


def preprocess_only(fileset: dict, reuse_check: bool, treename: str = "Events", chunksize: int = 50_000) -> list:
    """coffea's preprocessing alone (entries and uuid of every file, then the chunks) as ``run_processor``
    does it, with a fresh metadata cache: every file opened, or with ``reuse_check`` what the pre-check
    of this process read (``prefill_metadata``). For ``bench preflight``."""
    from coffea import processor

    runner = coffea_runner(processor.IterativeExecutor(), metadata_cache={}, chunksize=chunksize)
    named = with_tree_names(fileset, treename)
    if reuse_check:
        prefill_metadata(runner.metadata_cache, named)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(runner.preprocess(named, treename=None))


def read_options(fileset: dict, proc) -> dict:
    """How the chunks are opened: files on local disk memory-mapped (uproot's ``MemmapSource``: a branch
    read is a memory copy, not a request to fsspec's I/O thread), and NanoEvents built from the branches
    the processor says it can read (its ``branch_patterns()``, uproot ``filter_name`` globs), not from
    every branch of the file. Neither changes a value read."""
    import uproot

    options: dict = {}
    paths = [p for entry in fileset.values() for p in entry["files"]]
    if paths and all(Path(str(p)).exists() for p in paths):
        options["uproot_options"] = {"handler": uproot.source.file.MemmapSource}
    patterns = getattr(proc, "branch_patterns", None)
    if callable(patterns):
        options["iteritems_options"] = {"filter_name": list(patterns())}
    return options


def validate_sizes(chunksize: int, max_chunks: int | None, workers: int) -> None:
    """One-line errors for sizes that must be positive (before any work)."""
    if chunksize is None or chunksize < 1:
        raise BadInputError(f"--chunksize must be at least 1 event, got {chunksize}")
    if max_chunks is not None and max_chunks < 1:
        raise BadInputError(f"--max-chunks must be at least 1 (or left out for all chunks), got {max_chunks}")
    if workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")


def run_processor(fileset: dict, proc, *, executor: str = "dask", workers: int = 2, chunksize: int = 50_000,
                  max_chunks: int | None = None, skip_bad_files: bool = False, status: bool = True,
                  desc: str = "Processing", site: str = "generic", condor_options: dict | None = None,
                  gpu_resource: bool = False, savemetrics: bool = False, treename: str = "Events",
                  checkpoint: str | Path | None = None, checkpoint_key: str = ""):
    """Run ``proc`` over a checked fileset with coffea's ``Runner`` (PFNanoAOD schema, virtual arrays).

    Returns the accumulated output, or ``(output, metrics)`` with ``savemetrics``. A
    ``BadInputError`` raised inside a chunk reaches the caller unwrapped. A dict output gains
    ``skipped_chunks`` (file, entries, reason; only with ``skip_bad_files``) and ``accounting``.
    ``checkpoint``: directory keeping each finished chunk; ``checkpoint_key`` names the command
    (inputs and settings) so that a directory is never reused for a different one.
    """
    from coffea.nanoevents import PFNanoAODSchema

    validate_sizes(chunksize, max_chunks, workers)
    checkpointer = (_make_checkpointer(checkpoint, fingerprint(checkpoint_key, type(proc).__name__, chunksize,
                                                                max_chunks, treename, sorted(fileset)))
                    if checkpoint else None)

    chunks: list = []
    with make_executor(executor, workers, status=status, desc=desc, site=site, condor_options=condor_options,
                       gpu_resource=gpu_resource) as ex:
        runner = coffea_runner(ex, chunksize=chunksize, maxchunks=max_chunks, skipbadfiles=skip_bad_files,
                               schema=PFNanoAODSchema, savemetrics=savemetrics, checkpointer=checkpointer)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                named = with_tree_names(fileset, treename)
                prefill_metadata(runner.metadata_cache, named)
                chunks = list(runner.preprocess(named, treename=None))
                started = time.perf_counter()
                result = runner(chunks, proc, treename=treename, **read_options(named, proc))
                processing_seconds = time.perf_counter() - started
                raise_if_interrupted()  # swallowed during the last chunk or by another executor's loop
        except KeyboardInterrupt:
            done = chunks_done(checkpointer, chunks)
            how = ("rerun with the same --checkpoint to resume" if checkpointer is not None
                   else "nothing was kept; give --checkpoint DIR to make a run resumable")
            raise RunInterrupted(f"interrupted after {done} of {len(chunks) or '?'} chunks; {how}") from None
        except Exception as err:
            bad = bad_input_in(err)
            if bad is not None:
                raise bad from None
            raise
    out = result[0] if savemetrics else result
    if savemetrics and isinstance(result[1], dict):
        # wall time of the chunks alone: cluster start-up and preprocessing excluded
        result[1]["processing_seconds"] = processing_seconds
    if isinstance(out, dict):
        out["skipped_chunks"] = sorted(out.pop(_FAILED, []), key=lambda r: (r["file"], r["entrystart"]))
        out["accounting"] = accounting(chunks, out)
    return result
