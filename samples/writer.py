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
