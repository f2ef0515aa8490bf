"""The standard L1FastJet + L2Relative baseline with coffea's jetmet_tools.

A ``JECConfig`` names the correction files (JEC text files, or one correctionlib
JSON with the era and algorithm); ``build_jec_stack`` turns it into a
``JECStack`` (or ``CorrectionLibJECStack``) for ``CorrectedJetsFactory``.
Stacks are built once per process and cached, so pickled processors stay small.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np

from core.errors import BadInputError

#: what CorrectedJetsFactory calls each jet column in our jet tables
JEC_NAME_MAP = {
    "JetPt": "pt",
    "JetMass": "mass",
    "JetEta": "eta",
    "JetA": "area",
    "ptRaw": "pt_raw",
    "massRaw": "mass_raw",
    "Rho": "rho",
    "ptGenJet": "pt_gen",
}


@dataclass(frozen=True)
class JECConfig:
    """Where the baseline corrections come from.

    Either ``text_files`` (one JEC text file per level, applied in order) or
    ``correctionlib`` (a JSON file) with ``era`` (e.g. ``Summer22_22Sep2023_V3_MC``),
    ``algorithm`` (e.g. ``AK4PFPuppi``) and ``levels``.
    """

    text_files: tuple[str, ...] = ()
    correctionlib: str | None = None
    era: str | None = None
    algorithm: str | None = None
    levels: tuple[str, ...] = ("L1FastJet", "L2Relative")
    name: str = "L1L2"
    source: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "", base: Path | None = None) -> "JECConfig":
        """Build from a mapping (the ``jec:`` block of a YAML config); paths relative to ``base``."""
        if not isinstance(raw, dict):
            raise BadInputError(f"{source or 'JEC config'}: 'jec' must be a mapping, got {type(raw).__name__}")
        known = {"text_files", "correctionlib", "era", "algorithm", "levels", "name"}
        unknown = set(raw) - known
        if unknown:
            raise BadInputError(f"{source or 'JEC config'}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")

        def resolve(p: str) -> str:
            pp = Path(os.path.expandvars(str(p)))
            return str(pp if pp.is_absolute() or base is None else (base / pp))

        cfg = cls(
            text_files=tuple(resolve(p) for p in raw.get("text_files", ()) or ()),
            correctionlib=resolve(raw["correctionlib"]) if raw.get("correctionlib") else None,
            era=raw.get("era"),
            algorithm=raw.get("algorithm"),
            levels=tuple(raw.get("levels", ("L1FastJet", "L2Relative"))),
            name=str(raw.get("name", "L1L2")),
            source=source,
        )
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "JECConfig":
        """Read a YAML file whose top level (or ``jec:`` block) is the JEC config."""
        import yaml

        path = Path(path)
        if not path.exists():
            raise BadInputError(f"{path}: JEC config file does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise BadInputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if isinstance(raw, dict) and "jec" in raw:
            raw = raw["jec"]
        return cls.from_dict(raw or {}, source=str(path), base=path.parent)

    def validate(self) -> None:
        """Every file named exists; exactly one source is given."""
        where = self.source or "JEC config"
        if bool(self.text_files) == bool(self.correctionlib):
            raise BadInputError(f"{where}: give either 'text_files' or 'correctionlib', not both or neither")
        for f in self.text_files + ((self.correctionlib,) if self.correctionlib else ()):
            if not Path(f).exists():
                raise BadInputError(f"{f}: JEC file does not exist (named in {where})")
        if self.correctionlib and not (self.era and self.algorithm):
            raise BadInputError(f"{where}: a correctionlib JEC needs 'era' and 'algorithm'")


def _text_stack(files: tuple[str, ...]):
    from coffea.jetmet_tools import JECStack
    from coffea.lookup_tools import extractor

    ext = extractor()
    try:
        ext.add_weight_sets([f"* * {f}" for f in files])
        ext.finalize()
    except Exception as err:
        raise BadInputError(f"{', '.join(files)}: cannot be read as JEC text files ({err})") from None
    evaluator = ext.make_evaluator()
    names = [jec_name(f) for f in files]
    return JECStack({n: evaluator[n] for n in names})


def jec_name(path: str) -> str:
    """The correction name coffea's extractor gives a JEC text file (basename, no extensions)."""
    return os.path.basename(path).replace(".gz", "").split(".")[0]


class SequentialCorrectionLibJEC:
    """Levels from a correctionlib JSON applied one after the other, as FactorizedJetCorrector does.

    Each level is evaluated at the pT already corrected by the levels before it;
    the result is the total factor. Duck-types ``FactorizedJetCorrector`` for
    ``CorrectedJetsFactory``.
    """

    def __init__(self, corrections: list):
        self._corrections = corrections
        sig: list[str] = []
        for c in corrections:
            sig += [i.name for i in c.inputs if i.name not in sig]
        self._signature = sig

    @property
    def signature(self) -> list[str]:
        return self._signature

    def getCorrection(self, **kwargs):  # noqa: N802 (coffea's name)
        pt = kwargs["JetPt"]
        counts = ak.num(pt) if isinstance(pt, ak.Array) and pt.ndim > 1 else None
        flat = {k: np.asarray(ak.flatten(v) if counts is not None else v, dtype=np.float64) for k, v in kwargs.items()}
        total = np.ones_like(flat["JetPt"])
        current = flat["JetPt"].copy()
        for c in self._corrections:
            args = [current if i.name == "JetPt" else flat[i.name] for i in c.inputs]
            factor = np.asarray(c.evaluate(*args))
            total = total * factor
            current = current * factor
        return ak.unflatten(total, counts) if counts is not None else total


def _correctionlib_stack(cfg: JECConfig):
    import correctionlib
    from coffea.jetmet_tools import CorrectionLibJECStack

    try:
        cset = correctionlib.CorrectionSet.from_file(cfg.correctionlib)
    except Exception as err:
        raise BadInputError(f"{cfg.correctionlib}: cannot be read as a correctionlib file ({err})") from None
    corrections = []
    for level in cfg.levels:
        key = f"{cfg.era}_{level}_{cfg.algorithm}"
        try:  # ``key in cset`` itself raises IndexError('map::at') for some files
            corrections.append(cset[key])
        except Exception:  # noqa: BLE001 - a missing key, whatever correctionlib raises for it
            known = sorted({k.split("_L")[0] for k in list(cset.keys())})[:4] if hasattr(cset, "keys") else []
            raise BadInputError(f"{cfg.correctionlib}: no correction named {key!r} (another era? "
                                f"this file has {', '.join(known) or 'none'})") from None
    return CorrectionLibJECStack(jec=SequentialCorrectionLibJEC(corrections))


_STACKS: dict[JECConfig, object] = {}


def build_jec_stack(cfg: JECConfig):
    """The (cached, per process) jetmet_tools stack for a config."""
    if cfg not in _STACKS:
        cfg.validate()
        _STACKS[cfg] = _text_stack(cfg.text_files) if cfg.text_files else _correctionlib_stack(cfg)
    return _STACKS[cfg]


def build_jet_factory(cfg: JECConfig):
    """``CorrectedJetsFactory`` over our jet-table column names."""
    from coffea.jetmet_tools import CorrectedJetsFactory

    return CorrectedJetsFactory(JEC_NAME_MAP, build_jec_stack(cfg))


def l1l2_pt(jet_table: ak.Array, cfg: JECConfig) -> ak.Array:
    """Baseline-corrected pT (GeV) of a jet table with pt_raw, mass_raw, eta, area, rho.

    ``jet_table`` is jagged (events x jets) with the fields of ``JEC_NAME_MAP``;
    pt and mass start as the raw values, the factory applies every level.
    """
    corrected = build_jet_factory(cfg).build(jet_table)
    return corrected["pt"]


_FLAT: dict[JECConfig, object] = {}


def _numpy_tables(function) -> None:
    """Turn the parameter and clamp tables of one jetmet_tools level function into numpy in place.

    ``jme_standard_function`` keeps them as awkward arrays (bins x var) and indexes them for every
    call, which costs more than the formula; with one value per bin (text files binned in one
    variable) the numpy table gives the same numbers. Such a table is stored 1-D (one copy less per
    lookup), and a clamp table with the same value in every bin as one value, which jetmet_tools then
    applies as a scalar instead of gathering it jet by jet (the same clip). Tables that are not
    regular stay as they are.
    """
    tables = getattr(function, "_params", None)
    if isinstance(tables, list):
        function._params = [_one_column(_regular(t)) for t in tables]
    for name in ("_eval_clamp_mins", "_eval_clamp_maxs"):
        tables = getattr(function, name, None)
        if isinstance(tables, dict):
            setattr(function, name, {k: _uniform(_regular(t)) for k, t in tables.items()})


def _regular(table):
    try:
        return ak.to_numpy(table) if isinstance(table, ak.Array) else table
    except ValueError:  # jagged for real: keep the awkward table
        return table


def _one_column(table):
    """A numpy (bins, 1) table as (bins,): the same values for ``table[bin_indices]`` once flattened."""
    return table[:, 0] if isinstance(table, np.ndarray) and table.ndim == 2 and table.shape[1] == 1 else table


def _uniform(table):
    """A numpy clamp table whose entries are all equal as a one-entry table of that value, which
    jetmet_tools applies as a scalar bound (a list array: its ``ak.flatten`` is the cheapest);
    any other table unchanged."""
    if isinstance(table, np.ndarray) and table.ndim == 2 and table.size > 1 and np.all(table == table.flat[0]):
        return ak.unflatten(table.reshape(-1)[:1].copy(), [1])
    return table


def _binning_only(corrector) -> set[str]:
    """Inputs every level uses only to find its bin (never in its formula): those can be given as float64
    (exact for float32 values) so that the bin search needs no conversion of its own."""
    funcs = getattr(corrector, "_funcs", None)
    if not funcs:
        return set()
    binned = set().union(*(set(getattr(f, "_dim_order", ())) for f in funcs))
    in_formula = set().union(*(set(getattr(f, "_eval_vars", ())) for f in funcs))
    return binned - in_formula - {"JetPt", "JetE"}


def flat_corrector(cfg: JECConfig):
    """The stack's corrector (``FactorizedJetCorrector`` or ``SequentialCorrectionLibJEC``) prepared
    for flat numpy input, once per process: a copy whose level tables are numpy (``_numpy_tables``)."""
    if cfg not in _FLAT:
        import copy

        corrector = copy.deepcopy(build_jec_stack(cfg).jec)
        for function in getattr(corrector, "_funcs", ()):
            _numpy_tables(function)
        _FLAT[cfg] = corrector
    return _FLAT[cfg]


def l1l2_pt_flat(columns: dict[str, np.ndarray], cfg: JECConfig) -> np.ndarray:
    """Baseline-corrected pT (GeV) of flat jets: the cached stack's corrector evaluated on numpy.

    ``columns`` holds flat numpy arrays named as in ``JEC_NAME_MAP`` (pt_raw, mass_raw, eta, area,
    rho, ...). Same numbers as ``l1l2_pt`` (which goes through ``CorrectedJetsFactory``: the factor of
    ``jec.getCorrection`` on the raw pT, times the raw pT), without building jagged jet records.
    """
    corrector = flat_corrector(cfg)
    names = dict(JEC_NAME_MAP, JetPt=JEC_NAME_MAP["ptRaw"], JetMass=JEC_NAME_MAP["massRaw"])
    try:
        args = {k: columns[names[k]] for k in corrector.signature}
    except KeyError as err:
        raise BadInputError(f"{cfg.source or 'JEC config'}: the corrections need {err.args[0]!r}, "
                            f"which the jet table lacks") from None
    for k in _binning_only(corrector) & set(args):
        args[k] = np.asarray(args[k], dtype=np.float64)
    factor = corrector.getCorrection(**args)
    return np.asarray(factor) * columns[JEC_NAME_MAP["ptRaw"]]


def jec_columns(cfg: JECConfig) -> set[str]:
    """The jet-table columns (``JEC_NAME_MAP`` names: pt_raw, eta, area, rho, ...) the corrections read."""
    names = dict(JEC_NAME_MAP, JetPt=JEC_NAME_MAP["ptRaw"], JetMass=JEC_NAME_MAP["massRaw"])
    return {names.get(k, k) for k in flat_corrector(cfg).signature}
