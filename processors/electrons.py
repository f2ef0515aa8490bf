"""Z->ee processor: wires the electron selection, mass-constraint labels and features of
``physics.electrons``, fills the m_ee and energy-ratio histograms, optionally writes shards."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import awkward as ak
import numpy as np
from coffea import processor

from physics.electrons import (CAND_FEATURES, MIN_PT, PAIR_WINDOW, SCALAR_FEATURES, electron_id_mask, event_rho,
                               flat_float as _np, mass_hist, nearby_candidates, pair_ids as _pair_ids, pair_labels,
                               pair_mass, ratio_hist, scalar_features)


class ZeeProcessor(processor.ProcessorABC):
    """Z->ee: selection, m_ee, labels, E_reco/E_label and E_reco/E_true; optional parquet shards.

    Parameters
    ----------
    collect_dir : str, optional
        When set, each chunk writes a parquet shard of the selected electrons (features,
        nearby PF candidates, labels, kind, true energy) there.
    models : list, optional
        ``models.electron.ElectronModelSpec`` objects; each adds an m_ee row.
    kind : "mc", "data" or None
        Overrides the kind of every dataset (else metadata "kind", else GenPart present -> mc).
    """

    def __init__(self, collect_dir: str | None = None, models: list | None = None, kind: str | None = None,
                 min_pt: float = MIN_PT):
        self.collect_dir = collect_dir
        self.models = list(models or [])
        self.kind = kind
        self.min_pt = min_pt

    @property
    def corrections(self) -> list[str]:
        return ["raw"] + [m.name for m in self.models]

    def process(self, events: ak.Array) -> dict:
        meta = events.metadata
        dataset = meta.get("dataset", "unknown")
        declared = self.kind or meta.get("kind")
        has_gen = "GenPart" in events.fields
        cutflow = {"events": len(events)}
        out = {"cutflow": {dataset: cutflow}, "m_ee": mass_hist(), "ratio_label": ratio_hist("E_reco / E_label"),
               "ratio_true": ratio_hist("E_reco / E_true"), "warnings": set(), "shards": [],
               "datasets_without_gen": set() if has_gen else {dataset}}
        kind = declared or ("mc" if has_gen else "data")
        if kind == "mc" and not has_gen:
            cutflow["mc_without_genpart"] = len(events)
            out["warnings"].add(f"{dataset}: declared MC but has no GenPart (a data file?): used as data, "
                                "no true energy")
            kind = "data"
        if "Electron" not in events.fields:
            cutflow["no_electron_branches"] = len(events)
            out["warnings"].add(f"{dataset}: no Electron collection in the file; nothing selected")
            return out
        ele = events.Electron
        n_all = ak.num(ele)
        cutflow["events_without_electrons"] = int(ak.sum(n_all == 0))
        good = ele[electron_id_mask(ele, self.min_pt)]
        n_good = ak.num(good)
        cutflow["events_one_good_electron"] = int(ak.sum(n_good == 1))
        two = n_good >= 2
        cutflow["events_two_good_electrons"] = int(ak.sum(two))
        ev = events[two]
        legs = good[two][:, :2]
        opposite = legs.charge[:, 0] != legs.charge[:, 1]
        cutflow["events_opposite_charge"] = int(ak.sum(opposite))
        ev, legs = ev[opposite], legs[opposite]
        e1, e2 = legs[:, 0], legs[:, 1]
        E1, E2 = _np(e1.pt * np.cosh(e1.eta)), _np(e2.pt * np.cosh(e2.eta))
        eta1, eta2, phi1, phi2 = _np(e1.eta), _np(e2.eta), _np(e1.phi), _np(e2.phi)
        lab1, lab2, m = pair_labels(E1, eta1, phi1, E2, eta2, phi2)
        in_pair = (m > PAIR_WINDOW[0]) & (m < PAIR_WINDOW[1])
        cutflow["events_60_120"] = int(in_pair.sum())
        cutflow["events_label_window"] = int(np.isfinite(lab1).sum())
        ev, legs = ev[in_pair], legs[in_pair]
        E = np.stack([E1, E2], axis=1)[in_pair]
        labels = np.stack([lab1, lab2], axis=1)[in_pair]
        m = m[in_pair]
        out["m_ee"].fill(kind=kind, correction="raw", mass=m)
        lab_ok = np.isfinite(labels)
        out["ratio_label"].fill(kind=kind, correction="raw", ratio=(E[lab_ok] / labels[lab_ok]))

        e_true = np.full_like(E, np.nan)
        if has_gen and "genPartIdx" in legs.fields:
            idx = legs.genPartIdx
            valid = (idx >= 0) & (idx < ak.num(ev.GenPart))
            safe = ak.where(valid, idx, 0)
            gp = ev.GenPart[safe]
            et = ak.where(valid, gp.pt * np.cosh(gp.eta), np.nan)
            e_true = np.asarray(ak.to_numpy(ak.fill_none(et, np.nan)), dtype=np.float64).reshape(-1, 2)
            matched = np.isfinite(e_true)
            cutflow["electrons_gen_matched"] = int(matched.sum())
            out["ratio_true"].fill(kind=kind, correction="raw", ratio=E[matched] / e_true[matched])

        if self.models or self.collect_dir:
            feats = self.features(ev, legs, E)
            if self.models:
                self._fill_models(out, kind, feats, legs, E, e_true)
            if self.collect_dir:
                out["shards"].append(self._write_shard(dataset, kind, ev, legs, E, labels, e_true, m, feats, meta))
        return out

    def features(self, ev: ak.Array, legs: ak.Array, E: np.ndarray) -> dict:
        """Scalar features (dict of (n_pairs, 2) arrays) and nearby candidates (jagged, per pair per leg)."""
        rho = event_rho(ev)
        npv = _np(ev.PV.npvs) if "PV" in ev.fields and "npvs" in ev.PV.fields else np.zeros(len(ev))
        sc = {}
        for k in range(2):
            e = legs[:, k]
            f = scalar_features(E[:, k], _np(e.eta), _np(e.deltaEtaSC), _np(e.r9), _np(e.sieie), _np(e.hoe),
                                _np(e.eInvMinusPInv), _np(e.energyErr), _np(e.pfRelIso03_all), rho, npv,
                                _np(e.lostHits), _np(e.convVeto))
            for name, v in f.items():
                sc.setdefault(name, []).append(v)
        scalars = {name: np.stack(v, axis=1) for name, v in sc.items()}
        if "PFCands" in ev.fields:
            cands = nearby_candidates(legs.eta, legs.phi, legs.pt, legs.charge, ev.PFCands)
        else:
            empty = ak.Array([[[] for _ in range(2)] for _ in range(len(ev))])
            cands = ak.zip({k: ak.values_astype(empty, np.float32) for k in CAND_FEATURES}, depth_limit=None) \
                if len(ev) else None
            if cands is None or len(ev) == 0:
                cands = ak.Array([[[], []]] * len(ev))
        return {"scalars": scalars, "cands": cands}

    def _fill_models(self, out, kind, feats, legs, E, e_true) -> None:
        eta, phi = _np(legs.eta), _np(legs.phi)
        for spec in self.models:
            corr = spec.correction(feats["scalars"], feats["cands"], kind)  # (n_pairs, 2)
            Ec = E * corr
            m = pair_mass(Ec[:, 0] / np.cosh(eta[:, 0]), eta[:, 0], phi[:, 0], Ec[:, 1] / np.cosh(eta[:, 1]),
                          eta[:, 1], phi[:, 1])
            out["m_ee"].fill(kind=kind, correction=spec.name, mass=m)
            ok = np.isfinite(e_true)
            if ok.any():
                out["ratio_true"].fill(kind=kind, correction=spec.name, ratio=Ec[ok] / e_true[ok])

    def _write_shard(self, dataset, kind, ev, legs, E, labels, e_true, m, feats, meta) -> str:
        n = len(ev)
        run = ak.to_numpy(ev.run).astype(np.int64) if "run" in ev.fields else np.zeros(n, np.int64)
        lumi = ak.to_numpy(ev.luminosityBlock).astype(np.int64) if "luminosityBlock" in ev.fields else np.zeros(n, np.int64)
        event = ak.to_numpy(ev.event).astype(np.int64)
        pair_id = _pair_ids(dataset, run, lumi, event)
        cols = {
            "kind": np.repeat(np.array([kind]), 2 * n),
            "pair_id": np.repeat(pair_id, 2), "leg": np.tile(np.array([0, 1], dtype=np.int8), n),
            "event": np.repeat(event, 2),
            "e_raw": E.reshape(-1), "e_label": labels.reshape(-1), "e_true": e_true.reshape(-1),
            "m_ee": np.repeat(m, 2),
            "eta": _np(legs.eta).reshape(-1), "phi": _np(legs.phi).reshape(-1),
            "charge": _np(legs.charge).reshape(-1).astype(np.int8),
        }
        for name in SCALAR_FEATURES:
            cols[f"f_{name}"] = feats["scalars"][name].reshape(-1).astype(np.float32)
        table = ak.zip({k: ak.Array(v) for k, v in cols.items()}, depth_limit=1)
        cands = ak.flatten(feats["cands"], axis=1) if n else ak.Array([])
        if n and len(cands) == 2 * n and len(ak.fields(cands)):
            table = ak.with_field(table, ak.values_astype(cands, np.float32), "cands")
        else:
            empty = ak.zip({k: ak.values_astype(ak.Array([[] for _ in range(2 * n)]), np.float32)
                            for k in CAND_FEATURES}, depth_limit=2)
            table = ak.with_field(table, empty, "cands")
        outdir = Path(self.collect_dir)
        outdir.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha1(f"{meta.get('filename', '')}:{meta.get('entrystart', '')}".encode()).hexdigest()[:12]
        path = outdir / f"{dataset}_{kind}_{tag}.parquet"
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
        ak.to_parquet(table, tmp)
        os.replace(tmp, path)
        return str(path)

    def postprocess(self, accumulator):
        return accumulator
