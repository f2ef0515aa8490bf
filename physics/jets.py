"""Jet physics on awkward arrays: raw pT, rho, gen matching, flavour, response and its histograms.

Pure functions (DESIGN section 4); ``processors.jets.JetResponseProcessor`` wires them.
"""
from __future__ import annotations

import awkward as ak
import hist
import numpy as np

from core.errors import BadInputError

#: flavour categories of the response histogram, in plotting order
FLAVOURS = ("uds", "c", "b", "g", "unknown")
#: |eta_gen| bin edges
ABS_ETA_EDGES = (0.0, 1.3, 2.5, 3.0, 5.0)
#: pt_gen bin edges (GeV), geometric 20-3000
PT_GEN_EDGES = tuple(np.round(np.geomspace(20.0, 3000.0, 21), 3))
#: reco pT bin edges (GeV) for files without generator record
PT_RECO_EDGES = tuple(np.round(np.geomspace(10.0, 3000.0, 25), 3))
#: maximum distance between a jet and its gen jet
MAX_MATCH_DR = 0.2


# --------------------------------------------------------------------------- pure physics

def raw_pt(jets: ak.Array) -> ak.Array:
    """Uncorrected jet pT (GeV): ``(1 - rawFactor) * pt``."""
    return (1.0 - jets.rawFactor) * jets.pt


def finite_pt(pt: ak.Array) -> ak.Array:
    """True where a jet pT (GeV) is finite: NaN/inf jets are excluded and counted, never binned."""
    return np.isfinite(pt)


def count_false(mask: ak.Array) -> int:
    """How many entries of a (jagged) boolean mask are False."""
    return int(ak.sum(~mask, axis=None))


def raw_mass(jets: ak.Array) -> ak.Array:
    """Uncorrected jet mass (GeV): ``(1 - rawFactor) * mass``."""
    return (1.0 - jets.rawFactor) * jets.mass


def jet_flavour(jets: ak.Array) -> ak.Array:
    """Flavour code: hadronFlavour if non-zero, else |partonFlavour| (b=5, c=4, uds=1-3, g=21, 0 unknown)."""
    hadron = ak.values_astype(jets.hadronFlavour, np.int32)
    parton = abs(ak.values_astype(jets.partonFlavour, np.int32))
    return ak.where(hadron != 0, hadron, parton)


#: flavour codes (``flavour_code``) of each histogram flavour name; any other code is "unknown"
FLAVOUR_CODES = {"uds": (1, 2, 3), "c": (4,), "b": (5,), "g": (21,)}


def flavour_category(flavour: np.ndarray) -> np.ndarray:
    """Flavour codes to the histogram's names: uds, c, b, g, unknown."""
    flavour = np.asarray(flavour)
    out = np.full(flavour.shape, "unknown", dtype=object)
    for name, codes in FLAVOUR_CODES.items():
        out[np.isin(flavour, codes)] = name
    return out.astype(str)


def event_rho(events: ak.Array, required: bool = True) -> ak.Array:
    """Pileup energy density rho (GeV per unit area), per event.

    NanoAOD up to v11 stores ``fixedGridRhoFastjetAll``; v12 and later
    ``Rho_fixedGridRhoFastjetAll``. When neither is there: ``BadInputError`` if
    ``required``, else zeros (for reco-level studies that only use rho as an input).
    """
    fields = events.fields
    if "fixedGridRhoFastjetAll" in fields:
        return events.fixedGridRhoFastjetAll
    if "Rho" in fields and "fixedGridRhoFastjetAll" in events.Rho.fields:
        return events.Rho.fixedGridRhoFastjetAll
    if not required:
        return ak.zeros_like(events.event, dtype=np.float64) if "event" in fields else ak.Array(np.zeros(len(events)))
    raise BadInputError("no rho branch (fixedGridRhoFastjetAll or Rho_fixedGridRhoFastjetAll)")


def wrap_phi(dphi):
    """Azimuthal difference wrapped to [-pi, pi) (rad); numpy or awkward.

    A float64 numpy array of more than a few values is wrapped without the (slow) float modulo, with the
    same values: for x = dphi + pi in (-2 pi, 4 pi) numpy's ``x % 2 pi`` is x, x + 2 pi (x < 0) or the exact
    x - 2 pi (x >= 2 pi); any other x (non-finite, far out) takes the modulo.
    """
    if not (isinstance(dphi, np.ndarray) and dphi.dtype == np.float64 and dphi.size > 64):
        return (dphi + np.pi) % (2.0 * np.pi) - np.pi
    x = dphi + np.pi
    out = np.where(x < 0.0, x + 2.0 * np.pi, x)
    np.subtract(x, 2.0 * np.pi, out=out, where=x >= 2.0 * np.pi)
    far = ~((x > -2.0 * np.pi) & (x < 4.0 * np.pi))  # NaN included
    if far.any():
        out[far] = x[far] % (2.0 * np.pi)
    out -= np.pi
    return out


def delta_r(eta1, phi1, eta2, phi2):
    """Distance in (eta, phi) with the azimuth difference wrapped to [-pi, pi)."""
    return np.sqrt((eta1 - eta2) ** 2 + wrap_phi(phi1 - phi2) ** 2)


def matched_gen_jets(jets: ak.Array, genjets: ak.Array, max_dr: float = MAX_MATCH_DR) -> ak.Array:
    """The gen jet of each jet through ``genJetIdx``, None where there is none or dR >= max_dr."""
    idx = jets.genJetIdx
    valid = (idx >= 0) & (idx < ak.num(genjets))
    gen = genjets[ak.mask(idx, valid)]
    dr = delta_r(jets.eta, jets.phi, gen.eta, gen.phi)
    return ak.mask(gen, ak.fill_none(dr < max_dr, False))


#: CMS production regressions stored in NanoAOD (v12+, UParT from v15): row -> Jet_* factors multiplying raw pT
REFERENCE_ROWS: dict[str, tuple[str, ...]] = {
    "PNetReg": ("PNetRegPtRawCorr",),
    "PNetReg+nu": ("PNetRegPtRawCorr", "PNetRegPtRawCorrNeutrino"),
    "UParTReg": ("UParTAK4RegPtRawCorr",),
    "UParTReg+nu": ("UParTAK4RegPtRawCorr", "UParTAK4RegPtRawCorrNeutrino"),
}


def reference_pts(jets: ak.Array, pt_raw: ak.Array) -> dict[str, tuple[ak.Array, ak.Array]]:
    """pT (GeV) of each CMS regression the file carries: ``pt_raw`` x the stored factors.

    Returns row -> (pT, defined): NanoAOD writes a factor of 0 where the regression was not
    evaluated, so a jet with any factor not finite or <= 0 is not defined and its pT is NaN.
    Rows whose branches the file lacks are absent.
    """
    fields = set(jets.fields)
    out = {}
    for row, factors in REFERENCE_ROWS.items():
        if not all(f in fields for f in factors):
            continue
        total = ak.ones_like(pt_raw)
        defined = ak.ones_like(pt_raw, dtype=bool)
        for f in factors:
            value = jets[f]
            defined = defined & np.isfinite(value) & (value > 0)
            total = total * value
        out[row] = (ak.where(defined, pt_raw * total, np.nan), defined)
    return out


def response(pt: ak.Array, pt_gen: ak.Array) -> ak.Array:
    """Jet response R = pt / pt_gen."""
    return pt / pt_gen


# --------------------------------------------------------------------------- histograms

def response_hist() -> hist.Hist:
    """Response by (correction, flavour, |eta_gen|, pt_gen, response) as in DESIGN section 4."""
    return hist.Hist(
        hist.axis.StrCategory([], name="correction", label="Correction", growth=True),
        hist.axis.StrCategory(list(FLAVOURS), name="flavour", label="Flavour"),
        hist.axis.Variable(ABS_ETA_EDGES, name="abs_eta_gen", label=r"$|\eta_{gen}|$"),
        hist.axis.Variable(PT_GEN_EDGES, name="pt_gen", label=r"$p_{T}^{gen}$ [GeV]"),
        hist.axis.Regular(400, 0.0, 2.0, name="response", label=r"$p_{T}/p_{T}^{gen}$"),
        storage=hist.storage.Double(),
    )


def reco_pt_hist() -> hist.Hist:
    """Corrected jet pT by (correction, |eta|): the reco-level view, also for collision data."""
    return hist.Hist(
        hist.axis.StrCategory([], name="correction", label="Correction", growth=True),
        hist.axis.Variable(ABS_ETA_EDGES, name="abs_eta", label=r"$|\eta|$"),
        hist.axis.Variable(PT_RECO_EDGES, name="pt", label=r"$p_{T}$ [GeV]"),
        storage=hist.storage.Double(),
    )


def flow_index(h: hist.Hist, axis: str, values) -> np.ndarray:
    """Bin of each value on ``h``'s axis, counted in ``h.view(flow=True)`` (underflow first where the axis
    has one): boost-histogram's own ``axis.index``, i.e. the bin ``h.fill`` puts the value in."""
    ax = h.axes[axis]
    edges = np.asarray(ax.edges) if isinstance(ax, hist.axis.Variable) else None
    if edges is not None and len(edges) <= 8 and ax.traits.underflow and ax.traits.overflow:
        # a few edges: the edges not above each value, counted (boost-histogram's rule: a value equal to the
        # last edge, +inf and NaN go to the overflow), faster than the bin search
        x = np.asarray(values, dtype=np.float64)
        below = np.zeros(x.shape, dtype=np.int64)
        for edge in edges:
            below += x < edge
        return len(edges) - below
    return np.asarray(ax.index(values), dtype=np.int64) + (1 if ax.traits.underflow else 0)


def flavour_index(h: hist.Hist, code: np.ndarray, axis: str = "flavour") -> np.ndarray:
    """Flavour codes (``flavour_code``) to the bins of ``h``'s flavour axis (``flavour_category``'s names),
    without making the strings."""
    lut = np.full(22, h.axes[axis].index("unknown"), dtype=np.int64)
    for name, codes in FLAVOUR_CODES.items():
        lut[list(codes)] = h.axes[axis].index(name)
    code = np.asarray(code)
    inside = (code >= 0) & (code < len(lut))
    return np.where(inside, lut[np.where(inside, code, 0)], lut[0])


def add_counts(h: hist.Hist, rows: dict[str, dict[str, np.ndarray]]) -> None:
    """``h.fill(correction=row, **values)`` for each row in order, with unit weights, from the values' bins
    (``flow_index``, ``flavour_index``; per row one array per other axis): one ``np.add.at`` per row on the
    histogram's storage.

    The rows' categories are added as the fills would add them (only rows with an entry, in this order),
    in one step: one entry of weight 0 each (growing the storage row by row costs a copy of it each
    time). The histogram equals the one filled value by value (Double storage: counts are exact sums).
    """
    rows = {name: index for name, index in rows.items() if len(next(iter(index.values()))) > 0}
    new = [name for name in rows if name not in list(h.axes["correction"])]
    if new:
        h.fill(correction=new, **{ax.name: [ax.value(0)] * len(new) for ax in h.axes if ax.name != "correction"},
               weight=0.0)
    view = h.view(flow=True)
    flat = view.ravel(order="K")
    contiguous = np.shares_memory(flat, view)
    for name, index in rows.items():
        row = h.axes["correction"].index(name)
        where = [row if ax.name == "correction" else index[ax.name] for ax in h.axes]
        if contiguous:
            linear = 0
            for w, stride in zip(where, view.strides):
                linear = linear + w * (stride // view.itemsize)
            np.add.at(flat, linear, 1.0)
        else:  # storage not contiguous: index the view itself
            np.add.at(view, tuple(np.broadcast_arrays(*where)), 1.0)


def flat_numpy(a) -> np.ndarray:
    """Any (jagged) array as a flat numpy array."""
    return ak.to_numpy(ak.flatten(a, axis=None)) if isinstance(a, ak.Array) else np.asarray(a)


# --------------------------------------------------------------------------- flat (numpy) jets for the processor

def flat_columns(collection: ak.Array, fields) -> dict[str, np.ndarray]:
    """Flat numpy arrays (one entry per object, events after events) of the named fields a jagged
    collection has; absent fields are left out."""
    have = set(collection.fields)
    fields = [f for f in fields if f in have]
    layout = collection.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.RecordArray):
        # the record's field buffers themselves, between the first and last offset (no per-field
        # projection and flatten of the jagged array: the same numbers)
        offsets = ak.to_numpy(ak.Array(layout.offsets.data))  # materialised if virtual
        start, stop = int(offsets[0]), int(offsets[-1])
        out = {}
        for f in fields:
            content = layout.content.content(f)
            if not (isinstance(content, ak.contents.NumpyArray) and len(content.inner_shape) == 0):
                out[f] = ak.to_numpy(ak.flatten(collection[f]))
            else:
                out[f] = ak.to_numpy(content)[start:stop]
        return out
    return {f: ak.to_numpy(ak.flatten(collection[f])) for f in fields}


def select_flat_jets(events: ak.Array, min_pt_raw: float, max_abs_eta: float, extra: tuple[str, ...] = (),
                     mass: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """The jets with a finite raw pT above ``min_pt_raw`` (GeV) and |eta| < ``max_abs_eta``, as flat numpy.

    Returns (columns, counts per event, jets with a non-finite raw pT). Columns: pt_raw, mass_raw
    (``raw_pt``, ``raw_mass``), eta, phi, area, rho (of the jet's event), ``event`` (its index in
    the chunk), ``index`` (its position in ``ak.flatten(events.Jet)``) and the ``extra`` Jet fields
    the file has, plus ``n_jets_all`` (the chunk's jets before selection). Same numbers as the jagged
    functions above, without jagged arrays. ``mass=False``: no mass_raw (Jet_mass is not read).
    """
    n_all = ak.to_numpy(ak.num(events.Jet)).astype(np.int64)
    cols = flat_columns(events.Jet, ("pt", "rawFactor", "eta", "phi", "area") + (("mass",) if mass else ())
                        + tuple(extra))
    pt_raw = (1.0 - cols["rawFactor"]) * cols["pt"]
    finite = finite_pt(pt_raw)
    keep = finite & (pt_raw > min_pt_raw) & (abs(cols["eta"]) < max_abs_eta)
    event_all = np.repeat(np.arange(len(n_all)), n_all)
    index = np.nonzero(keep)[0]
    event = event_all[index]
    out = {"pt_raw": pt_raw[index], "rho": ak.to_numpy(event_rho(events))[event], "event": event, "index": index,
           "n_jets_all": int(n_all.sum())}
    if mass:
        out["mass_raw"] = ((1.0 - cols["rawFactor"][index]) * cols["mass"][index])
    out.update({f: v[index] for f, v in cols.items() if f not in ("pt", "rawFactor", "mass")})
    return out, np.bincount(event, minlength=len(n_all)), int(np.sum(~finite))


def jets_at(events: ak.Array, index: np.ndarray) -> ak.Array:
    """``events.Jet`` reduced to the jets at flat positions ``index`` (``select_flat_jets``), still jagged."""
    n_all = ak.num(events.Jet)
    selected = np.zeros(int(ak.sum(n_all)), dtype=bool)
    selected[index] = True
    return events.Jet[ak.unflatten(selected, n_all)]


def match_gen_flat(jets: dict[str, np.ndarray], genjets: ak.Array,
                   max_dr: float = MAX_MATCH_DR) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``matched_gen_jets`` for flat jets (``select_flat_jets`` with extra ``genJetIdx``).

    Returns (matched mask per jet, gen jet columns pt, eta, phi of the matched jets).
    """
    n_gen = ak.to_numpy(ak.num(genjets)).astype(np.int64)
    gen = flat_columns(genjets, ("pt", "eta", "phi"))
    idx = jets["genJetIdx"]
    valid = np.flatnonzero(idx >= 0)  # the jets with a gen jet index, then those inside their event's gen jets
    event, idx = jets["event"][valid], idx[valid].astype(np.int64)
    inside = idx < n_gen[event]
    valid, event, idx = valid[inside], event[inside], idx[inside]
    where = (np.cumsum(n_gen) - n_gen)[event] + idx
    dr = delta_r(jets["eta"][valid], jets["phi"][valid], gen["eta"][where], gen["phi"][where])
    close = dr < max_dr
    matched = np.zeros(len(jets["genJetIdx"]), dtype=bool)
    matched[valid[close]] = True
    take = where[close]
    return matched, {k: v[take] for k, v in gen.items()}


def flavour_code(hadron: np.ndarray, parton: np.ndarray) -> np.ndarray:
    """``jet_flavour`` on flat numpy: hadronFlavour if non-zero, else |partonFlavour| (int32)."""
    hadron = np.asarray(hadron).astype(np.int32)
    parton = np.abs(np.asarray(parton).astype(np.int32))
    return np.where(hadron != 0, hadron, parton)
