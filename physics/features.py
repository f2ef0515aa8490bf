"""Jagged constituent features of jets (DESIGN section 4), from PFNano and from ml-jec-vars.

Every jet gets four blocks of float32 features, in the order of ``FEATURE_NAMES``:

- ``globals`` (one row per jet): raw pT, log raw pT, eta, phi, raw mass, area, rho, nPV,
  multiplicity, pT_D and sigma2;
- ``charged`` / ``neutral`` (one row per PF candidate of the jet): kinematics, the
  kinematics relative to the jet, track quality, one-hot pdgId and PV association;
- ``sv`` (one row per secondary vertex of the jet): kinematics, relative kinematics,
  mass, flight distance and its significance, track count.

Both readers (``jet_features`` on NanoEvents in the PFNano layout, ``read_mljec`` on the
flat ml-jec-vars ``Jets`` tree) fill the same intermediate (per-jet numpy columns plus
per-candidate flat columns with per-jet counts) and share ``assemble_features``, so the
two give the same layout by construction.

Definitions (angles in rad, momenta in GeV):

- ``dpt = pt / pt_raw_jet`` (relative to the RAW jet pT: the constituents sum to it);
- ``deta = sign(eta_jet) * (eta - eta_jet)`` with sign(0) = +1;
- ``dphi = (phi - phi_jet + pi) mod 2 pi - pi`` (wrapped to [-pi, pi));
- ``pt_d = sqrt(sum pt_i^2) / sum pt_i`` over all PF constituents (0 for a jet without any);
- ``sigma2``: with weights ``w_i = pt_i^2`` and the w-weighted covariance matrix
  ``C = [[var(deta), cov(deta, dphi)], [cov, var(dphi)]]`` of the constituents (about their
  w-weighted centroid), ``sigma2 = sqrt(lambda_min(C))``, the length of the minor axis
  (the CMS quark-gluon "axis2"); 0 for a jet with fewer than two constituents.

Categorical features: charged one-hot of |pdgId| in (211, 11, 13); neutral one-hot of
pdgId in (22 photon, 130 neutral hadron, 1 HF hadron, 2 HF EM); charged one-hot of
``pvAssocQuality`` in ``PV_ASSOC_VALUES``. ``lost_inner_hits`` is the NanoAOD value
(-1 hit in the first pixel layer, 0 none lost, 1 one lost, 2 more), ``track_chi2`` the
normalised track chi2 (NanoAOD writes -1 where a candidate has no track details).

Optional inputs, 0 where the file lacks them: ``puppi_weight`` (PFCands_puppiWeight),
``from_pv`` (PFCands_fromPV, absent from current PFNano), ``dz_significance`` (needs
PFCands_dzErr). Missing or unusable values never give NaN: d0 / dz significances are 0
where the uncertainty is not positive, and every output is finite.
"""
from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from core.errors import BadInputError
from physics.constituents import _associated, _flat, _offsets, selected_jet_index  # noqa: F401 (re-exported)
from physics.jets import wrap_phi

#: pdgId categories of charged candidates (|pdgId|): charged hadron, electron, muon
CHARGED_PDGIDS = (211, 11, 13)
#: pdgId categories of neutral candidates: photon, neutral hadron, HF hadron, HF EM
NEUTRAL_PDGIDS = (22, 130, 1, 2)
#: values of pat::PackedCandidate::PVAssociationQuality stored as ``pvAssocQuality``:
#: 0 NotReconstructedPrimary, 1 OtherDeltaZ, 4 CompatibilityBTag, 5 CompatibilityDz,
#: 6 UsedInFitLoose, 7 UsedInFitTight (other values give an all-zero one-hot)
PV_ASSOC_VALUES = (0, 1, 4, 5, 6, 7)

FEATURE_NAMES: dict[str, list[str]] = {
    "globals": ["pt_raw", "log_pt_raw", "eta", "phi", "mass_raw", "area", "rho", "n_pv",
                "multiplicity", "pt_d", "sigma2"],
    "charged": ["pt", "eta", "phi", "dpt", "deta", "dphi", "d0", "d0_significance", "dz",
                "dz_significance", "track_chi2", "lost_inner_hits", "puppi_weight", "from_pv",
                "is_charged_hadron", "is_electron", "is_muon"]
               + [f"pv_assoc_{v}" for v in PV_ASSOC_VALUES],
    "neutral": ["pt", "eta", "phi", "dpt", "deta", "dphi", "puppi_weight",
                "is_photon", "is_neutral_hadron", "is_hf_hadron", "is_hf_em"],
    "sv": ["pt", "eta", "phi", "dpt", "deta", "dphi", "mass", "flight_distance",
           "flight_significance", "n_tracks"],
}
COLLECTIONS = ("charged", "neutral", "sv")


# --------------------------------------------------------------------------- pure physics

def relative_kinematics(pt, eta, phi, jet_pt, jet_eta, jet_phi):
    """(dpt, deta, dphi) of constituents relative to their jet (DESIGN section 4).

    ``dpt = pt / jet_pt``, ``deta = sign(jet_eta) (eta - jet_eta)`` (sign(0) = +1),
    ``dphi`` wrapped to [-pi, pi). Arguments broadcast (numpy or awkward); jet_pt > 0.
    """
    sign = (jet_eta >= 0) * 2.0 - 1.0
    dpt = pt / jet_pt
    return dpt, sign * (eta - jet_eta), wrap_phi(phi - jet_phi)


def pt_d(pt: ak.Array) -> ak.Array:
    """pT_D = sqrt(sum pt_i^2) / sum pt_i per jet (pt: jagged, jets x constituents); 0 without constituents
    (``pt_d_flat`` on the flattened constituents)."""
    counts = ak.to_numpy(ak.num(pt, axis=1))
    return ak.Array(pt_d_flat(_flat(pt).astype(np.float64), _jet_of(counts), len(counts)))


def sigma2(pt: ak.Array, deta: ak.Array, dphi: ak.Array) -> ak.Array:
    """Minor axis sqrt(lambda_min) of the pt^2-weighted (deta, dphi) covariance per jet (rad; jagged, jets x
    constituents). The covariance is taken about the pt^2-weighted centroid (module docstring); jets with
    no constituent or a zero total weight give 0 (``sigma2_flat`` on the flattened constituents)."""
    counts = ak.to_numpy(ak.num(pt, axis=1))
    flat = (_flat(x).astype(np.float64) for x in (pt, deta, dphi))
    return ak.Array(sigma2_flat(*flat, _jet_of(counts), len(counts)))


def _jet_of(counts: np.ndarray) -> np.ndarray:
    """The jet of each flat constituent, from the constituents per jet."""
    return np.repeat(np.arange(len(counts)), counts)


def _jet_sum(values: np.ndarray, jet_of: np.ndarray, n_jets: int) -> np.ndarray:
    """Per-jet sum of flat float64 ``values`` (entries of jet ``jet_of``), in storage order."""
    return np.bincount(jet_of, weights=values, minlength=n_jets)


def pt_d_flat(pt: np.ndarray, jet_of: np.ndarray, n_jets: int) -> np.ndarray:
    """``pt_d`` on flat constituents (``jet_of``: the jet of each entry): numpy, no awkward layout."""
    s1 = _jet_sum(pt, jet_of, n_jets)
    s2 = _jet_sum(pt * pt, jet_of, n_jets)
    return np.where(s1 > 0, np.sqrt(s2) / np.where(s1 > 0, s1, 1.0), 0.0)


def sigma2_flat(pt: np.ndarray, deta: np.ndarray, dphi: np.ndarray, jet_of: np.ndarray, n_jets: int) -> np.ndarray:
    """``sigma2`` on flat constituents (``jet_of``: the jet of each entry): numpy, no awkward layout."""
    w = pt * pt
    sw = _jet_sum(w, jet_of, n_jets)
    norm = np.where(sw > 0, sw, 1.0)
    m_eta = _jet_sum(w * deta, jet_of, n_jets) / norm
    m_phi = _jet_sum(w * dphi, jet_of, n_jets) / norm
    a = _jet_sum(w * deta * deta, jet_of, n_jets) / norm - m_eta * m_eta
    c = _jet_sum(w * dphi * dphi, jet_of, n_jets) / norm - m_phi * m_phi
    b = _jet_sum(w * deta * dphi, jet_of, n_jets) / norm - m_eta * m_phi
    lam_min = 0.5 * (a + c) - np.sqrt(0.25 * (a - c) ** 2 + b * b)
    return np.where(sw > 0, np.sqrt(np.maximum(lam_min, 0.0)), 0.0)


def one_hot(values: np.ndarray, categories: tuple[int, ...]) -> np.ndarray:
    """(n, len(categories)) float32 one-hot of ``values``; a value in no category gives a zero row."""
    values = np.asarray(values)
    return (values[:, None] == np.asarray(categories)[None, :]).astype(np.float32)


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where den > 0, else 0 (for significances d0/d0Err)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


# --------------------------------------------------------------------------- assembly

@dataclass
class JetTable:
    """Per-jet inputs of the features (flat numpy, one entry per jet): GeV and rad."""

    pt_raw: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass_raw: np.ndarray
    area: np.ndarray
    rho: np.ndarray
    n_pv: np.ndarray


@dataclass
class Constituents:
    """Flat per-candidate columns of one collection plus the number per jet.

    ``columns`` holds the raw inputs (names below); ``counts[j]`` the entries of jet j,
    stored jet after jet. ``has_direction`` is False where the format has no eta/phi
    (then eta, phi, deta and dphi are 0).
    """

    columns: dict[str, np.ndarray]
    counts: np.ndarray
    has_direction: bool = True


def _col(c: Constituents, name: str, default: float = 0.0) -> np.ndarray:
    n = int(np.sum(c.counts))
    value = c.columns.get(name)
    if value is None:
        return np.full(n, default, dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


def _raw(c: Constituents, name: str) -> np.ndarray:
    """A column as stored (0 where absent): for features that are the value itself (``_stack32`` rounds it to
    float32 directly, the same value as through float64)."""
    value = c.columns.get(name)
    return np.zeros(int(np.sum(c.counts)), dtype=np.float32) if value is None else np.asarray(value)


def _relative(c: Constituents, jet: JetTable, jet_of: np.ndarray) -> dict[str, np.ndarray]:
    """pt, eta, phi, dpt, deta, dphi of a collection, flat, as float64 (``jet_of``: the jet of each entry)."""
    pt = _col(c, "pt")
    eta, phi = _col(c, "eta"), _col(c, "phi")
    jet_pt = np.maximum(jet.pt_raw[jet_of].astype(np.float64, copy=False), 1e-6)
    dpt, deta, dphi = relative_kinematics(pt, eta, phi, jet_pt,
                                          jet.eta[jet_of].astype(np.float64, copy=False),
                                          jet.phi[jet_of].astype(np.float64, copy=False))
    if not c.has_direction:
        eta, phi = np.zeros_like(pt), np.zeros_like(pt)
        deta, dphi = np.zeros_like(pt), np.zeros_like(pt)
    return {"pt": pt, "eta": eta, "phi": phi, "dpt": dpt, "deta": deta, "dphi": dphi}


#: rows of the (n, F) feature matrix written at a time: a block (~100 kB) stays in cache while every
#: column is written into it (column by column over the whole matrix, each column touched every cache line)
STACK_ROWS = 16384


@dataclass
class OneHot:
    """A one-hot block of ``_stack32``: ``values`` compared with ``categories`` (written block by block, no
    (n, k) temporary); the same values as ``one_hot``."""

    values: np.ndarray
    categories: tuple[int, ...]


def _stack32(columns: list, n_features: int) -> np.ndarray:
    """Columns (1-D, or 2-D blocks, or ``OneHot``) side by side as one (n, F) float32 matrix.

    NaN and +-inf become 0: the last guard of the contract that every feature is finite. Written
    ``STACK_ROWS`` rows at a time (the same values as whole-column writes, several times faster).
    """
    def width(col) -> int:
        if isinstance(col, OneHot):
            return len(col.categories)
        return 1 if col.ndim == 1 else col.shape[1]

    columns = [col if isinstance(col, OneHot) else np.asarray(col) for col in columns]
    n = len(columns[0].values if isinstance(columns[0], OneHot) else columns[0])
    widths = [width(col) for col in columns]
    if sum(widths) != n_features:
        raise ValueError(f"{sum(widths)} feature columns for {n_features} names")
    out = np.empty((n, n_features), dtype=np.float32)
    sources = [(np.asarray(col.values)[:, None], np.asarray(col.categories)[None, :]) if isinstance(col, OneHot)
               else (col.reshape(n, w), None) for col, w in zip(columns, widths)]
    starts = np.concatenate([[0], np.cumsum(widths)]).tolist()
    finite = True
    for first in range(0, n, STACK_ROWS):
        last = min(n, first + STACK_ROWS)
        block = out[first:last]
        for (values, categories), i, j in zip(sources, starts[:-1], starts[1:]):
            block[:, i:j] = values[first:last] if categories is None else values[first:last] == categories
        finite = finite and bool(np.isfinite(block).all())
    if not finite:
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def _pdg(c: Constituents) -> np.ndarray:
    """|pdgId| of a collection as integers (for its one-hot block)."""
    return np.abs(_col(c, "pdgId")).astype(np.int64)


def _jagged(matrix: np.ndarray, counts: np.ndarray) -> ak.Array:
    """(sum counts, F) float32 numpy -> (n_jets, var, F) awkward float32."""
    inner = ak.from_numpy(matrix, regulararray=True)
    return ak.unflatten(inner, np.asarray(counts, dtype=np.int64), axis=0)


def assemble_features(jet: JetTable, charged: Constituents, neutral: Constituents,
                      sv: Constituents) -> dict[str, ak.Array]:
    """Feature blocks of ``FEATURE_NAMES`` from the per-jet and per-candidate inputs.

    Input columns: charged ``pt eta phi pdgId d0 d0Err dz dzErr trkChi2 lostInnerHits
    pvAssocQuality [puppiWeight] [fromPV]`` (``d0_significance`` replaces d0/d0Err when given);
    neutral ``pt eta phi pdgId [puppiWeight]``;
    sv ``pt eta phi mass dlen dlenSig ntracks``. Absent optional columns are 0.
    """
    out: dict[str, ak.Array] = {}
    jet_of = {name: _jet_of(c.counts) for name, c in (("charged", charged), ("neutral", neutral), ("sv", sv))}

    ch = _relative(charged, jet, jet_of["charged"])
    if "d0_significance" in charged.columns:
        d0_significance = _col(charged, "d0_significance")
    else:
        d0_significance = safe_ratio(_col(charged, "d0"), _col(charged, "d0Err"))
    ch_cols = [ch[k] for k in ("pt", "eta", "phi", "dpt", "deta", "dphi")] + [
        _raw(charged, "d0"), d0_significance,
        _raw(charged, "dz"), safe_ratio(_col(charged, "dz"), _col(charged, "dzErr")),
        _raw(charged, "trkChi2"), _raw(charged, "lostInnerHits"),
        _raw(charged, "puppiWeight"), _raw(charged, "fromPV"),
        OneHot(_pdg(charged), CHARGED_PDGIDS), OneHot(_col(charged, "pvAssocQuality").astype(np.int64), PV_ASSOC_VALUES),
    ]
    out["charged"] = _jagged(_stack32(ch_cols, len(FEATURE_NAMES["charged"])), charged.counts)

    ne = _relative(neutral, jet, jet_of["neutral"])
    ne_matrix = _stack32([ne[k] for k in ("pt", "eta", "phi", "dpt", "deta", "dphi")]
                         + [_raw(neutral, "puppiWeight"), OneHot(_pdg(neutral), NEUTRAL_PDGIDS)],
                         len(FEATURE_NAMES["neutral"]))
    out["neutral"] = _jagged(ne_matrix, neutral.counts)

    s = _relative(sv, jet, jet_of["sv"])
    sv_matrix = _stack32([s[k] for k in ("pt", "eta", "phi", "dpt", "deta", "dphi")]
                         + [_raw(sv, "mass"), _raw(sv, "dlen"), _raw(sv, "dlenSig"), _raw(sv, "ntracks")],
                         len(FEATURE_NAMES["sv"]))
    out["sv"] = _jagged(sv_matrix, sv.counts)

    # all PF constituents of each jet, for multiplicity, pT_D and sigma2: flat numpy, charged then neutral
    n_jets = len(jet.pt_raw)
    pf_jet = np.concatenate([jet_of["charged"], jet_of["neutral"]])
    pf_pt, pf_deta, pf_dphi = (np.concatenate([ch[k], ne[k]]) for k in ("pt", "deta", "dphi"))
    pt_raw = jet.pt_raw.astype(np.float64)
    globals_ = _stack32([
        pt_raw, np.log(np.maximum(pt_raw, 1e-3)), jet.eta, jet.phi, jet.mass_raw, jet.area, jet.rho, jet.n_pv,
        np.asarray(charged.counts) + np.asarray(neutral.counts),
        pt_d_flat(pf_pt, pf_jet, n_jets), sigma2_flat(pf_pt, pf_deta, pf_dphi, pf_jet, n_jets),
    ], len(FEATURE_NAMES["globals"]))
    out["globals"] = ak.from_numpy(globals_, regulararray=True)
    return {k: out[k] for k in ("globals",) + COLLECTIONS}


# --------------------------------------------------------------------------- PFNano reader

#: branches ``jet_features`` needs: collection -> fields (``run``-like scalars under "")
REQUIRED_BRANCHES: dict[str, tuple[str, ...]] = {
    "Jet": ("pt", "eta", "phi", "mass", "rawFactor", "area"),
    "PFCands": ("pt", "eta", "phi", "pdgId", "charge", "d0", "d0Err", "dz", "trkChi2",
                "lostInnerHits", "pvAssocQuality"),
    "JetPFCands": ("jetIdx", "pFCandsIdx"),
    "SV": ("pt", "eta", "phi", "mass", "dlen", "dlenSig", "ntracks"),
    "JetSVs": ("jetIdx", "sVIdx"),
    "PV": ("npvs",),
}
#: optional PF candidate branches, 0 where absent
OPTIONAL_PFCAND_BRANCHES = ("dzErr", "puppiWeight", "fromPV")
#: the PF candidate columns the neutral features use (``assemble_features``)
NEUTRAL_INPUTS = ("pt", "eta", "phi", "pdgId", "puppiWeight")


def _source(events) -> str:
    try:
        return str(events.metadata.get("filename") or "events")
    except Exception:  # plain awkward arrays have no metadata
        return "events"


def check_branches(events, needed_by: str = "jet features") -> None:
    """Raise BadInputError, one line naming the file, what is missing and ``needed_by`` (e.g. "model 'X'").

    A file without jet constituents (standard NanoAOD: no PFCands / JetPFCands) is said so in words.
    """
    fields = set(events.fields)
    src = _source(events)
    if "Jet" not in fields:
        raise BadInputError(f"{src}: no Jet collection (scouting NanoAOD?): {needed_by} needs Jet_* branches")
    lacking = [c for c in ("PFCands", "JetPFCands") if c not in fields]
    if lacking:
        raise BadInputError(f"{src}: standard NanoAOD has no {' / '.join(lacking)} (missing branch "
                            f"{lacking[0]}_{REQUIRED_BRANCHES[lacking[0]][0]}): {needed_by} needs PFNano jet constituents")
    for coll, names in REQUIRED_BRANCHES.items():
        if coll not in fields:
            raise BadInputError(f"{src}: missing branch {coll}_{names[0]} (collection {coll}): {needed_by} needs it")
        have = set(events[coll].fields)
        for name in names:
            if name not in have:
                raise BadInputError(f"{src}: missing branch {coll}_{name}: {needed_by} needs it")
    if "fixedGridRhoFastjetAll" not in fields and not ("Rho" in fields and "fixedGridRhoFastjetAll" in events.Rho.fields):
        raise BadInputError(f"{src}: missing branch fixedGridRhoFastjetAll (or Rho_fixedGridRhoFastjetAll): "
                            f"{needed_by} needs rho")


def jet_features(events, jets, index: np.ndarray | None = None) -> dict[str, ak.Array]:
    """Feature blocks (``FEATURE_NAMES``) of ``jets``, a selection of ``events.Jet`` (PFNano layout).

    Returns ``globals`` (n_jets, G) and ``charged``/``neutral``/``sv`` (n_jets, var, F), float32,
    one row per jet in ``ak.flatten(jets)`` order. Constituents are grouped through
    ``JetPFCands`` (jetIdx, pFCandsIdx) and ``JetSVs`` (jetIdx, sVIdx), whatever their
    storage order; charged = charge != 0. JetSVs rows whose SV is not in the stored ``SV``
    collection (sVIdx < 0) are dropped. Raises BadInputError naming the file and a missing branch.
    ``index``: the position of each jet in ``ak.flatten(events.Jet)`` when the caller knows it
    (saves finding the jets again by their (eta, phi)).
    """
    from physics.jets import event_rho, raw_mass, raw_pt

    check_branches(events)
    n_jets_event = ak.to_numpy(ak.num(events.Jet)).astype(np.int64)
    jet_off = _offsets(n_jets_event)
    n_sel = ak.to_numpy(ak.num(jets)).astype(np.int64)
    event_of_sel = np.repeat(np.arange(len(n_sel)), n_sel)
    wanted = (np.asarray(index, dtype=np.int64) if index is not None
              else jet_off[event_of_sel] + selected_jet_index(events, jets))

    rho = ak.to_numpy(event_rho(events)).astype(np.float64)
    npv = ak.to_numpy(events.PV.npvs).astype(np.float64)
    table = JetTable(
        pt_raw=_flat(raw_pt(jets)).astype(np.float64), eta=_flat(jets.eta).astype(np.float64),
        phi=_flat(jets.phi).astype(np.float64), mass_raw=_flat(raw_mass(jets)).astype(np.float64),
        area=_flat(jets.area).astype(np.float64), rho=rho[event_of_sel], n_pv=npv[event_of_sel],
    )

    # PF candidates through JetPFCands
    pf = events.PFCands
    pf_index, counts = _associated(pf, events.JetPFCands, "pFCandsIdx", n_jets_event, wanted)
    present = set(pf.fields)
    names = REQUIRED_BRANCHES["PFCands"] + tuple(n for n in OPTIONAL_PFCAND_BRANCHES if n in present)
    flat_pf = {n: _flat(pf[n]) for n in names}
    is_charged = flat_pf["charge"][pf_index] != 0
    jet_of = _jet_of(counts)
    ch_counts = np.bincount(jet_of[is_charged], minlength=len(counts))
    ne_counts = counts - ch_counts
    # each collection gathered once from the candidates, in jet order; neutrals only what they use
    ch_index, ne_index = pf_index[is_charged], pf_index[~is_charged]
    charged = Constituents({n: v[ch_index] for n, v in flat_pf.items()}, ch_counts)
    neutral = Constituents({n: flat_pf[n][ne_index] for n in NEUTRAL_INPUTS if n in flat_pf}, ne_counts)

    # secondary vertices through JetSVs
    svs = events.SV
    sv_index, sv_counts = _associated(svs, events.JetSVs, "sVIdx", n_jets_event, wanted)
    sv = Constituents({n: _flat(svs[n])[sv_index] for n in REQUIRED_BRANCHES["SV"]}, sv_counts)

    return assemble_features(table, charged, neutral, sv)


# --------------------------------------------------------------------------- ml-jec-vars reader

#: ml-jec-vars branches read by ``read_mljec`` (tree ``Jets``)
MLJEC_BRANCHES = (
    "pt", "eta", "phi", "mass", "area", "rho", "num_pv", "pt_gen", "eta_gen", "phi_gen",
    "hadron_flavor", "parton_flavor", "pt_full_corr",
    "ch_id", "ch_pt", "ch_eta", "ch_phi", "ch_pv_ass", "ch_dxy", "ch_dxy_significance", "ch_dz",
    "ch_lost_hits", "ch_norm_chi2",
    "ne_id", "ne_pt", "ne_eta", "ne_phi",
    "sv_pt", "sv_mass", "sv_distance", "sv_significance", "sv_num_tracks",
)


def read_mljec(path: str, treename: str = "Jets") -> tuple[dict[str, ak.Array], dict[str, np.ndarray]]:
    """Features of an ml-jec-vars file (one entry per jet) in the ``FEATURE_NAMES`` layout.

    Mapping: jet ``pt`` is the raw pT, ``mass`` the raw mass; charged d0 = ``ch_dxy``,
    d0_significance = ``ch_dxy_significance``, track_chi2 = ``ch_norm_chi2``,
    lost_inner_hits = ``ch_lost_hits``, pv_assoc from ``ch_pv_ass``; sv flight_distance =
    ``sv_distance``, flight_significance = ``sv_significance``.
    Features the format lacks are 0: charged ``dz_significance``, ``puppi_weight``, ``from_pv``;
    neutral ``puppi_weight``; sv ``eta``, ``phi``, ``deta``, ``dphi``.
    The info dict holds per-jet numpy arrays: pt_raw, pt_gen, eta, eta_gen, phi, phi_gen,
    flavour (DESIGN section 4) and pt_full_corr (the CMS standard correction).
    """
    import uproot

    try:
        file = uproot.open(path)
    except FileNotFoundError:
        raise BadInputError(f"{path}: file does not exist") from None
    except Exception as err:
        raise BadInputError(f"{path}: cannot be read as ROOT ({type(err).__name__}: {err})") from None
    with file:
        if treename not in file:
            raise BadInputError(f"{path}: no '{treename}' tree (not an ml-jec-vars file)")
        tree = file[treename]
        keys = set(tree.keys())
        for name in MLJEC_BRANCHES:
            if name not in keys:
                raise BadInputError(f"{path}: missing branch {name} (tree {treename})")
        a = tree.arrays(list(MLJEC_BRANCHES), library="ak")

    def np64(x):
        return ak.to_numpy(x).astype(np.float64)

    def flat(x):
        return ak.to_numpy(ak.flatten(x)).astype(np.float64)

    table = JetTable(pt_raw=np64(a.pt), eta=np64(a.eta), phi=np64(a.phi), mass_raw=np64(a.mass),
                     area=np64(a.area), rho=np64(a.rho), n_pv=np64(a.num_pv))
    charged = Constituents({
        "pt": flat(a.ch_pt), "eta": flat(a.ch_eta), "phi": flat(a.ch_phi), "pdgId": flat(a.ch_id),
        "d0": flat(a.ch_dxy), "d0_significance": flat(a.ch_dxy_significance), "dz": flat(a.ch_dz),
        "trkChi2": flat(a.ch_norm_chi2),
        "lostInnerHits": flat(a.ch_lost_hits), "pvAssocQuality": flat(a.ch_pv_ass),
    }, ak.to_numpy(ak.num(a.ch_pt)))
    neutral = Constituents({"pt": flat(a.ne_pt), "eta": flat(a.ne_eta), "phi": flat(a.ne_phi),
                            "pdgId": flat(a.ne_id)}, ak.to_numpy(ak.num(a.ne_pt)))
    sv = Constituents({"pt": flat(a.sv_pt), "mass": flat(a.sv_mass), "dlen": flat(a.sv_distance),
                       "dlenSig": flat(a.sv_significance), "ntracks": flat(a.sv_num_tracks)},
                      ak.to_numpy(ak.num(a.sv_pt)), has_direction=False)
    features = assemble_features(table, charged, neutral, sv)

    hadron = ak.to_numpy(a.hadron_flavor).astype(np.int64)
    parton = np.abs(ak.to_numpy(a.parton_flavor).astype(np.int64))
    info = {
        "pt_raw": table.pt_raw, "pt_gen": np64(a.pt_gen), "eta": table.eta, "eta_gen": np64(a.eta_gen),
        "phi": table.phi, "phi_gen": np64(a.phi_gen), "flavour": np.where(hadron != 0, hadron, parton),
        "pt_full_corr": np64(a.pt_full_corr),
    }
    return features, info
