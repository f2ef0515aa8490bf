"""Jet response processor: raw pT, gen matching, flavour, L1L2 baseline, DNN corrections.

Small pure functions on awkward arrays do the physics; ``JetResponseProcessor``
only wires them together and fills ``hist`` histograms (DESIGN section 4).
"""
from __future__ import annotations

import awkward as ak
import hist
import numpy as np
from coffea import processor

from processors.jec import JECConfig, l1l2_pt

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


def raw_mass(jets: ak.Array) -> ak.Array:
    """Uncorrected jet mass (GeV): ``(1 - rawFactor) * mass``."""
    return (1.0 - jets.rawFactor) * jets.mass


def jet_flavour(jets: ak.Array) -> ak.Array:
    """Flavour code: hadronFlavour if non-zero, else |partonFlavour| (b=5, c=4, uds=1-3, g=21, 0 unknown)."""
    hadron = ak.values_astype(jets.hadronFlavour, np.int32)
    parton = abs(ak.values_astype(jets.partonFlavour, np.int32))
    return ak.where(hadron != 0, hadron, parton)


def flavour_category(flavour: np.ndarray) -> np.ndarray:
    """Flavour codes to the histogram's names: uds, c, b, g, unknown."""
    flavour = np.asarray(flavour)
    out = np.full(flavour.shape, "unknown", dtype=object)
    out[(flavour >= 1) & (flavour <= 3)] = "uds"
    out[flavour == 4] = "c"
    out[flavour == 5] = "b"
    out[flavour == 21] = "g"
    return out.astype(str)


def event_rho(events: ak.Array) -> ak.Array:
    """Pileup energy density rho (GeV per unit area), per event.

    NanoAOD up to v11 stores ``fixedGridRhoFastjetAll``; v12 and later
    ``Rho_fixedGridRhoFastjetAll``.
    """
    fields = events.fields
    if "fixedGridRhoFastjetAll" in fields:
        return events.fixedGridRhoFastjetAll
    if "Rho" in fields and "fixedGridRhoFastjetAll" in events.Rho.fields:
        return events.Rho.fixedGridRhoFastjetAll
    raise KeyError("no rho branch (fixedGridRhoFastjetAll or Rho_fixedGridRhoFastjetAll)")


def delta_r(eta1, phi1, eta2, phi2):
    """Distance in (eta, phi) with the azimuth difference wrapped to [-pi, pi)."""
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi**2)


def matched_gen_jets(jets: ak.Array, genjets: ak.Array, max_dr: float = MAX_MATCH_DR) -> ak.Array:
    """The gen jet of each jet through ``genJetIdx``, None where there is none or dR >= max_dr."""
    idx = jets.genJetIdx
    valid = (idx >= 0) & (idx < ak.num(genjets))
    gen = genjets[ak.mask(idx, valid)]
    dr = delta_r(jets.eta, jets.phi, gen.eta, gen.phi)
    return ak.mask(gen, ak.fill_none(dr < max_dr, False))


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


def _np(a) -> np.ndarray:
    return ak.to_numpy(ak.flatten(a, axis=None)) if isinstance(a, ak.Array) else np.asarray(a)


# --------------------------------------------------------------------------- processor

class JetResponseProcessor(processor.ProcessorABC):
    """Jet response histograms for the raw pT, the L1L2 baseline and each configured model.

    Parameters
    ----------
    jec : JECConfig or None
        The baseline; None fills only ``raw`` (and the models).
    models : list of processors.dnn.ModelSpec, optional
        DNN corrections, each a row of the histogram named after the model.
    min_pt_raw : float
        Jets below this raw pT (GeV) are not used.
    max_abs_eta : float
        Jets beyond this |eta| are not used.
    keep_jet_arrays : bool
        Also return the per-jet table (pt_raw, corrected pT, gen values) as
        column accumulators; for tests and studies, not for large runs.
    """

    def __init__(self, jec: JECConfig | None = None, models: list | None = None, min_pt_raw: float = 10.0,
                 max_abs_eta: float = 5.0, keep_jet_arrays: bool = False):
        self.jec = jec
        self.models = list(models or [])
        self.min_pt_raw = min_pt_raw
        self.max_abs_eta = max_abs_eta
        self.keep_jet_arrays = keep_jet_arrays

    @property
    def corrections(self) -> list[str]:
        """Histogram rows, in order."""
        return ["raw"] + ([self.jec.name] if self.jec else []) + [m.name for m in self.models]

    def select_jets(self, events: ak.Array) -> ak.Array:
        """Jets passing the raw-pT and |eta| cuts, with pt_raw, mass_raw, rho attached."""
        jets = events.Jet
        pt_raw = raw_pt(jets)
        keep = (pt_raw > self.min_pt_raw) & (abs(jets.eta) < self.max_abs_eta)
        jets = jets[keep]
        table = ak.zip(
            {
                "pt": raw_pt(jets),
                "mass": raw_mass(jets),
                "pt_raw": raw_pt(jets),
                "mass_raw": raw_mass(jets),
                "eta": jets.eta,
                "phi": jets.phi,
                "area": jets.area,
                "rho": ak.broadcast_arrays(event_rho(events), jets.pt)[0],
            }
        )
        return jets, table

    def corrected_pts(self, events: ak.Array, jets: ak.Array, table: ak.Array) -> dict[str, ak.Array]:
        """Corrected pT (GeV) per correction row, jagged like ``jets``."""
        out = {"raw": table.pt_raw}
        if self.jec is not None:
            out[self.jec.name] = l1l2_pt(table, self.jec)
        if self.models:
            from processors.dnn import model_corrected_pt

            for spec in self.models:
                out[spec.name] = model_corrected_pt(spec, events, jets, table.pt_raw)
        return out

    def process(self, events: ak.Array) -> dict:
        dataset = events.metadata.get("dataset", "unknown")
        jets, table = self.select_jets(events)
        pts = self.corrected_pts(events, jets, table)
        has_gen = "GenJet" in events.fields and "genJetIdx" in jets.fields

        cutflow = {
            "events": len(events),
            "jets": int(ak.sum(ak.num(events.Jet))),
            "jets_selected": int(ak.sum(ak.num(jets))),
        }
        out = {
            "response": response_hist(),
            "reco_pt": reco_pt_hist(),
            "cutflow": {dataset: cutflow},
            "datasets_without_gen": set() if has_gen else {dataset},
        }
        abs_eta = _np(abs(table.eta))
        for name, pt in pts.items():
            out["reco_pt"].fill(correction=name, abs_eta=abs_eta, pt=_np(pt))

        if has_gen:
            gen = matched_gen_jets(jets, events.GenJet)
            matched = ~ak.is_none(gen, axis=1)
            gen = gen[matched]
            cutflow["jets_gen_matched"] = int(ak.sum(ak.num(gen)))
            flavour = flavour_category(_np(jet_flavour(jets[matched])))
            pt_gen = _np(gen.pt)
            abs_eta_gen = np.abs(_np(gen.eta))
            for name, pt in pts.items():
                out["response"].fill(correction=name, flavour=flavour, abs_eta_gen=abs_eta_gen,
                                     pt_gen=pt_gen, response=_np(pt[matched]) / pt_gen)
            if self.keep_jet_arrays:
                table_out = {
                    "event": _np(ak.broadcast_arrays(events.event, jets.pt)[0][matched]).astype(np.int64),
                    "pt_gen": pt_gen, "eta_gen": _np(gen.eta), "flavour": _np(jet_flavour(jets[matched])),
                    "eta": _np(table.eta[matched]), "area": _np(table.area[matched]), "rho": _np(table.rho[matched]),
                }
                table_out.update({f"pt_{name}": _np(pt[matched]) for name, pt in pts.items()})
                out["jet_table"] = {k: processor.column_accumulator(np.asarray(v)) for k, v in table_out.items()}
        return out

    def postprocess(self, accumulator):
        return accumulator
