"""Pickle-free outputs of a run: every histogram as uhi JSON (``uhi.io.json``) and as ROOT histograms (uproot).

``<name>.uhi.json`` holds ``{"caliber_output": 1, "histograms": {path: uhi hist}, "info": {...}}``:
the histograms in the uhi serialisation (any uhi reader, e.g. ``hist.Hist(d)`` or ROOT's
uhi bridge, can open them) and the JSON-able rest of the output (cutflow, skipped list,
run info, counts). Per-jet column tables are not written (they are for studies).

``<name>.root`` holds the same histograms for ROOT: a histogram of at most three numeric
axes is written as is, higher ones are sliced along their category axes
(``response/<correction>/<flavour>`` is a TH3 of |eta_gen|, pT_gen, response).
"""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import BadInputError

FORMAT_KEY = "caliber_output"


def _is_hist(obj) -> bool:
    return hasattr(obj, "_to_uhi_") and hasattr(obj, "axes")


def histograms(out: dict, prefix: str = "") -> dict:
    """Every histogram of a (nested) output dict, by '/'-joined key path."""
    found = {}
    for key, value in out.items():
        path = f"{prefix}{key}"
        if _is_hist(value):
            found[path] = value
        elif isinstance(value, dict):
            found.update(histograms(value, prefix=f"{path}/"))
    return found


def _jsonable(obj):
    """The JSON-able part of an output (hists and column tables left out); sets become sorted lists."""
    if isinstance(obj, dict):
        kept = {str(k): _jsonable(v) for k, v in obj.items() if not _is_hist(v)}
        return {k: v for k, v in kept.items() if v is not _SKIP}
    if isinstance(obj, (set, frozenset)):
        return sorted(_jsonable(v) for v in obj)
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    return _SKIP


_SKIP = object()


def write_uhi_json(out: dict, path: str | Path) -> Path:
    """Write ``out``'s histograms (uhi serialisation) and its JSON-able rest to ``path``."""
    from uhi.io.json import default

    path = Path(path)
    doc = {FORMAT_KEY: 1, "histograms": histograms(out), "info": _jsonable(out)}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, default=default))
    tmp.replace(path)
    return path


def read_uhi_json(path: str | Path) -> dict:
    """An output dict from ``<name>.uhi.json``: histograms back as ``hist.Hist`` at their key paths."""
    import hist
    from uhi.io.json import object_hook

    path = Path(path)
    try:
        doc = json.loads(path.read_text(), object_hook=object_hook)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path}: not a readable uhi JSON output ({type(err).__name__}: {err})") from None
    if not isinstance(doc, dict) or FORMAT_KEY not in doc:
        raise BadInputError(f"{path}: not a caliber uhi JSON output (no '{FORMAT_KEY}' key)")
    out = dict(doc.get("info", {}))
    for key, value in out.items():
        if key == "datasets_without_gen" and isinstance(value, list):
            out[key] = set(value)
    for key_path, data in doc["histograms"].items():
        node = out
        *parents, leaf = key_path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = hist.Hist(data)
    return out


def root_slices(name: str, h) -> dict:
    """``{ROOT key: histogram of <= 3 numeric axes}`` for one histogram (category axes sliced)."""
    cats = [ax for ax in h.axes if ax.traits.discrete and not ax.traits.ordered]
    if not cats and len(h.axes) <= 3:
        return {name: h}
    if not cats:
        raise BadInputError(f"histogram '{name}': more than 3 numeric axes cannot be written to ROOT")
    ax = cats[0]
    out = {}
    for value in ax:
        out.update(root_slices(f"{name}/{value}", h[{ax.name: ax.index(value)}]))
    return out


def write_root(out: dict, path: str | Path) -> Path:
    """Write every histogram of ``out`` with uproot (TH1/TH2/TH3, category axes as directories)."""
    import uproot

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with uproot.recreate(tmp) as f:
        for name, h in histograms(out).items():
            for key, piece in root_slices(name, h).items():
                f[key] = piece
    tmp.replace(path)
    return path


def write_portable(out: dict, coffea_path: str | Path) -> tuple[Path, Path]:
    """``<name>.uhi.json`` and ``<name>.root`` next to ``<name>.coffea``."""
    coffea_path = Path(coffea_path)
    stem = coffea_path.name[: -len(".coffea")] if coffea_path.name.endswith(".coffea") else coffea_path.name
    return (write_uhi_json(out, coffea_path.with_name(f"{stem}.uhi.json")),
            write_root(out, coffea_path.with_name(f"{stem}.root")))
