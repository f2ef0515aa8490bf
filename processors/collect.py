"""``runner.py collect``: training shards (parquet) of jet features and targets.

``CollectProcessor.process`` selects gen-matched jets of a chunk, computes their features
(``processors.features``), writes ONE parquet shard per chunk and returns counts and running
sums; ``finalize`` then turns the accumulated sums into the manifest's normalisation,
fills the flat-spectrum weights of every shard and writes ``manifest.json``.

Shard records (one per jet): target = log(pt_gen/pt_raw), pt_raw, pt_gen, eta, eta_gen, phi,
flavour, weight_flat, weight_natural, split (0 train, 1 validation, 2 test), event, run,
luminosityBlock, globals, charged, neutral, sv.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
from coffea import processor

from processors.execution import BadInputError, add_executor_arguments, check_fileset, load_fileset, make_executor
from processors.features import COLLECTIONS, FEATURE_NAMES, REQUIRED_BRANCHES, jet_features

MANIFEST = "manifest.json"
SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
#: binning of the flat-spectrum weights: pt_gen (GeV, geometric) x |eta_gen|
FLAT_PT_EDGES = tuple(np.geomspace(10.0, 5000.0, 31))
FLAT_ABS_ETA_EDGES = tuple(np.linspace(0.0, 5.0, 11))
#: generator-level and bookkeeping branches collect needs besides the feature branches
COLLECT_BRANCHES = ("run", "luminosityBlock", "event", "Jet_genJetIdx", "Jet_hadronFlavour", "Jet_partonFlavour",
                    "GenJet_pt", "GenJet_eta", "GenJet_phi")


# --------------------------------------------------------------------------- pure functions

def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def event_hash_uniform(run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per event from a hash of (run, luminosityBlock, event); same on every machine."""
    h = _splitmix64(_splitmix64(_splitmix64(np.asarray(run).astype(np.uint64)) ^ np.asarray(lumi).astype(np.uint64))
                    ^ np.asarray(event).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def event_split(run: np.ndarray, lumi: np.ndarray, event: np.ndarray,
                fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> np.ndarray:
    """Split code per event (int8: 0 train, 1 validation, 2 test) cut on ``event_hash_uniform``."""
    u = event_hash_uniform(run, lumi, event)
    cuts = np.cumsum(np.asarray(fractions, dtype=np.float64) / np.sum(fractions))[:-1]
    return np.searchsorted(cuts, u, side="right").astype(np.int8)


def _bin_index(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bin of each value, under/overflow put into the first/last bin."""
    return np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)


def flat_histogram(pt_gen: np.ndarray, abs_eta_gen: np.ndarray) -> np.ndarray:
    """Jet counts in (pt_gen, |eta_gen|) bins of FLAT_PT_EDGES x FLAT_ABS_ETA_EDGES (edge bins absorb overflow)."""
    h = np.zeros((len(FLAT_PT_EDGES) - 1, len(FLAT_ABS_ETA_EDGES) - 1), dtype=np.int64)
    np.add.at(h, (_bin_index(pt_gen, FLAT_PT_EDGES), _bin_index(abs_eta_gen, FLAT_ABS_ETA_EDGES)), 1)
    return h


def flat_weight_table(counts: np.ndarray, min_count: float = 10.0) -> np.ndarray:
    """Per-bin weights for a spectrum flat in (log pt_gen, |eta_gen|).

    ``w = 1 / max(count, min_count)`` (the clip keeps sparse bins from dominating), scaled so
    that the mean weight over all jets is 1. Bins are equal in log pT and |eta|, so 1/count is
    the inverse density in those variables.
    """
    counts = np.asarray(counts, dtype=np.float64)
    w = 1.0 / np.maximum(counts, min_count)
    total = np.sum(counts * w)
    return w * (np.sum(counts) / total) if total > 0 else np.ones_like(w)


def flat_weights(pt_gen: np.ndarray, abs_eta_gen: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Flat-spectrum weight (float32) of each jet from ``flat_weight_table``."""
    return np.asarray(table)[_bin_index(pt_gen, FLAT_PT_EDGES), _bin_index(abs_eta_gen, FLAT_ABS_ETA_EDGES)] \
        .astype(np.float32)


def norm_from_sums(s: np.ndarray, s2: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """(mean, std) from a sum, a sum of squares and a count; std >= 1e-6 (1 where n = 0)."""
    if n <= 0:
        return [0.0] * len(s), [1.0] * len(s)
    mean = np.asarray(s) / n
    var = np.maximum(np.asarray(s2) / n - mean**2, 0.0)
    return mean.tolist(), np.maximum(np.sqrt(var), 1e-6).tolist()


def shard_name(dataset: str, filename: str, entrystart: int, entrystop: int) -> str:
    """Deterministic shard file name from the dataset, the input file and the chunk's entry range."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(filename)).name.removesuffix(".root"))
    digest = hashlib.sha1(str(filename).encode()).hexdigest()[:8]
    return f"{safe}__{stem}-{digest}__{int(entrystart)}-{int(entrystop)}.parquet"


def required_branches() -> list[str]:
    """Every branch name ``collect`` reads (rho: either spelling, checked separately)."""
    names = list(COLLECT_BRANCHES)
    for coll, fields in REQUIRED_BRANCHES.items():
        names += [f"{coll}_{f}" for f in fields]
    return names


def check_input_branches(fileset: dict) -> None:
    """Raise BadInputError naming the file and the first branch ``collect`` needs that it lacks."""
    import uproot

    for entry in fileset.values():
        for path, tree in entry["files"].items():
            with uproot.open(path) as f:
                keys = set(f[tree].keys())
            for name in required_branches():
                if name not in keys:
                    raise BadInputError(f"{path}: missing branch {name} (needed by collect)")
            if "fixedGridRhoFastjetAll" not in keys and "Rho_fixedGridRhoFastjetAll" not in keys:
                raise BadInputError(f"{path}: missing branch fixedGridRhoFastjetAll (or Rho_fixedGridRhoFastjetAll)")


def write_shard(path: Path, columns: dict[str, np.ndarray], feats: dict[str, ak.Array], out: dict) -> None:
    """Write one shard (``columns`` per jet + feature blocks) and add its counts and sums to ``out``.

    ``columns`` holds pt_raw, pt_gen, eta, eta_gen, phi, flavour, weight_natural, split, event, run,
    luminosityBlock; ``target`` is computed here and ``weight_flat`` is 1 until ``finalize``.
    """
    pt_raw = np.asarray(columns["pt_raw"], dtype=np.float32)
    pt_gen = np.asarray(columns["pt_gen"], dtype=np.float32)
    split = np.asarray(columns["split"], dtype=np.int8)
    fields = {
        "target": np.log(pt_gen.astype(np.float64) / pt_raw).astype(np.float32),
        "pt_raw": pt_raw, "pt_gen": pt_gen,
        "eta": np.asarray(columns["eta"], dtype=np.float32),
        "eta_gen": np.asarray(columns["eta_gen"], dtype=np.float32),
        "phi": np.asarray(columns["phi"], dtype=np.float32),
        "flavour": np.asarray(columns["flavour"], dtype=np.int32),
        "weight_flat": np.ones(len(pt_raw), dtype=np.float32),  # filled by finalize()
        "weight_natural": np.asarray(columns["weight_natural"], dtype=np.float32),
        "split": split,
        **{k: np.asarray(columns[k], dtype=np.int64) for k in ("event", "run", "luminosityBlock")},
        **{k: feats[k] for k in ("globals",) + COLLECTIONS},
    }
    record = ak.zip(fields, depth_limit=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    ak.to_parquet(record, tmp)
    os.replace(tmp, path)

    out["shards"] = [path.name]
    for code, split_name in enumerate(SPLIT_NAMES):
        out["n_jets"][split_name] = int(np.sum(split == code))
    train = split == 0
    for coll in ("globals",) + COLLECTIONS:
        values = feats[coll][train]
        flat = ak.to_numpy(values if coll == "globals" else ak.flatten(values, axis=1)).astype(np.float64)
        flat = flat.reshape(-1, len(FEATURE_NAMES[coll]))
        out["stats"][coll] = {"sum": flat.sum(axis=0), "sumsq": (flat**2).sum(axis=0), "count": len(flat)}
    for coll in COLLECTIONS:
        out["max_constituents"][coll] = {int(ak.max(ak.num(feats[coll], axis=1), initial=0))}
    out["flat_hist"] = flat_histogram(pt_gen, np.abs(np.asarray(columns["eta_gen"])))


def empty_output(dataset: str) -> dict:
    """The accumulator of a chunk without jets."""
    return {
        "shards": [],
        "n_jets": {name: 0 for name in SPLIT_NAMES},
        "stats": {c: {"sum": np.zeros(len(FEATURE_NAMES[c])), "sumsq": np.zeros(len(FEATURE_NAMES[c])),
                      "count": 0} for c in ("globals",) + COLLECTIONS},
        "max_constituents": {c: {0} for c in COLLECTIONS},
        "flat_hist": flat_histogram(np.zeros(0), np.zeros(0)),
        "cutflow": {dataset: {"events": 0, "jets": 0, "jets_selected": 0}},
    }


# --------------------------------------------------------------------------- processor

class CollectProcessor(processor.ProcessorABC):
    """Writes one parquet shard of gen-matched jet features per chunk.

    Parameters
    ----------
    out_dir : str
        Directory of the shards (absolute, visible to every worker).
    min_pt_raw : float
        Raw jet pT cut (GeV).
    max_abs_eta : float
        |eta| cut of the reco jet.
    max_dr : float
        Gen-match distance (through genJetIdx).
    fractions : (train, validation, test)
        Split fractions, applied to a hash of (run, luminosityBlock, event).
    """

    def __init__(self, out_dir: str, min_pt_raw: float = 15.0, max_abs_eta: float = 4.7, max_dr: float = 0.2,
                 fractions: tuple[float, float, float] = DEFAULT_FRACTIONS):
        self.out_dir = str(out_dir)
        self.min_pt_raw = float(min_pt_raw)
        self.max_abs_eta = float(max_abs_eta)
        self.max_dr = float(max_dr)
        self.fractions = tuple(float(f) for f in fractions)

    def empty_output(self, dataset: str) -> dict:
        return empty_output(dataset)

    def select(self, events):
        """(jets, matched gen jets, pt_raw) of the gen-matched jets passing the cuts."""
        from processors.jets import matched_gen_jets, raw_pt

        jets = events.Jet
        src = events.metadata.get("filename", "events")
        for name in ("genJetIdx", "hadronFlavour", "partonFlavour"):
            if name not in jets.fields:
                raise BadInputError(f"{src}: missing branch Jet_{name} (collect needs simulation)")
        if "GenJet" not in events.fields:
            raise BadInputError(f"{src}: missing branch GenJet_pt (collect needs simulation)")
        gen = matched_gen_jets(jets, events.GenJet, max_dr=self.max_dr)
        pt_raw = raw_pt(jets)
        keep = (pt_raw > self.min_pt_raw) & (abs(jets.eta) < self.max_abs_eta) & ~ak.is_none(gen, axis=1)
        return jets[keep], gen[keep], pt_raw[keep]

    def process(self, events) -> dict:
        from processors.features import check_branches
        from processors.jets import jet_flavour

        meta = events.metadata
        dataset = meta.get("dataset", "unknown")
        out = self.empty_output(dataset)
        check_branches(events)
        jets, gen, pt_raw = self.select(events)
        n_sel = ak.to_numpy(ak.num(jets)).astype(np.int64)
        out["cutflow"][dataset] = {"events": len(events), "jets": int(ak.sum(ak.num(events.Jet))),
                                   "jets_selected": int(n_sel.sum())}
        if n_sel.sum() == 0:
            return out

        feats = jet_features(events, jets)
        per_jet = np.repeat(np.arange(len(n_sel)), n_sel)
        run = ak.to_numpy(events.run).astype(np.int64)[per_jet]
        lumi = ak.to_numpy(events.luminosityBlock).astype(np.int64)[per_jet]
        event = ak.to_numpy(events.event).astype(np.uint64)
        split = event_split(ak.to_numpy(events.run), ak.to_numpy(events.luminosityBlock), event,
                            self.fractions)[per_jet]
        pt_raw_np = ak.to_numpy(ak.flatten(pt_raw)).astype(np.float32)
        gen = ak.drop_none(gen, axis=1)  # selected jets are all matched: this only drops the option type
        pt_gen = ak.to_numpy(ak.flatten(gen.pt)).astype(np.float32)
        eta_gen = ak.to_numpy(ak.flatten(gen.eta)).astype(np.float32)
        if "genWeight" in events.fields:
            natural = ak.to_numpy(events.genWeight).astype(np.float32)[per_jet]
        else:
            natural = np.ones(len(per_jet), dtype=np.float32)
        columns = {
            "pt_raw": pt_raw_np, "pt_gen": pt_gen,
            "eta": ak.to_numpy(ak.flatten(jets.eta)).astype(np.float32), "eta_gen": eta_gen,
            "phi": ak.to_numpy(ak.flatten(jets.phi)).astype(np.float32),
            "flavour": ak.to_numpy(ak.flatten(jet_flavour(jets))).astype(np.int32),
            "weight_natural": natural, "split": split, "event": event[per_jet].astype(np.int64),
            "run": run, "luminosityBlock": lumi,
        }
        name = shard_name(dataset, meta.get("filename", "unknown"), meta.get("entrystart", 0),
                          meta.get("entrystop", len(events)))
        write_shard(Path(self.out_dir) / name, columns, feats, out)
        return out

    def postprocess(self, accumulator):
        return accumulator


# --------------------------------------------------------------------------- after accumulation

def finalize(out_dir: Path, output: dict, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
             min_count: float = 10.0, extra: dict | None = None) -> dict:
    """Fill ``weight_flat`` in every shard and write ``manifest.json``; returns the manifest."""
    out_dir = Path(out_dir)
    shards = sorted(output["shards"])
    table = flat_weight_table(output["flat_hist"], min_count=min_count)
    for name in shards:
        path = out_dir / name
        arr = ak.from_parquet(path)
        w = flat_weights(ak.to_numpy(arr.pt_gen), np.abs(ak.to_numpy(arr.eta_gen)), table)
        arr = ak.with_field(arr, w, "weight_flat")
        tmp = path.with_suffix(".parquet.tmp")
        ak.to_parquet(arr, tmp)
        os.replace(tmp, path)

    norm = {}
    for coll in ("globals",) + COLLECTIONS:
        st = output["stats"][coll]
        mean, std = norm_from_sums(st["sum"], st["sumsq"], int(st["count"]))
        norm[coll] = {"mean": mean, "std": std}
    manifest = {
        "version": 1,
        "features": {c: list(FEATURE_NAMES[c]) for c in ("globals",) + COLLECTIONS},
        "norm": norm,
        "shards": shards,
        "n_jets": {k: int(v) for k, v in output["n_jets"].items()},
        "split": {"method": "splitmix64 hash of (run, luminosityBlock, event) -> u in [0,1), "
                            "cut at the cumulative fractions (all jets of an event share a split)",
                  "fractions": list(fractions)},
        "target": "log(pt_gen/pt_raw)",
        "max_constituents": {c: int(max(output["max_constituents"][c])) for c in COLLECTIONS},
        "weights": {
            "weight_natural": "genWeight (1 where absent)",
            "weight_flat": f"1/max(count, {min_count:g}) in (pt_gen, |eta_gen|) bins, mean 1 over all jets",
            "flat_pt_gen_edges": [float(x) for x in FLAT_PT_EDGES],
            "flat_abs_eta_gen_edges": [float(x) for x in FLAT_ABS_ETA_EDGES],
            "flat_table": np.asarray(table).tolist(),
        },
        "cutflow": output.get("cutflow", {}),
    }
    if extra:
        manifest.update(extra)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(out_dir: str | Path) -> dict:
    """The manifest of a shard directory; BadInputError naming the path when it is missing or broken."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise BadInputError(f"{path}: no manifest (run `runner.py collect` first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BadInputError(f"{path}: not valid JSON ({err})") from None


# --------------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fileset", nargs="+", required=True,
                        help="a coffea fileset JSON, or one or more PFNano ROOT files (each its own dataset)")
    parser.add_argument("--out", required=True,
                        help="output directory of the shards and manifest.json (on a filesystem every worker "
                             "sees, for the condor executor)")
    parser.add_argument("--processor", choices=("jets", "electrons"), default="jets",
                        help="jets: jet features + log(pt_gen/pt_raw); electrons: Z->ee electron features, "
                             "mass-constraint labels and (in MC) true energies")
    parser.add_argument("--kind", choices=("mc", "data"), default=None,
                        help="electrons: what the files are (default: mc where a generator record exists)")
    parser.add_argument("--format", choices=("pfnano", "mljec"), default="pfnano",
                        help="pfnano: NanoEvents through the executor; mljec: ml-jec-vars files (tree Jets), "
                             "one shard per file, in this process")
    parser.add_argument("--chunksize", type=int, default=10_000,
                        help="events per chunk (= per shard); PFNano with every PF candidate of the event "
                             "takes about 0.2 GB of memory per 1000 events")
    parser.add_argument("--max-chunks", type=int, default=None, help="at most this many chunks per dataset")
    parser.add_argument("--min-pt-raw", type=float, default=15.0, help="raw jet pT cut (GeV)")
    parser.add_argument("--max-abs-eta", type=float, default=4.7, help="jet |eta| cut")
    parser.add_argument("--max-dr", type=float, default=0.2, help="gen-match distance")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=list(DEFAULT_FRACTIONS),
                        metavar=("TRAIN", "VALIDATION", "TEST"))
    parser.add_argument("--flat-min-count", type=float, default=10.0,
                        help="flat weights use 1/max(count, this) per (pt_gen, |eta_gen|) bin")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing collection in --out (its listed shards are removed)")
    parser.add_argument("--skip-bad-files", action="store_true", help="skip unreadable inputs instead of stopping")
    add_executor_arguments(parser)
    try:
        from condor.cluster import add_condor_arguments
    except ImportError:
        return
    add_condor_arguments(parser)


def _bad_input_in(err: BaseException) -> BadInputError | None:
    """The BadInputError behind an executor's wrapped exception, if any."""
    seen = err
    while seen is not None:
        if isinstance(seen, BadInputError):
            return seen
        seen = seen.__cause__ or seen.__context__
    match = re.search(r"BadInputError\(['\"](.*)['\"]\)", str(err))
    return BadInputError(match.group(1)) if match else None


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    manifest = out_dir / MANIFEST
    if manifest.exists():
        if not overwrite:
            raise BadInputError(f"{out_dir}: already holds a collection ({MANIFEST}); use --overwrite or another --out")
        for name in read_manifest(out_dir).get("shards", []):
            (out_dir / name).unlink(missing_ok=True)
        manifest.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def collect(fileset: dict, out_dir: str | Path, *, executor: str = "iterative", workers: int = 1,
            chunksize: int = 10_000, max_chunks: int | None = None, min_pt_raw: float = 15.0,
            max_abs_eta: float = 4.7, max_dr: float = 0.2,
            fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, flat_min_count: float = 10.0,
            skip_bad_files: bool = False, status: bool = False, site: str = "generic",
            condor_opts: dict | None = None, overwrite: bool = False) -> dict:
    """Run the collection over a fileset and write the shards and manifest; returns the manifest."""
    from coffea.nanoevents import PFNanoAODSchema

    if not fileset or not any(entry.get("files") for entry in fileset.values()):
        raise BadInputError("empty fileset: no dataset lists an input file")
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise BadInputError(f"--split-fractions must be non-negative and sum to 1, got {list(fractions)}")
    checked = check_fileset(fileset, skip_bad_files)
    check_input_branches(checked.fileset)
    out_dir = Path(out_dir).resolve()
    _prepare_out_dir(out_dir, overwrite)
    proc = CollectProcessor(str(out_dir), min_pt_raw=min_pt_raw, max_abs_eta=max_abs_eta, max_dr=max_dr,
                            fractions=fractions)
    with make_executor(executor, workers, status=status, desc="Collecting", site=site,
                       condor_options=condor_opts) as ex:
        runner = processor.Runner(executor=ex, chunksize=chunksize, maxchunks=max_chunks,
                                  skipbadfiles=skip_bad_files, schema=PFNanoAODSchema)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                output = runner(checked.fileset, proc, treename="Events")
        except Exception as err:
            bad = _bad_input_in(err)
            if bad is not None:
                raise bad from None
            raise
    if not output or "shards" not in output:
        output = proc.empty_output("none")
    return finalize(out_dir, output, fractions=tuple(fractions), min_count=flat_min_count,
                    extra={"skipped_files": checked.skipped})


def collect_mljec(paths: list[str], out_dir: str | Path, *, min_pt_raw: float = 15.0, max_abs_eta: float = 4.7,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, flat_min_count: float = 10.0,
                  overwrite: bool = False) -> dict:
    """Shards from ml-jec-vars files (``read_mljec``), one per file, in this process; returns the manifest.

    The format has no event id: ``run`` is 0, ``luminosityBlock`` the CRC-32 of the file name and
    ``event`` the entry number, and the split is the same hash of these. Its jets are all
    gen-matched; weight_natural is 1.
    """
    import zlib

    from coffea.processor import accumulate

    from processors.features import read_mljec

    if not paths:
        raise BadInputError("empty fileset: no ml-jec-vars file given")
    out_dir = Path(out_dir).resolve()
    _prepare_out_dir(out_dir, overwrite)
    outputs = []
    for path in paths:
        feats, info = read_mljec(str(path))
        keep = (info["pt_raw"] > min_pt_raw) & (np.abs(info["eta"]) < max_abs_eta) & (info["pt_gen"] > 0)
        entry = np.nonzero(keep)[0].astype(np.int64)
        lumi = np.full(len(entry), zlib.crc32(Path(path).name.encode()), dtype=np.int64)
        run = np.zeros(len(entry), dtype=np.int64)
        dataset = Path(path).name.removesuffix(".root")
        out = empty_output(dataset)
        out["cutflow"][dataset] = {"jets": len(keep), "jets_selected": len(entry)}
        if len(entry):
            columns = {k: info[k][keep] for k in ("pt_raw", "pt_gen", "eta", "eta_gen", "phi", "flavour")}
            columns.update(weight_natural=np.ones(len(entry), dtype=np.float32), run=run, luminosityBlock=lumi,
                           event=entry, split=event_split(run, lumi, entry, fractions))
            name = shard_name(dataset, str(path), 0, len(keep))
            write_shard(out_dir / name, columns, {k: v[keep] for k, v in feats.items()}, out)
        outputs.append(out)
    return finalize(out_dir, accumulate(outputs), fractions=tuple(fractions), min_count=flat_min_count,
                    extra={"input_format": "ml-jec-vars"})


def main(args: argparse.Namespace) -> int:
    condor_opts = {}
    if args.executor == "condor":
        from condor.cluster import condor_options_from_args

        condor_opts = condor_options_from_args(args)
    if args.processor == "jets" and args.format == "mljec":
        tic = time.time()
        paths = list(args.fileset)
        if len(paths) == 1 and paths[0].endswith(".json"):
            paths = [f for entry in load_fileset(paths, treename="Jets").values() for f in entry["files"]]
        manifest = collect_mljec(paths, args.out, min_pt_raw=args.min_pt_raw, max_abs_eta=args.max_abs_eta,
                                 fractions=tuple(args.split_fractions), flat_min_count=args.flat_min_count,
                                 overwrite=args.overwrite)
        _print_summary(manifest, args.out, time.time() - tic)
        return 0
    fileset = load_fileset(args.fileset)
    if not fileset or not any(entry.get("files") for entry in fileset.values()):
        raise BadInputError(f"{' '.join(args.fileset)}: empty fileset (no dataset lists an input file)")
    if args.processor == "electrons":
        return _collect_electrons(args, fileset, condor_opts)
    tic = time.time()
    manifest = collect(fileset, args.out, executor=args.executor, workers=args.workers, chunksize=args.chunksize,
                       max_chunks=args.max_chunks, min_pt_raw=args.min_pt_raw, max_abs_eta=args.max_abs_eta,
                       max_dr=args.max_dr, fractions=tuple(args.split_fractions),
                       flat_min_count=args.flat_min_count, skip_bad_files=args.skip_bad_files,
                       status=not args.no_progress, site=args.site, condor_opts=condor_opts,
                       overwrite=args.overwrite)
    _print_summary(manifest, args.out, time.time() - tic)
    return 0


def _collect_electrons(args: argparse.Namespace, fileset: dict, condor_opts: dict) -> int:
    """``collect --processor electrons``: parquet shards of the selected Z->ee electrons."""
    from rich.console import Console

    from processors.electrons import collect_electrons

    checked = check_fileset(fileset, args.skip_bad_files)
    tic = time.time()
    out = collect_electrons(checked.fileset, args.out, executor=args.executor, workers=args.workers,
                            kind=args.kind, chunksize=args.chunksize, max_chunks=args.max_chunks,
                            skip_bad_files=args.skip_bad_files, status=not args.no_progress, site=args.site,
                            condor_options=condor_opts)
    console = Console()
    console.print(f"caliber collect --processor electrons -> {args.out}: {len(out.get('shards', []))} shards "
                  f"in {time.time() - tic:.1f} s")
    for dataset, flow in sorted(out.get("cutflow", {}).items()):
        console.print(f"  {dataset}: " + ", ".join(f"{k} {v}" for k, v in flow.items()))
    for item in checked.skipped:
        console.print(f"  skipped {item['file']}: {item['reason']}")
    for w in sorted(out.get("warnings", ())):
        console.print(f"  warning: {w}")
    return 0


def _print_summary(manifest: dict, out: str, seconds: float) -> None:
    from rich.console import Console

    n = manifest["n_jets"]
    total = sum(n.values())
    console = Console()
    console.print(f"caliber collect -> {Path(out) / MANIFEST}")
    console.print(f"  shards: {len(manifest['shards'])}   jets: {total} "
                  f"(train {n['train']}, validation {n['validation']}, test {n['test']})   "
                  f"time: {seconds:.1f} s ({total / max(seconds, 1e-9):.0f} jets/s)")
    console.print(f"  max constituents: {manifest['max_constituents']}")
    for item in manifest.get("skipped_files", []):
        console.print(f"  skipped {item['file']}: {item['reason']}")
    if total == 0:
        console.print("  warning: no gen-matched jet passed the cuts")
