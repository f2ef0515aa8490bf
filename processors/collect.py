"""Collect processor: the gen-matched jets of a chunk, their features and target, one parquet
shard per chunk (``inputs.shards``); counts and running sums go to the accumulator."""
from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
from coffea import processor

from core.errors import BadInputError
from core.memory import keep_freed_memory
from inputs.shards import DEFAULT_FRACTIONS, empty_output, event_split, shard_name, write_shard
from physics.features import check_branches, jet_features
from physics.jets import jet_flavour, matched_gen_jets, raw_pt


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
        keep_freed_memory()  # once per worker: the next chunk reuses this one's memory (core.memory)
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
