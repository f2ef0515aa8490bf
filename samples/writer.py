"""Write per-event collections into a NanoAOD/PFNano-layout ROOT file with uproot."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_events(path: str | Path, scalars: dict[str, np.ndarray], collections: dict[str, dict]) -> None:
    """Write an ``Events`` tree: flat ``scalars`` branches and jagged ``collections``.

    Each collection is ``{"counts": int array (per event), field: flat array}``; uproot
    writes ``nName`` counters and ``Name_field`` branches as NanoAOD does. The file is
    first written to a temporary name and renamed, so a complete file is never partial.
    """
    import awkward as ak
    import uproot

    path = Path(path)
    tmp = path.with_suffix(".tmp.root")
    branches = {k: np.asarray(v) for k, v in scalars.items()}
    for name, col in collections.items():
        counts = np.asarray(col["counts"], dtype=np.int64)
        fields = {k: ak.unflatten(np.asarray(v), counts) for k, v in col.items() if k != "counts"}
        branches[name] = ak.zip(fields)
    types = {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
    with uproot.recreate(tmp) as f:
        f.mktree("Events", types, field_name=lambda outer, inner: f"{outer}_{inner}",
                 counter_name=lambda counted: f"n{counted}")
        f["Events"].extend(branches)
    tmp.replace(path)


def merge_files(path: str | Path, inputs: list[str]) -> int:
    """Write the ``Events`` of ``inputs`` (files of this writer, the same branches) one after the other into one
    file at ``path``; returns its number of events. For benchmarks that want a few large files: one generator job
    of 5000 pileup-30 events needs ~10 GB, five of 1000 events merged need ~2 GB each."""
    import awkward as ak
    import uproot

    parts = []
    for name in inputs:
        with uproot.open(name) as f:
            parts.append(f["Events"].arrays())
    events = ak.concatenate(parts)
    prefixes = {k.split("_", 1)[0] for k in events.fields if "_" in k}
    names = {k[1:] for k in events.fields if k.startswith("n") and k[1:] in prefixes}
    counters = {f"n{n}" for n in names}  # write_events makes them again from the counts
    scalars, collections = {}, {n: {"counts": ak.to_numpy(events[f"n{n}"])} for n in names}
    for k in events.fields:
        prefix, _, field = k.partition("_")
        if k in counters:
            continue
        if prefix in names and field:
            collections[prefix][field] = ak.to_numpy(ak.flatten(events[k]))
        else:
            scalars[k] = ak.to_numpy(events[k])
    write_events(path, scalars, collections)
    return len(events)


if __name__ == "__main__":  # python -m samples.writer merge OUT.root IN.root ...
    import sys

    if len(sys.argv) < 4 or sys.argv[1] != "merge":
        sys.exit("usage: python -m samples.writer merge OUT.root IN.root [IN.root ...]")
    print(f"{sys.argv[2]}: {merge_files(sys.argv[2], sys.argv[3:])} events")
