"""The embedded default sample of ``make run``: small, generated once and cached."""
from __future__ import annotations

import json
from pathlib import Path

DEFAULT_EVENTS = 2000
DEFAULT_EVENTS_PER_FILE = 250
DEFAULT_SEED = 42
DEFAULT_PILEUP = 30.0


def default_sample(cache_dir: str | None = None, workers: int = 2, executor: str = "dask") -> dict:
    """Coffea fileset {"qcd": {"files": {path: "Events"}}} of the cached default sample (generated if absent);
    the cache folder defaults to ``cache/samples/default_<detector version>``."""
    from samples.detector import DETECTOR_VERSION
    from samples.generate import chunk_items, generate_sample

    cache = Path(cache_dir or f"cache/samples/default_{DETECTOR_VERSION}")
    manifest = cache / "manifest.json"
    expected = [it["path"] for it in chunk_items(cache, DEFAULT_EVENTS, DEFAULT_EVENTS_PER_FILE, DEFAULT_SEED,
                                                 DEFAULT_PILEUP, "qcd", None)]
    if manifest.exists() and all(Path(p).exists() for p in expected):
        files = json.loads(manifest.read_text())["files"]
    else:
        files = generate_sample(str(cache), DEFAULT_EVENTS, DEFAULT_EVENTS_PER_FILE, DEFAULT_SEED,
                                pileup_mean=DEFAULT_PILEUP, executor=executor, workers=workers, status=True)
        manifest.write_text(json.dumps({"files": files, "events": DEFAULT_EVENTS, "seed": DEFAULT_SEED}))
    return {"qcd": {"files": {str(Path(p).resolve()): "Events" for p in files}}}
