"""JEC levels as the text files hold them: ``JECLevel``, its numpy evaluation, the files.

Shared by the derivation (``samples.derive_jec``) and the closure
(``samples.jec_closure``). ``JECLevel.factor`` evaluates a level like the text
file does; ``coffea_l1l2_pt`` reads the written files back through the project's
own JEC stack (``physics.jec``) so the two can be compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from physics.jets import FLAVOURS

#: |eta| edges of both levels (fit bins); the files mirror them to negative eta
ABS_ETA_EDGES = (0.0, 0.5, 1.0, 1.3, 1.7, 2.0, 2.5, 3.0, 3.5, 4.0, 4.7)
#: the text files extend the outermost bin to this |eta| (as CMS files do)
ETA_MAX_FILE = 5.191
#: reference rho (GeV per unit area) of the L1 formula's [3]
RHO_REF = 20.0
#: L1 evaluation ranges written in the file (clamps): rho (GeV), pT (GeV), area
L1_CLAMPS = {"Rho": (0.0, 200.0), "JetPt": (1.0, 6500.0), "JetA": (0.0, 10.0)}
#: x = Rho, y = JetPt, z = JetA (coffea substitutes the template letters in this order)
L1_FORMULA = "max(0.0001,1-(z/y)*([0]+[1]*(x-[3]))*(1+[2]*log(y)))"
#: flavour groups of the closure table: the response histogram's categories less "unknown"
FLAVOUR_GROUPS = tuple(f for f in FLAVOURS if f != "unknown")


# --------------------------------------------------------------------------- levels

@dataclass
class JECLevel:
    """One JEC level binned in signed eta: what the text file holds.

    ``eta_edges`` (n+1,) signed; ``clamps`` (n, n_vars, 2) evaluation ranges of
    ``variables``; ``params`` (n, n_params); ``formula`` in the text-file syntax.
    """

    level: str  # "L1FastJet" or "L2Relative"
    variables: tuple[str, ...]
    formula: str
    eta_edges: np.ndarray
    clamps: np.ndarray
    params: np.ndarray
    info: dict = field(default_factory=dict)

    def bin_index(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bin index, inside) of each eta; outside the edges the factor is 1, as in coffea."""
        eta = np.asarray(eta, dtype=np.float64)
        idx = np.clip(np.searchsorted(self.eta_edges, eta, side="right") - 1, 0, len(self.eta_edges) - 2)
        inside = (eta >= self.eta_edges[0]) & (eta <= self.eta_edges[-1])
        return idx, inside

    def clamp(self, name: str, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        j = self.variables.index(name)
        return np.clip(np.asarray(values, dtype=np.float64), self.clamps[idx, j, 0], self.clamps[idx, j, 1])

    def factor(self, eta, pt, rho=None, area=None) -> np.ndarray:
        """Correction factor at (eta, pT [GeV], rho [GeV], area), evaluated like the text file."""
        idx, inside = self.bin_index(eta)
        p = self.params[idx].astype(np.float64)
        pt_c = self.clamp("JetPt", pt, idx)
        if self.level == "L1FastJet":
            rho_c = self.clamp("Rho", rho, idx)
            area_c = self.clamp("JetA", area, idx)
            f = np.maximum(0.0001, 1.0 - area_c / pt_c * (p[:, 0] + p[:, 1] * (rho_c - p[:, 3]))
                           * (1.0 + p[:, 2] * np.log(pt_c)))
        elif self.level == "L2Relative":
            f = poly_log10(p, pt_c)
        else:
            raise ValueError(f"unknown level {self.level}")
        return np.where(inside, f, 1.0)


def poly_log10(params: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """sum_k params[:, k] * log10(pt)^k, row by row."""
    x = np.log10(pt)
    out = np.zeros_like(x)
    for k in range(params.shape[1] - 1, -1, -1):
        out = out * x + params[:, k]
    return out


def l2_formula(degree: int) -> str:
    """Horner form of a degree-``degree`` polynomial in log10(x) in the text-file syntax."""
    s = f"[{degree}]"
    for k in range(degree - 1, -1, -1):
        s = f"[{k}]+log10(x)*({s})"
    return s


def mirrored_edges(abs_edges=ABS_ETA_EDGES, eta_max: float = ETA_MAX_FILE) -> np.ndarray:
    """Signed eta edges of the files: -eta_max ... 0 ... eta_max."""
    pos = list(abs_edges[1:-1]) + [eta_max]
    return np.array([-e for e in reversed(pos)] + [0.0] + pos, dtype=np.float64)


def mirror_rows(rows_abs: np.ndarray) -> np.ndarray:
    """Per-|eta|-bin rows to per-signed-bin rows (negative side reversed)."""
    return np.concatenate([rows_abs[::-1], rows_abs], axis=0)


def abs_bin(eta: np.ndarray, abs_edges=ABS_ETA_EDGES) -> np.ndarray:
    """|eta| bin index (the last bin takes everything beyond), -1 never."""
    return np.clip(np.searchsorted(np.asarray(abs_edges), np.abs(eta), side="right") - 1, 0, len(abs_edges) - 2)


def binned_medians(values: np.ndarray, x: np.ndarray, edges: np.ndarray, min_count: int):
    """Median of ``values`` in bins of ``x``; returns (median, median error, count, bin index array)."""
    b = np.searchsorted(edges, x, side="right") - 1
    nb = len(edges) - 1
    med = np.full(nb, np.nan)
    err = np.full(nb, np.nan)
    cnt = np.zeros(nb, dtype=np.int64)
    for i in range(nb):
        v = values[b == i]
        cnt[i] = len(v)
        if len(v) >= min_count:
            q1, q2, q3 = np.quantile(v, [0.25, 0.5, 0.75])
            med[i] = q2
            err[i] = 1.2533 * (q3 - q1) / 1.349 / math.sqrt(len(v))
    return med, err, cnt


def apply_l1l2(l1: JECLevel, l2: JECLevel, pt_raw, eta, rho, area) -> tuple[np.ndarray, np.ndarray]:
    """(pt_L1, pt_L1L2) in GeV, levels applied in sequence like FactorizedJetCorrector."""
    pt_l1 = l1.factor(eta, pt_raw, rho=rho, area=area) * pt_raw
    return pt_l1, l2.factor(eta, pt_l1) * pt_l1


# --------------------------------------------------------------------------- text files

def format_jec_text(level: JECLevel) -> str:
    """The standard JEC text file of one level (header line, one row per eta bin)."""
    nvars = len(level.variables)
    header = (f"{{1 JetEta {nvars} {' '.join(level.variables)} {level.formula} Correction {level.level}}}")
    lines = [header]
    npar = level.params.shape[1]
    for i in range(len(level.eta_edges) - 1):
        cols = [f"{level.eta_edges[i]:.4f}", f"{level.eta_edges[i + 1]:.4f}", str(2 * nvars + npar)]
        for j in range(nvars):
            cols += [f"{level.clamps[i, j, 0]:.6g}", f"{level.clamps[i, j, 1]:.6g}"]
        cols += [f"{p:.9g}" for p in level.params[i]]
        lines.append(" ".join(cols))
    return "\n".join(lines) + "\n"


def write_jec_files(outdir: str | Path, name: str, levels: list[JECLevel], algorithm: str = "AK4PF") -> list[str]:
    """Write ``<name>_<level>_<algorithm>.txt`` for each level; returns the paths.

    ``name`` must be ``<campaign>_<era>_<MC|DATA>`` (coffea's FactorizedJetCorrector
    parses the file name into five underscore-separated fields).
    """
    parts = name.split("_")
    if len(parts) not in (3, 4) or "." in name:
        raise ValueError(f"JEC era name {name!r} must look like Campaign_Era_MC (3 or 4 fields, no dots)")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for level in levels:
        path = outdir / f"{name}_{level.level}_{algorithm}.txt"
        path.write_text(format_jec_text(level))
        paths.append(str(path))
    return paths


def write_jec_config(outdir: str | Path, name: str, paths: list[str]) -> Path:
    """Write ``<name>.yaml`` (the ``--jec`` config of ``runner.py run``) naming ``paths`` relative to it."""
    out = Path(outdir) / f"{name}.yaml"
    lines = [f"# L1FastJet + L2Relative derived by runner.py derive-jec ({name}); paths relative to this file.",
             "jec:", "  name: L1L2", "  text_files:"] + [f"    - {Path(p).name}" for p in paths]
    out.write_text("\n".join(lines) + "\n")
    return out


def coffea_l1l2_pt(paths: list[str], pt_raw, eta, rho, area) -> np.ndarray:
    """Corrected pT (GeV) of flat jets through the project's JEC stack (``physics.jec``) reading ``paths``.

    The files become a ``JECConfig``; coffea's extractor + JECStack +
    CorrectedJetsFactory evaluate them (``physics.jec.l1l2_pt``), as ``runner.py run`` does.
    """
    import awkward as ak

    from physics.jec import JECConfig, l1l2_pt

    cfg = JECConfig(text_files=tuple(str(p) for p in paths))
    n = len(pt_raw)
    zeros = np.zeros(n)
    table = ak.zip({"pt": np.asarray(pt_raw, dtype=np.float64), "mass": zeros,
                    "pt_raw": np.asarray(pt_raw, dtype=np.float64), "mass_raw": zeros,
                    "eta": np.asarray(eta, dtype=np.float64), "area": np.asarray(area, dtype=np.float64),
                    "rho": np.asarray(rho, dtype=np.float64), "pt_gen": zeros})
    jagged = ak.unflatten(table, np.array([n]))
    return ak.to_numpy(ak.flatten(l1l2_pt(jagged, cfg)))
