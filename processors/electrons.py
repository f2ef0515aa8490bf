"""Z->ee selection, mass-constraint labels, electron features and histograms.

Physics functions are small and pure (numpy / awkward in, arrays out); ``ZeeProcessor``
only wires them. The label (DESIGN section 4): for a pair with 86 < m_ee < 97 GeV, the
transverse energy of leg 1 that puts the pair exactly on the Z mass given leg 2 is

    E_T,1 = M_Z^2 / (2 E_T,2 (cosh(d_eta) - cos(d_phi))),   M_Z = 91.1876 GeV,

and E_label,1 = E_T,1 cosh(eta_1). Each leg gets one label from its partner.

Entry points for the CLI: ``run_electrons(fileset, executor, ...)`` (histograms,
cutflow) and ``collect_electrons(fileset, out, executor, ...)`` (parquet shards of
features + labels + kind for ``runner.py train --task electrons``).
"""
from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from pathlib import Path

import awkward as ak
import hist
import numpy as np
from coffea import processor

M_Z = 91.1876  # GeV
GAMMA_Z = 2.4952  # GeV
LABEL_WINDOW = (86.0, 97.0)  # GeV
PAIR_WINDOW = (60.0, 120.0)  # GeV, pairs kept for collection and histograms
MIN_PT = 15.0  # GeV
MAX_ABS_ETA_SC = 2.5
ECAL_GAP = (1.4442, 1.566)
MIN_CUT_BASED = 2  # loose
CAND_RADIUS = 0.3
MAX_CANDS = 16

#: scalar electron features, in the order the model sees them
SCALAR_FEATURES = ("log_e_raw", "eta_sc", "abs_eta_sc", "r9", "sieie", "hoe", "e_over_p", "rel_energy_err",
                   "pfRelIso03_all", "deltaEtaSC", "rho", "npv", "lostHits", "convVeto")
#: per-candidate features of PF candidates near the electron
CAND_FEATURES = ("dpt", "log_dpt", "deta", "dphi_bend", "dr", "is_photon", "is_charged", "is_neutral_hadron",
                 "puppiWeight")


# --------------------------------------------------------------------------- pure physics

def pair_mass(pt1, eta1, phi1, pt2, eta2, phi2):
    """Invariant mass (GeV) of two massless objects: m^2 = 2 pT1 pT2 (cosh(d_eta) - cos(d_phi))."""
    return np.sqrt(np.maximum(2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(phi1 - phi2)), 0.0))


def mass_constraint_label(et_partner, d_eta, d_phi, m_z: float = M_Z):
    """Transverse energy (GeV) of a leg that makes the pair mass exactly m_z given its partner's E_T."""
    return m_z**2 / (2 * et_partner * (np.cosh(d_eta) - np.cos(d_phi)))


def pair_labels(e1, eta1, phi1, e2, eta2, phi2, window: tuple[float, float] = LABEL_WINDOW, m_z: float = M_Z):
    """Label energies (GeV) of both legs of pairs; NaN where m_ee is outside ``window``.

    ``e1, e2`` are the measured energies; directions are the electrons' (eta, phi).
    Returns (label_1, label_2, m_ee).
    """
    e1, e2 = np.asarray(e1, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    et1, et2 = e1 / np.cosh(eta1), e2 / np.cosh(eta2)
    m = pair_mass(et1, eta1, phi1, et2, eta2, phi2)
    inside = (m > window[0]) & (m < window[1])
    d_eta, d_phi = np.asarray(eta1) - eta2, np.asarray(phi1) - phi2
    lab1 = mass_constraint_label(et2, d_eta, d_phi, m_z) * np.cosh(eta1)
    lab2 = mass_constraint_label(et1, d_eta, d_phi, m_z) * np.cosh(eta2)
    return np.where(inside, lab1, np.nan), np.where(inside, lab2, np.nan), m


def wrap_phi(dphi):
    """Angle difference folded into [-pi, pi)."""
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def electron_id_mask(electrons: ak.Array, min_pt: float = MIN_PT) -> ak.Array:
    """Electrons passing pT, supercluster acceptance (gap excluded) and cutBased >= loose."""
    eta_sc = electrons.eta + electrons.deltaEtaSC
    abs_sc = abs(eta_sc)
    return ((electrons.pt > min_pt) & (abs_sc < MAX_ABS_ETA_SC)
            & ~((abs_sc > ECAL_GAP[0]) & (abs_sc < ECAL_GAP[1])) & (electrons.cutBased >= MIN_CUT_BASED))


def event_rho(events: ak.Array) -> np.ndarray:
    """fixedGridRhoFastjetAll (GeV) in either NanoAOD spelling; zeros when absent."""
    if "fixedGridRhoFastjetAll" in events.fields:
        return ak.to_numpy(events.fixedGridRhoFastjetAll).astype(np.float64)
    if "Rho" in events.fields and "fixedGridRhoFastjetAll" in events.Rho.fields:
        return ak.to_numpy(events.Rho.fixedGridRhoFastjetAll).astype(np.float64)
    return np.zeros(len(events))


def scalar_features(e_raw, eta, delta_eta_sc, r9, sieie, hoe, e_inv_minus_p_inv, energy_err, iso, rho, npv,
                    lost_hits, conv_veto) -> dict[str, np.ndarray]:
    """The scalar inputs of the electron model (dimensionless or O(1) scaled), one per electron."""
    e_raw = np.asarray(e_raw, dtype=np.float64)
    eta_sc = np.asarray(eta) + delta_eta_sc
    return {
        "log_e_raw": np.log(np.maximum(e_raw, 1e-3)),
        "eta_sc": eta_sc,
        "abs_eta_sc": np.abs(eta_sc),
        "r9": np.asarray(r9, dtype=np.float64),
        "sieie": 100 * np.asarray(sieie, dtype=np.float64),
        "hoe": np.clip(hoe, 0, 1),
        # E/p from 1/E - 1/p
        "e_over_p": np.clip(1.0 / np.maximum(1 - e_raw * np.asarray(e_inv_minus_p_inv), 1e-3), 0, 3),
        "rel_energy_err": np.clip(np.asarray(energy_err) / np.maximum(e_raw, 1e-3), 0, 1),
        "pfRelIso03_all": np.clip(iso, 0, 5),
        "deltaEtaSC": 10 * np.asarray(delta_eta_sc, dtype=np.float64),
        "rho": np.asarray(rho, dtype=np.float64) / 30.0,
        "npv": np.asarray(npv, dtype=np.float64) / 30.0,
        "lostHits": np.asarray(lost_hits, dtype=np.float64),
        "convVeto": np.asarray(conv_veto, dtype=np.float64),
    }


def nearby_candidates(eta, phi, pt, charge, cands: ak.Array, radius: float = CAND_RADIUS,
                      max_cands: int = MAX_CANDS) -> ak.Array:
    """PF candidates within ``radius`` of each electron (jagged, pT-ordered, at most ``max_cands``).

    ``eta, phi, pt, charge`` are jagged per event (the selected electrons); ``cands``
    the event's PFCands. The electron's own PF candidate (|pdgId| = 11, dR < 0.02) is
    dropped. ``dphi_bend`` is signed along the bending direction (-charge * dphi), so
    brem photons sit on one side for both charges.
    """
    pairs = ak.cartesian({"e": ak.zip({"eta": eta, "phi": phi, "pt": pt, "charge": charge}), "c": cands},
                         axis=1, nested=True)
    e, c = pairs.e, pairs.c
    deta = c.eta - e.eta
    dphi = wrap_phi(c.phi - e.phi)
    dr = np.sqrt(deta**2 + dphi**2)
    apdg = abs(c.pdgId)
    keep = (dr < radius) & ~((apdg == 11) & (dr < 0.02))
    dpt = c.pt / e.pt
    out = ak.zip({
        "dpt": dpt, "log_dpt": np.log(np.maximum(dpt, 1e-4)), "deta": deta, "dphi_bend": -e.charge * dphi, "dr": dr,
        "is_photon": ak.values_astype(apdg == 22, np.float32),
        "is_charged": ak.values_astype(c.charge != 0, np.float32),
        "is_neutral_hadron": ak.values_astype((apdg == 130) | (apdg == 2112) | (apdg == 1), np.float32),
        "puppiWeight": c.puppiWeight if "puppiWeight" in c.fields else ak.ones_like(dpt),
    })[keep]
    order = ak.argsort(out.dpt, axis=-1, ascending=False)
    return out[order][:, :, :max_cands]


# --------------------------------------------------------------------------- histograms

def mass_hist() -> hist.Hist:
    return hist.Hist(
        hist.axis.StrCategory([], name="kind", growth=True),
        hist.axis.StrCategory([], name="correction", growth=True),
        hist.axis.Regular(240, PAIR_WINDOW[0], PAIR_WINDOW[1], name="mass", label="m_ee [GeV]"),
    )


def ratio_hist(label: str) -> hist.Hist:
    return hist.Hist(
        hist.axis.StrCategory([], name="kind", growth=True),
        hist.axis.StrCategory([], name="correction", growth=True),
        hist.axis.Regular(200, 0.5, 1.5, name="ratio", label=label),
    )


def _np(a) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(a, np.nan)).astype(np.float64)


def _pair_ids(dataset: str, run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """A 63-bit id per event, stable across chunks: hash(dataset) mixed with run/lumi/event."""
    h = int(hashlib.sha1(dataset.encode()).hexdigest()[:8], 16)
    x = (run.astype(np.uint64) * np.uint64(1_000_003) + lumi.astype(np.uint64)) * np.uint64(2_000_000_011) \
        + event.astype(np.uint64) + np.uint64(h) * np.uint64(0x9E3779B97F4A7C15 & 0xFFFFFFFF)
    return (x & np.uint64(0x7FFFFFFFFFFFFFFF)).astype(np.int64)


# --------------------------------------------------------------------------- processor

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


# --------------------------------------------------------------------------- CLI entry points

def _run(fileset: dict, proc: ZeeProcessor, executor: str, workers: int, chunksize: int, max_chunks: int | None,
         skip_bad_files: bool, status: bool, site: str = "generic", condor_options: dict | None = None) -> dict:
    from coffea.nanoevents import PFNanoAODSchema

    from processors.execution import make_executor

    with make_executor(executor, workers, status=status, site=site, condor_options=condor_options) as ex:
        runner = processor.Runner(executor=ex, chunksize=chunksize, maxchunks=max_chunks,
                                  skipbadfiles=skip_bad_files, schema=PFNanoAODSchema)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return runner(fileset, proc, treename="Events")


def run_electrons(fileset: dict, executor: str = "iterative", workers: int = 1, *, models: list | None = None,
                  kind: str | None = None, chunksize: int = 100_000, max_chunks: int | None = None,
                  skip_bad_files: bool = False, status: bool = False, site: str = "generic",
                  condor_options: dict | None = None) -> dict:
    """Histograms and cutflow of the Z->ee selection over a coffea fileset."""
    return _run(fileset, ZeeProcessor(models=models, kind=kind), executor, workers, chunksize, max_chunks,
                skip_bad_files, status, site, condor_options)


def collect_electrons(fileset: dict, out: str | Path, executor: str = "iterative", workers: int = 1, *,
                      kind: str | None = None, chunksize: int = 100_000, max_chunks: int | None = None,
                      skip_bad_files: bool = False, status: bool = False, site: str = "generic",
                      condor_options: dict | None = None) -> dict:
    """Write parquet shards of selected Z->ee electrons to ``out``; returns the processor output
    (with ``shards``: the written files, and the cutflow)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return _run(fileset, ZeeProcessor(collect_dir=str(out.resolve()), kind=kind), executor, workers, chunksize,
                max_chunks, skip_bad_files, status, site, condor_options)
