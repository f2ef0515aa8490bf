"""Jet response processor: wires the jet physics (raw pT, gen matching, flavour), the L1L2
baseline and the DNN corrections, and fills ``hist`` histograms (DESIGN section 4)."""
from __future__ import annotations

import awkward as ak
import numpy as np
from coffea import processor

from physics.jec import JECConfig, l1l2_pt
from physics.jets import (event_rho, flat_numpy as _np, flavour_category, jet_flavour, matched_gen_jets, raw_mass,
                          raw_pt, reco_pt_hist, response_hist)


class JetResponseProcessor(processor.ProcessorABC):
    """Jet response histograms for the raw pT, the L1L2 baseline and each configured model.

    Parameters
    ----------
    jec : JECConfig or None
        The baseline; None fills only ``raw`` (and the models).
    models : list of models.inference.ModelSpec, optional
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
            from models.correction import model_corrected_pt

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
