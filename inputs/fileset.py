"""Input files: filesets (JSON or ROOT paths) and the pre-check of each file."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import BadInputError

def load_fileset(specs: list[str], treename: str = "Events") -> dict:
    """A coffea fileset from a fileset JSON or from ROOT paths.

    ``specs`` is either one JSON file ``{"dataset": {"files": {path: tree}, "metadata": {...}}}``
    or one or more ROOT paths (each its own dataset, named after the file stem).
    Relative paths in a JSON fileset are taken relative to the JSON file.
    """
    if len(specs) == 1 and specs[0].endswith(".json"):
        path = Path(specs[0])
        if not path.exists():
            raise BadInputError(f"{path}: fileset JSON does not exist")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise BadInputError(f"{path}: not valid JSON ({err})") from None
        fileset = {}
        for dataset, entry in raw.items():
            files = entry.get("files") if isinstance(entry, dict) else entry
            if isinstance(files, list):
                files = {f: treename for f in files}
            if not isinstance(files, dict):
                raise BadInputError(f"{path}: dataset {dataset!r} has no 'files' mapping")
            resolved = {}
            for f, tree in files.items():
                fp = Path(f)
                if not fp.is_absolute() and "://" not in f:
                    fp = path.parent / fp
                resolved[str(fp)] = tree or treename
            fileset[dataset] = {"files": resolved, "metadata": dict(entry.get("metadata", {})) if isinstance(entry, dict) else {}}
            fileset[dataset]["metadata"].pop("dataset", None)
        return fileset
    fileset = {}
    for spec in specs:
        name = Path(spec).name.removesuffix(".root")
        base, i = name, 1
        while name in fileset:
            i += 1
            name = f"{base}_{i}"
        fileset[name] = {"files": {spec: treename}, "metadata": {}}
    if not fileset:
        raise BadInputError("empty fileset: give a fileset JSON or at least one ROOT file")
    return fileset


def check_file(path: str, treename: str) -> str | None:
    """The problem with one input file, or None when it can be read.

    Opens the file, finds the tree and reads the last basket of its first branch,
    which catches missing files, files that are not ROOT, missing trees and most truncations.
    """
    import uproot

    if "://" not in path and not os.path.exists(path):
        return "file does not exist"
    try:
        with uproot.open(path) as f:
            if treename not in f:
                return f"no '{treename}' tree (keys: {', '.join(sorted({k.split(';')[0] for k in f.keys()})) or 'none'})"
            tree = f[treename]
            if not hasattr(tree, "num_entries"):
                return f"'{treename}' is not a TTree"
            n = tree.num_entries
            if n > 0 and len(tree.branches):
                branch = tree.branches[0]
                branch.array(entry_start=max(0, n - 1), entry_stop=n, library="np")
    except Exception as err:  # uproot raises many kinds for damaged files
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"cannot be read as ROOT ({type(err).__name__}: {msg[:160]})"
    return None


@dataclass
class InputCheck:
    fileset: dict
    skipped: list[dict] = field(default_factory=list)


def check_fileset(fileset: dict, skip_bad_files: bool) -> InputCheck:
    """Check every file; raise on the first bad one, or drop and list bad ones."""
    good: dict = {}
    skipped: list[dict] = []
    for dataset, entry in fileset.items():
        files = {}
        for path, tree in entry["files"].items():
            problem = check_file(path, tree)
            if problem is None:
                files[path] = tree
            elif skip_bad_files:
                skipped.append({"dataset": dataset, "file": path, "reason": problem})
            else:
                raise BadInputError(f"{path}: {problem} (use --skip-bad-files to skip it)")
        if files:
            good[dataset] = {"files": files, "metadata": entry.get("metadata", {})}
    if not good:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped)
        raise BadInputError(f"no readable input file left ({reasons})")
    return InputCheck(good, skipped)


# --------------------------------------------------------------------------- branches

#: generator-level and bookkeeping branches collect needs besides the feature branches
COLLECT_BRANCHES = ("run", "luminosityBlock", "event", "Jet_genJetIdx", "Jet_hadronFlavour", "Jet_partonFlavour",
                    "GenJet_pt", "GenJet_eta", "GenJet_phi")


def required_branches() -> list[str]:
    """Every branch name ``collect`` reads (rho: either spelling, checked separately)."""
    from physics.features import REQUIRED_BRANCHES

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
