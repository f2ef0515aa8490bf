"""Jet response processor: wires the jet physics (raw pT, gen matching, flavour), the L1L2
baseline and the DNN corrections, and fills ``hist`` histograms (DESIGN section 4)."""
from __future__ import annotations

import awkward as ak
import numpy as np
from coffea import processor

from core.errors import BadInputError
from core.memory import keep_freed_memory
from physics.jec import JECConfig, jec_columns, l1l2_pt_flat
from physics.jets import (REFERENCE_ROWS, add_counts, count_false, event_rho, flat_numpy as _np, flavour_code,
                          flavour_index, flow_index, jets_at, match_gen_flat, reco_pt_hist, reference_pts,
                          response_hist, select_flat_jets)

#: Jet fields of CMS's own regressions (reference rows), read where the file has them
REFERENCE_FIELDS = tuple(sorted({f for factors in REFERENCE_ROWS.values() for f in factors}))


class JetResponseProcessor(processor.ProcessorABC):
    """Jet response histograms for the raw pT, the L1L2 baseline and each configured model.

    Parameters
    ----------
    jec : JECConfig or None
        The baseline; None fills only ``raw`` (and the models).
    models : list of models.correction.ModelSpec, optional
        DNN corrections, each a row of the histogram named after the model.
    min_pt_raw : float
        Jets below this raw pT (GeV) are not used.
    max_abs_eta : float
        Jets beyond this |eta| are not used.
    keep_jet_arrays : bool
        Also return the per-jet table (pt_raw, corrected pT, gen values) as
        column accumulators; for tests and studies, not for large runs.
    reference_rows : bool
        Add rows for CMS's own regressions where the file carries them (``PNetReg``, ``PNetReg+nu``,
        ``UParTReg``, ``UParTReg+nu``; ``physics.jets.reference_pts``).
    skip_bad_input : bool
        A file that cannot feed the processor (no Jet, rawFactor or rho) or a model (no constituents)
        is listed in ``out["skipped"]`` (file, reason) instead of stopping the run: the chunk gives
        nothing, or nothing for that model's row.

    Per dataset the cutflow counts, per model row, ``<row>_jets``, ``<row>_out_of_domain``,
    ``<row>_clipped`` and ``<row>_nonfinite`` (``models.domain``), and per reference row
    ``<row>_jets`` and ``<row>_undefined``; jets without a finite corrected pT fill no histogram.
    """

    def __init__(self, jec: JECConfig | None = None, models: list | None = None, min_pt_raw: float = 10.0,
                 max_abs_eta: float = 5.0, keep_jet_arrays: bool = False, reference_rows: bool = True,
                 skip_bad_input: bool = False):
        self.jec = jec
        self.models = list(models or [])
        self.min_pt_raw = min_pt_raw
        self.max_abs_eta = max_abs_eta
        self.keep_jet_arrays = keep_jet_arrays
        self.reference_rows = reference_rows
        self.skip_bad_input = skip_bad_input

    @property
    def corrections(self) -> list[str]:
        """Histogram rows, in order."""
        return ["raw"] + ([self.jec.name] if self.jec else []) + [m.name for m in self.models]

    def corrected_pts(self, events: ak.Array, flat: dict[str, np.ndarray], counts: np.ndarray,
                      cutflow: dict | None = None, skipped: list | None = None) -> dict[str, np.ndarray]:
        """Corrected pT (GeV) per correction row, flat like ``flat`` (``select_flat_jets``; NaN: no value).

        The baseline is the cached jetmet_tools corrector evaluated on the flat columns; the jet
        features are built once and shared by every model, and so are their capped flat inputs and padded
        batches (``models.padding``: a second model with the same inputs costs its inference only). Domain counts go to ``cutflow``; a model
        the file cannot feed raises BadInputError, or with ``skip_bad_input`` gives no row and an
        entry in ``skipped``.
        """
        cutflow = {} if cutflow is None else cutflow
        out = {"raw": flat["pt_raw"]}
        if self.jec is not None:
            out[self.jec.name] = l1l2_pt_flat(flat, self.jec)
        fields = {f: flat[f] for f in REFERENCE_FIELDS if f in flat}
        if self.reference_rows and fields:
            for row, (pt, defined) in reference_pts(ak.Array(fields), flat["pt_raw"]).items():
                out[row] = _np(pt)
                cutflow[f"{row}_jets"] = int(ak.count(defined))
                cutflow[f"{row}_undefined"] = count_false(defined)
        if self.models:
            from models.correction import model_correction
            from physics.features import check_branches, jet_features

            jets = jets_at(events, flat["index"])
            pt_raw = ak.unflatten(flat["pt_raw"], counts)
            features = None
            for spec in self.models:
                try:
                    check_branches(events, needed_by=f"model '{spec.name}'")
                    if features is None and len(flat["pt_raw"]):
                        features = jet_features(events, jets, index=flat["index"])
                    pt, tally = model_correction(spec, events, jets, pt_raw, features=features)
                    out[spec.name] = _np(pt)
                except BadInputError as err:
                    if not self.skip_bad_input:
                        raise
                    if skipped is not None:
                        skipped.append({"dataset": events.metadata.get("dataset", "unknown"),
                                        "file": str(events.metadata.get("filename", "?")),
                                        "reason": f"row '{spec.name}' not filled: {str(err).split(': ', 1)[-1]}"})
                    continue
                for key, value in tally.items():
                    cutflow[f"{spec.name}_{key}"] = value
            from models.padding import clear_padded_cache

            clear_padded_cache()  # the padded inputs were shared by this chunk's models only
        return out

    def branch_patterns(self) -> list[str]:
        """The branches ``process`` can read (uproot name globs; ``execution.runner.read_options`` builds
        the chunk's NanoEvents from these only): event ids, jets with their gen jets and rho, ScoutingPFJet
        (to name a scouting file), and the PF candidates and secondary vertices when there are models."""
        patterns = ["run", "luminosityBlock", "event", "nJet", "Jet_*", "nGenJet", "GenJet_*",
                    "fixedGridRhoFastjetAll", "Rho_*", "nScoutingPFJet", "ScoutingPFJet_*"]
        if self.models:
            patterns += [f"{p}{c}{s}" for c in ("PFCands", "JetPFCands", "SV", "JetSVs") for p, s in (("n", ""), ("", "_*"))]
            patterns += ["PV_*"]
        return patterns

    def check_file(self, events: ak.Array) -> None:
        """BadInputError naming the file when it lacks what every row needs: Jet (with rawFactor) and rho."""
        src = str(events.metadata.get("filename", "events"))
        if "Jet" not in events.fields:
            scouting = " (scouting NanoAOD: ScoutingPFJet is not read)" if "ScoutingPFJet" in events.fields else ""
            raise BadInputError(f"{src}: no Jet collection{scouting}: the jet processor needs Jet_pt and Jet_rawFactor")
        if "rawFactor" not in events.Jet.fields:
            raise BadInputError(f"{src}: missing branch Jet_rawFactor: the jet processor needs it for the raw pT")
        try:
            event_rho(events)
        except BadInputError as err:
            raise BadInputError(f"{src}: {err}: the jet processor needs rho") from None

    def process(self, events: ak.Array) -> dict:
        keep_freed_memory()  # once per worker: the next chunk reuses this one's memory (core.memory)
        dataset = events.metadata.get("dataset", "unknown")
        try:
            self.check_file(events)
        except BadInputError as err:
            if not self.skip_bad_input:
                raise
            return {"response": response_hist(), "reco_pt": reco_pt_hist(),
                    "cutflow": {dataset: {"events": len(events), "events_skipped": len(events)}},
                    "skipped": [{"dataset": dataset, "file": str(events.metadata.get("filename", "?")),
                                 "reason": str(err).split(": ", 1)[-1]}]}
        has_gen = "GenJet" in events.fields and "genJetIdx" in events.Jet.fields
        extra = ("genJetIdx", "hadronFlavour", "partonFlavour") if has_gen else ()
        flat, counts, nonfinite = select_flat_jets(events, self.min_pt_raw, self.max_abs_eta,
                                                   extra + (REFERENCE_FIELDS if self.reference_rows else ()),
                                                   mass=self.jec is not None and "mass_raw" in jec_columns(self.jec))

        cutflow = {
            "events": len(events),
            "jets": int(flat["n_jets_all"]),
            "jets_selected": len(flat["pt_raw"]),
            "jets_nonfinite_pt": nonfinite,  # excluded, counted
        }
        skipped: list = []
        pts = self.corrected_pts(events, flat, counts, cutflow, skipped)
        out = {
            "response": response_hist(),
            "reco_pt": reco_pt_hist(),
            "cutflow": {dataset: cutflow},
            "datasets_without_gen": set() if has_gen else {dataset},
            "skipped": skipped,
        }
        # each row is counted from the bins of its values (physics.jets.add_counts: the same histogram as
        # hist's fill value by value); bins shared by the rows are found once
        reco = out["reco_pt"]
        eta_bin = flow_index(reco, "abs_eta", np.abs(flat["eta"]))
        finite = {name: np.isfinite(pt) for name, pt in pts.items()}  # a jet without a value (NaN) fills nothing
        add_counts(reco, {name: {"abs_eta": eta_bin[ok], "pt": flow_index(reco, "pt", pts[name][ok])}
                          for name, ok in finite.items()})

        if has_gen:
            matched, gen = match_gen_flat(flat, events.GenJet)
            cutflow["jets_gen_matched"] = int(np.sum(matched))
            code = flavour_code(flat["hadronFlavour"][matched], flat["partonFlavour"][matched])
            pt_gen = gen["pt"]
            resp = out["response"]
            shared = {"flavour": flavour_index(resp, code), "abs_eta_gen": flow_index(resp, "abs_eta_gen", np.abs(gen["eta"])),
                      "pt_gen": flow_index(resp, "pt_gen", pt_gen)}
            rows = {}
            for name, pt in pts.items():
                r = pt[matched] / pt_gen
                ok = np.isfinite(r)
                rows[name] = dict({k: v[ok] for k, v in shared.items()}, response=flow_index(resp, "response", r[ok]))
            add_counts(resp, rows)
            if self.keep_jet_arrays:
                table_out = {
                    "event": ak.to_numpy(events.event)[flat["event"][matched]].astype(np.int64),
                    "pt_gen": pt_gen, "eta_gen": gen["eta"], "flavour": code,
                    "eta": flat["eta"][matched], "area": flat["area"][matched], "rho": flat["rho"][matched],
                }
                table_out.update({f"pt_{name}": pt[matched] for name, pt in pts.items()})
                out["jet_table"] = {k: processor.column_accumulator(np.asarray(v)) for k, v in table_out.items()}
        return out

    def postprocess(self, accumulator):
        return accumulator
