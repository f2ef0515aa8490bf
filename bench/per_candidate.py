"""Non-ML per-candidate calibration check: can a linear calibration of the PF candidates beat L1L2?

The question of issue 17: on a detector whose neutral candidates sit at the raw,
non-compensating calorimeter response, scaling each candidate by a function of its type and
energy (no network) already recovers most of what a DNN gains over L1L2. On a detector with
particle flow (calibrated neutral hadrons) it should gain only a few percent.

Method (no truth at candidate level, only gen jets): per matched jet, the sum of candidate pT
in bins of (candidate type, candidate energy) plus a rho*area column; weights fitted by least
squares on the relative residual ``(sum_i w_k pT_i - w_o rho A) / pT_gen - 1`` on the even
events; the same binned jet-level residual response correction (pT, |eta|) is then derived on
the even events for both the per-candidate sum and L1L2, and the resolution (IQR / median) is
compared on the odd events. Run: ``runner.py bench per-candidate --fileset F.root ... --jec J.yaml``.
"""
from __future__ import annotations

import argparse

import numpy as np

#: candidate types by |pdgId|
CANDIDATE_TYPES = {"charged": (211, 11, 13), "photon": (22,), "neutral_hadron": (130,), "hf": (1, 2)}
#: candidate energy bins (GeV) of the per-candidate weights
ENERGY_EDGES = np.array([0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, np.inf])
PT_EDGES = np.geomspace(20.0, 3000.0, 11)
ABS_ETA_EDGES = (0.0, 1.3, 2.5, 3.0, 5.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fileset", nargs="+", required=True, help="generated PFNano-layout ROOT files")
    parser.add_argument("--jec", required=True, help="L1L2 config (YAML) of the same detector")
    parser.add_argument("--pt-gen-min", type=float, default=30.0, help="pooled selection (GeV)")


def read_jets(files: list[str]) -> dict[str, np.ndarray]:
    """Gen-matched jets (dR < 0.2) with their candidate-sum matrix; flat numpy arrays."""
    import awkward as ak
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from physics.jets import event_rho, matched_gen_jets, raw_pt

    parts = []
    for path in files:
        events = NanoEventsFactory.from_root({path: "Events"}, schemaclass=PFNanoAODSchema, mode="eager").events()
        jets = events.Jet
        gen = matched_gen_jets(jets, events.GenJet)
        matched = ~ak.is_none(gen, axis=1)
        # candidates of every jet, jet-ordered: (event, jet index, PFCands index)
        cand = events.PFCands[events.JetPFCands.pFCandsIdx]
        jet_idx = events.JetPFCands.jetIdx
        n_jets = ak.to_numpy(ak.num(jets))
        offsets = np.concatenate([[0], np.cumsum(n_jets)])[:-1]
        per_cand_event = np.repeat(np.arange(len(events)), ak.to_numpy(ak.num(jet_idx)))
        global_jet = ak.to_numpy(ak.flatten(jet_idx)) + offsets[per_cand_event]
        apid = np.abs(ak.to_numpy(ak.flatten(cand.pdgId)))
        cpt = ak.to_numpy(ak.flatten(cand.pt)).astype(np.float64)
        energy = cpt * np.cosh(ak.to_numpy(ak.flatten(cand.eta)))
        n_total = int(n_jets.sum())
        columns = []
        for codes in CANDIDATE_TYPES.values():
            is_type = np.isin(apid, codes)
            ebin = np.clip(np.searchsorted(ENERGY_EDGES, energy, side="right") - 1, 0, len(ENERGY_EDGES) - 2)
            for b in range(len(ENERGY_EDGES) - 1):
                sel = is_type & (ebin == b)
                columns.append(np.bincount(global_jet[sel], cpt[sel], n_total))
        rho = ak.to_numpy(ak.flatten(ak.broadcast_arrays(event_rho(events), jets.pt)[0]))
        area = ak.to_numpy(ak.flatten(jets.area))
        keep = ak.to_numpy(ak.flatten(matched))
        gen_pt = ak.to_numpy(ak.flatten(ak.fill_none(gen.pt, -1.0)))
        gen_eta = ak.to_numpy(ak.flatten(ak.fill_none(gen.eta, 99.0)))
        event_number = np.repeat(ak.to_numpy(events.event), n_jets)
        parts.append({
            "sums": np.stack(columns, axis=1)[keep], "rho_area": (rho * area)[keep],
            "pt_raw": ak.to_numpy(ak.flatten(raw_pt(jets)))[keep], "eta": ak.to_numpy(ak.flatten(jets.eta))[keep],
            "phi": ak.to_numpy(ak.flatten(jets.phi))[keep], "area": area[keep], "rho": rho[keep],
            "pt_gen": gen_pt[keep], "eta_gen": gen_eta[keep], "event": event_number[keep],
        })
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def fit_candidate_weights(sums: np.ndarray, rho_area: np.ndarray, pt_gen: np.ndarray) -> np.ndarray:
    """Least-squares weights of the candidate-sum columns and of -rho*area, on the relative residual."""
    design = np.column_stack([sums, -rho_area]) / pt_gen[:, None]
    used = np.abs(design).sum(axis=0) > 0
    weights = np.zeros(design.shape[1])
    weights[used] = np.linalg.lstsq(design[:, used], np.ones(len(pt_gen)), rcond=None)[0]
    return weights


def apply_candidate_weights(weights: np.ndarray, sums: np.ndarray, rho_area: np.ndarray) -> np.ndarray:
    """Per-candidate calibrated jet pT (GeV)."""
    return np.column_stack([sums, -rho_area]) @ weights


def residual_table(pt: np.ndarray, eta: np.ndarray, pt_gen: np.ndarray, min_count: int = 20) -> np.ndarray:
    """Median response pt/pt_gen in (pt, |eta|) bins of the corrected pT itself (1 where too few jets)."""
    table = np.ones((len(PT_EDGES) - 1, len(ABS_ETA_EDGES) - 1))
    ip = np.clip(np.searchsorted(PT_EDGES, pt, side="right") - 1, 0, len(PT_EDGES) - 2)
    ie = np.clip(np.searchsorted(ABS_ETA_EDGES, np.abs(eta), side="right") - 1, 0, len(ABS_ETA_EDGES) - 2)
    r = pt / pt_gen
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            sel = (ip == i) & (ie == j)
            if sel.sum() >= min_count:
                table[i, j] = np.median(r[sel])
    return table


def apply_residual(table: np.ndarray, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    ip = np.clip(np.searchsorted(PT_EDGES, pt, side="right") - 1, 0, len(PT_EDGES) - 2)
    ie = np.clip(np.searchsorted(ABS_ETA_EDGES, np.abs(eta), side="right") - 1, 0, len(ABS_ETA_EDGES) - 2)
    return pt / table[ip, ie]


def resolution(response: np.ndarray) -> float:
    """IQR / median of the response."""
    q25, q50, q75 = np.quantile(response, [0.25, 0.5, 0.75])
    return float((q75 - q25) / q50)


def l1l2(jets: dict[str, np.ndarray], jec_path: str) -> np.ndarray:
    """L1L2-corrected pT (GeV) through the processors' jetmet_tools evaluation."""
    import awkward as ak

    from physics.jec import JECConfig, l1l2_pt

    n = len(jets["pt_raw"])
    table = ak.unflatten(ak.zip({"pt": jets["pt_raw"], "mass": np.zeros(n), "pt_raw": jets["pt_raw"],
                                 "mass_raw": np.zeros(n), "eta": jets["eta"], "phi": jets["phi"],
                                 "area": jets["area"], "rho": jets["rho"]}), [n])
    return ak.to_numpy(ak.flatten(l1l2_pt(table, JECConfig.from_yaml(jec_path)))).astype(np.float64)


def compare(jets: dict[str, np.ndarray], pt_l1l2: np.ndarray, pt_gen_min: float = 30.0) -> dict:
    """Resolutions on the odd events: L1L2 (+residual) and the per-candidate calibration (+residual)."""
    train = (jets["event"] % 2 == 0) & (jets["pt_gen"] > 15.0)
    test = (jets["event"] % 2 == 1) & (jets["pt_gen"] > pt_gen_min) & (np.abs(jets["eta_gen"]) < 2.5)
    weights = fit_candidate_weights(jets["sums"][train], jets["rho_area"][train], jets["pt_gen"][train])
    pt_cand = apply_candidate_weights(weights, jets["sums"], jets["rho_area"])
    out = {"n_train": int(train.sum()), "n_test": int(test.sum()), "pt_bins": {}}
    corrected = {}
    for name, pt in (("L1L2", pt_l1l2), ("per-candidate", pt_cand)):
        table = residual_table(pt[train], jets["eta"][train], jets["pt_gen"][train])
        corrected[name] = apply_residual(table, pt, jets["eta"])
        out[name] = resolution(corrected[name][test] / jets["pt_gen"][test])
    out["improvement"] = 1.0 - out["per-candidate"] / out["L1L2"]
    for lo, hi in ((30, 60), (60, 150), (150, 400), (400, 5000)):
        sel = test & (jets["pt_gen"] >= lo) & (jets["pt_gen"] < hi)
        if sel.sum() >= 50:
            out["pt_bins"][f"{lo}-{hi}"] = {name: resolution(pt[sel] / jets["pt_gen"][sel])
                                            for name, pt in corrected.items()} | {"n": int(sel.sum())}
    return out


def main(args: argparse.Namespace) -> int:
    from execution.runner import quiet_schema_notes

    with quiet_schema_notes():
        jets = read_jets(list(args.fileset))
    res = compare(jets, l1l2(jets, args.jec), args.pt_gen_min)
    print(f"gen-matched jets: {res['n_train']} fit (even events), {res['n_test']} test "
          f"(odd events, pt_gen > {args.pt_gen_min:g} GeV, |eta_gen| < 2.5)")
    print(f"resolution (IQR/median): L1L2 {res['L1L2']:.4f}   per-candidate {res['per-candidate']:.4f}   "
          f"improvement {100 * res['improvement']:.1f}%")
    for name, row in res["pt_bins"].items():
        print(f"  pt_gen {name:>9s} GeV: L1L2 {row['L1L2']:.4f}  per-candidate {row['per-candidate']:.4f}  "
              f"({row['n']} jets)")
    return 0
