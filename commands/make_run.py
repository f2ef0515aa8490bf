"""``runner.py make-run``: the main job behind ``make run``.

1. the embedded default sample: a small generated sample, cached under ``cache/``;
2. ``runner.py run`` on it with the derived L1L2 baseline and the shipped trained model;
3. ``runner.py report`` and ``runner.py plot`` on the output.
"""
from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DERIVED_JEC = ROOT / "samples" / "jec" / "Caliber_V6_MC.yaml"
SHIPPED_MODEL = ROOT / "models" / "trained" / "deepsets_lite.keras"


def default_fileset(cache: Path, workers: int) -> Path:
    """Write the fileset JSON of the cached default sample (generated on first use)."""
    from samples.default import default_sample
    from samples.detector import DETECTOR_VERSION

    fileset = default_sample(cache_dir=str(cache / "samples" / f"default_{DETECTOR_VERSION}"), workers=workers)
    path = cache / "samples" / "default_fileset.json"
    path.write_text(json.dumps(fileset, indent=1))
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", default="dask")
    parser.add_argument("--cache", default=str(ROOT / "cache"))
    parser.add_argument("--out", default=str(ROOT / "outputs"))


def _command(name: str, argv: list[str]) -> int:
    """Run ``runner.py <name> argv`` in this process (the command module's own parser)."""
    module = importlib.import_module(f"commands.{name}")
    parser = argparse.ArgumentParser(prog=f"runner.py {name}")
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(argv)) or 0)


def main(args: argparse.Namespace) -> int:
    cache, out = Path(args.cache), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    fileset = default_fileset(cache, args.workers)
    output = out / "main_job.coffea"
    cmd = ["--fileset", str(fileset), "--processor", "jets", "--executor", args.executor,
           "--workers", str(args.workers), "--output", str(output), "--name", "main_job"]
    if DERIVED_JEC.exists():
        cmd += ["--jec", str(DERIVED_JEC)]
    else:
        print(f"note: no derived L1L2 baseline at {DERIVED_JEC}: raw response only")
    if SHIPPED_MODEL.exists():
        cmd += ["--model", f"DeepSetsLite={SHIPPED_MODEL}"]
    else:
        print(f"note: no shipped model at {SHIPPED_MODEL}: no DNN row")
    rc = _command("run", cmd)
    if rc:
        return rc
    rc = _command("report", [str(output), "--out", str(out / "main_job_report")])
    if rc:
        return rc
    return _command("plot", [str(output), "--out", str(out / "main_job_plots")])
