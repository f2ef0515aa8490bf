"""Z/gamma* -> ee samples: Pythia 8 + the parametric electron detector, written in NanoAOD layout.

``generate_zee(outdir, n_events, events_per_file, seed, detector="mc"|"data")`` writes
ROOT files with ``Electron_*``, ``PFCands_*``, ``PV_npvs``, ``fixedGridRhoFastjetAll``,
``run``/``luminosityBlock``/``event`` and, for the "mc" detector only, ``GenPart_*`` and
``Electron_genPartIdx`` (a "data" file carries no generator record).

Pythia runs with QED/QCD showers but without hadronisation and multiparton
interactions (fast; electrons and FSR photons are what matter); the underlying event
and pileup near the electrons come from a simple soft-particle model whose density
follows the event's rho. One chunk = one file = one seed, so chunks run on any
coffea executor and the output is reproducible.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np

from samples.electron_detector import (cut_based_id, get_detector, pileup_candidates,
                                       simulate_electrons, wrap_phi)

#: acceptance of the ECAL + tracker for reconstruction (|eta|)
RECO_MAX_ETA = 2.5
RECO_MIN_PT = 5.0
FSR_CONE = 0.4
GEN_FILTER_ETA, GEN_FILTER_PT = 2.6, 10.0
#: statusFlags bits: isPrompt (0), fromHardProcess (8), isLastCopy (13)
PROMPT_FLAGS = (1 << 0) | (1 << 8) | (1 << 13)


def add_zee_arguments(parser: argparse.ArgumentParser) -> None:
    """Options specific to ``runner.py generate --process zee``."""
    parser.add_argument("--detector", choices=("mc", "data"), default="mc",
                        help="electron detector version: nominal simulation or the 'collision data' one")
    parser.add_argument("--ecm", type=float, default=13600.0, help="centre-of-mass energy (GeV)")


def _pythia(seed: int, ecm: float):
    import pythia8mc

    p = pythia8mc.Pythia("", False)
    for s in (f"Beams:eCM = {ecm}", "WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11",
              "PhaseSpace:mHatMin = 60.", "PhaseSpace:mHatMax = 120.", "PartonLevel:MPI = off",
              "HadronLevel:all = off", "Random:setSeed = on", f"Random:seed = {seed % 900_000_000}",
              "Print:quiet = on", "Next:numberCount = 0",
              ):
        if not p.readString(s):
            raise RuntimeError(f"Pythia rejected setting {s!r}")
    if not p.init():
        raise RuntimeError("Pythia initialisation failed")
    return p


def generator_events(n_events: int, seed: int, ecm: float = 13600.0, gen_filter: bool = True) -> list[dict]:
    """Per event: the Z and the two final electrons and nearby FSR photons (pt, eta, phi, E).

    With ``gen_filter`` only events with both electrons at |eta| < 2.6 and pT > 10 GeV are
    kept (a generator-level filter, as in CMS's filtered Drell-Yan samples).
    """
    p = _pythia(seed, ecm)
    out = []
    while len(out) < n_events:
        if not p.next():
            continue
        ev = p.event
        z = None
        leptons, photons = [], []
        for i in range(ev.size()):
            q = ev[i]
            if q.id() == 23:
                z = (q.pT(), q.eta() if q.pT() > 0 else 0.0, q.phi(), q.m())
            if not q.isFinal():
                continue
            if abs(q.id()) == 11:
                leptons.append((q.e(), q.pT(), q.eta(), q.phi(), q.id()))
            elif q.id() == 22 and q.e() > 0.1 and q.pT() > 0:
                photons.append((q.e(), q.pT(), q.eta(), q.phi()))
        em = max((x for x in leptons if x[4] == 11), key=lambda x: x[0], default=None)
        ep = max((x for x in leptons if x[4] == -11), key=lambda x: x[0], default=None)
        if em is None or ep is None:
            continue
        if gen_filter and not all(abs(x[2]) < GEN_FILTER_ETA and x[1] > GEN_FILTER_PT for x in (em, ep)):
            continue
        if z is None:
            # gamma*: build the boson from the pair
            z = (0.0, 0.0, 0.0, 0.0)
        out.append({"z": z, "electrons": [em, ep], "photons": photons})
    return out


def _event_pileup(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    n_pu = rng.poisson(rng.uniform(15, 50, size=n))
    rho = np.clip(0.55 * n_pu + 1.5 * rng.standard_normal(n), 0.5, None)
    npv = np.maximum(1, rng.binomial(n_pu, 0.7))
    return rho, npv


def simulate_chunk(gen: list[dict], detector: str, seed: int, first_event: int = 0) -> dict:
    """Detector response of a list of generator events; returns awkward-ready per-event lists."""
    import awkward as ak

    det = get_detector(detector)
    rng = np.random.default_rng([seed, 7])
    n = len(gen)
    rho, npv = _event_pileup(rng, n)
    z_vtx = 3.5 * rng.standard_normal(n)
    # flat list of electrons in acceptance
    ev_idx, e_true, eta, phi, charge, gen_idx, extra = [], [], [], [], [], [], []
    for i, g in enumerate(gen):
        for k, (e, pt, et, ph, pid) in enumerate(g["electrons"]):
            if abs(et) > RECO_MAX_ETA or pt < RECO_MIN_PT:
                continue
            ev_idx.append(i)
            e_true.append(e)
            eta.append(et)
            phi.append(ph)
            charge.append(-1 if pid == 11 else 1)
            gen_idx.append(1 + k)
            near = []
            for (ge, gpt, geta, gphi) in g["photons"]:
                dphi = float(wrap_phi(gphi - ph))
                if np.hypot(geta - et, dphi) < FSR_CONE:
                    near.append((ge, geta - et, dphi))
            extra.append(np.array(near).reshape(-1, 3))
    ev_idx = np.array(ev_idx, dtype=np.int64)
    reco = simulate_electrons(np.array(e_true), np.array(eta), np.array(phi), np.array(charge),
                              z_vtx[ev_idx], rho[ev_idx], extra, det, rng)

    # PF candidates per event: the PF electron, brem photons outside the cluster, pileup/UE near each electron
    pf = [[] for _ in range(n)]  # (pt, eta, phi, pdgId)
    for j, i in enumerate(ev_idx):
        pf[i].append((reco["pt"][j], reco["eta"][j], reco["phi"][j], int(-11 * reco["charge"][j])))
        for (e, et, ph) in reco["pf_photons"][j]:
            pf[i].append((e / np.cosh(et), et, ph, 22))
        pf[i].extend(pileup_candidates(reco["eta"][j], reco["phi"][j], rho[i], rng))
    # isolation from the PF candidates (the electron itself excluded)
    iso = np.zeros(len(ev_idx))
    for j, i in enumerate(ev_idx):
        if not pf[i]:
            continue
        c = np.array(pf[i])
        dr = np.hypot(c[:, 1] - reco["eta"][j], wrap_phi(c[:, 2] - reco["phi"][j]))
        own = (np.abs(c[:, 3]) == 11) & (dr < 1e-6)
        iso[j] = c[(dr < 0.3) & ~own, 0].sum() / reco["pt"][j]
    reco["pfRelIso03_all"] = iso
    reco["cutBased"] = cut_based_id(reco["sieie"], reco["hoe"], np.abs(reco["eInvMinusPInv"]), iso,
                                    reco["lostHits"], reco["convVeto"], np.abs(reco["eta_sc"]))

    counts = np.bincount(ev_idx, minlength=n)
    # order electrons by pt inside each event
    order = np.lexsort((-reco["pt"], ev_idx))
    fields = ["pt", "eta", "phi", "charge", "deltaEtaSC", "r9", "sieie", "hoe", "eInvMinusPInv", "energyErr",
              "pfRelIso03_all", "convVeto", "lostHits", "cutBased"]
    ele = {f: np.asarray(reco[f])[order] for f in fields}
    for f in ("pt", "eta", "phi", "deltaEtaSC", "r9", "sieie", "hoe", "eInvMinusPInv", "energyErr", "pfRelIso03_all"):
        ele[f] = ele[f].astype(np.float32)
    ele["mass"] = np.full(len(order), 0.000511, dtype=np.float32)
    ele["genPartIdx"] = np.asarray(gen_idx, dtype=np.int32)[order]
    electrons = ak.unflatten(ak.zip(ele), counts)

    pf_counts = np.array([len(x) for x in pf])
    flat = np.array([c for x in pf for c in x], dtype=np.float64).reshape(-1, 4)
    pdg = flat[:, 3].astype(np.int32)
    charge_pf = np.where(np.abs(pdg) == 11, -np.sign(pdg), np.where(np.abs(pdg) == 211, np.sign(pdg), 0)).astype(np.int32)
    is_ch = charge_pf != 0
    pfc = {
        "pt": flat[:, 0].astype(np.float32), "eta": flat[:, 1].astype(np.float32),
        "phi": flat[:, 2].astype(np.float32),
        "mass": np.where(np.abs(pdg) == 211, 0.1396, np.where(pdg == 130, 0.4976, np.where(np.abs(pdg) == 11, 0.000511, 0.0))).astype(np.float32),
        "pdgId": pdg, "charge": charge_pf,
        "d0": np.where(is_ch, 0.002 * rng.standard_normal(len(pdg)), 0).astype(np.float32),
        "dz": np.where(is_ch, 0.01 * rng.standard_normal(len(pdg)), 0).astype(np.float32),
        "puppiWeight": np.where(np.abs(pdg) == 11, 1.0, rng.uniform(0, 1, len(pdg))).astype(np.float32),
    }
    pfcands = ak.unflatten(ak.zip(pfc), pf_counts)

    tree = {
        "run": np.ones(n, dtype=np.uint32) * (1 if detector == "mc" else 370_000),
        "luminosityBlock": (1 + (first_event + np.arange(n)) // 1000).astype(np.uint32),
        "event": (first_event + np.arange(n)).astype(np.uint64),
        "PV_npvs": npv.astype(np.int32),
        "PV_x": (0.001 * rng.standard_normal(n)).astype(np.float32),
        "PV_y": (0.001 * rng.standard_normal(n)).astype(np.float32),
        "PV_z": z_vtx.astype(np.float32),
        "fixedGridRhoFastjetAll": rho.astype(np.float32),
        "Electron": electrons,
        "PFCands": pfcands,
    }
    if detector == "mc":
        gp = []
        for g in gen:
            zpt, zeta, zphi, zm = g["z"]
            parts = [(zpt, zeta, zphi, zm, 23, 62, -1, PROMPT_FLAGS)]
            for (e, pt, et, ph, pid) in g["electrons"]:
                parts.append((pt, et, ph, 0.000511, pid, 1, 0, PROMPT_FLAGS))
            for (e, pt, et, ph) in g["photons"]:
                d = min(np.hypot(et - x[2], wrap_phi(ph - x[3])) for x in g["electrons"])
                if d < FSR_CONE:
                    parts.append((pt, et, ph, 0.0, 22, 1, 0, (1 << 13)))
            gp.append(parts)
        gcounts = np.array([len(x) for x in gp])
        gflat = np.array([c for x in gp for c in x], dtype=np.float64).reshape(-1, 8)
        tree["GenPart"] = ak.unflatten(ak.zip({
            "pt": gflat[:, 0].astype(np.float32), "eta": gflat[:, 1].astype(np.float32),
            "phi": gflat[:, 2].astype(np.float32), "mass": gflat[:, 3].astype(np.float32),
            "pdgId": gflat[:, 4].astype(np.int32), "status": gflat[:, 5].astype(np.int32),
            "genPartIdxMother": gflat[:, 6].astype(np.int32), "statusFlags": gflat[:, 7].astype(np.int32),
        }), gcounts)
        tree["Pileup_nTrueInt"] = (npv / 0.7).astype(np.float32)
    else:
        tree["Electron"] = ak.without_field(tree["Electron"], "genPartIdx")
        # the generator record of a 'data' file goes to a sidecar the data processing never reads
        # (``*.truth.parquet``): one row per reconstructed electron, joined back only by the truth evaluation
        tree["_hidden_truth"] = {"event": np.repeat(tree["event"], counts), "eta": ele["eta"],
                                 "phi": ele["phi"], "e_true": np.asarray(e_true, dtype=np.float64)[order]}
    return tree


def write_tree(path: str | Path, tree: dict) -> None:
    """Write one NanoAOD-layout ``Events`` tree with uproot."""
    import awkward as ak
    import uproot

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".root.tmp")
    with uproot.recreate(tmp) as f:
        # mktree writes a TTree (NanoAOD layout: nElectron + Electron_pt ...); assignment would write an RNTuple
        written = {k: v for k, v in tree.items() if not k.startswith("_")}
        branch_types = {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in written.items()}
        t = f.mktree("Events", branch_types)
        t.extend(written)
    tmp.replace(path)
    if "_hidden_truth" in tree:
        truth = ak.Array({k: np.asarray(v) for k, v in tree["_hidden_truth"].items()})
        ak.to_parquet(truth, truth_sidecar(path))


def truth_sidecar(path: str | Path) -> Path:
    """The hidden generator-truth file of a 'data' ROOT file (``X.root`` -> ``X.truth.parquet``)."""
    path = Path(path)
    return path.with_name(path.name[:-len(".root")] + ".truth.parquet" if path.name.endswith(".root")
                          else path.name + ".truth.parquet")


def generator_pairs(n_events: int, seed: int, ecm: float = 13600.0) -> dict[str, np.ndarray]:
    """Bare final-state electron pairs at generator level: arrays e, pt, eta, phi of legs 1 and 2 (GeV)."""
    gen = generator_events(n_events, seed, ecm)
    a = np.array([[x for lep in g["electrons"] for x in lep[:4]] for g in gen], dtype=np.float64).reshape(-1, 8)
    return {"e1": a[:, 0], "pt1": a[:, 1], "eta1": a[:, 2], "phi1": a[:, 3],
            "e2": a[:, 4], "pt2": a[:, 5], "eta2": a[:, 6], "phi2": a[:, 7]}


def _generate_chunk(item: tuple, detector: str, ecm: float) -> dict:
    seed, n_events, path, first_event = item
    gen = generator_events(n_events, seed, ecm)
    tree = simulate_chunk(gen, detector, seed, first_event)
    write_tree(path, tree)
    return {"files": [str(path)], "events": n_events}


def chunk_items(outdir: str | Path, n_events: int, events_per_file: int, seed: int, detector: str) -> list[tuple]:
    """One (seed, n_events, path, first_event) per output file; seeds derived from ``seed`` and the file number."""
    outdir = Path(outdir)
    items = []
    n_files = max(1, -(-n_events // events_per_file))
    for k in range(n_files):
        n = min(events_per_file, n_events - k * events_per_file)
        chunk_seed = int(np.random.SeedSequence([seed, k, 0 if detector == "mc" else 1]).generate_state(1)[0])
        items.append((chunk_seed, n, str(outdir / f"zee_{detector}_{seed}_{k:04d}.root"), k * events_per_file))
    return items


def generate_zee(outdir: str | Path, n_events: int, events_per_file: int = 5000, seed: int = 1,
                 detector: str = "mc", executor: str = "iterative", workers: int = 1, ecm: float = 13600.0,
                 status: bool = False) -> list[str]:
    """Generate Z->ee files with the ``detector`` ("mc" or "data") version; returns the file paths."""
    from core.errors import BadInputError
    from execution.executors import make_executor

    if detector not in ("mc", "data"):
        raise BadInputError(f"--detector {detector!r}: choose mc or data")
    if n_events < 1 or events_per_file < 1:
        raise BadInputError(f"n_events ({n_events}) and events_per_file ({events_per_file}) must be positive")
    items = chunk_items(outdir, n_events, events_per_file, seed, detector)
    fn = functools.partial(_generate_chunk, detector=detector, ecm=ecm)
    with make_executor(executor, workers, status=status, desc=f"Z->ee {detector}", unit="file") as ex:
        result = ex(items, fn, {"files": [], "events": 0})
    acc = result[0] if isinstance(result, tuple) else result
    return sorted(acc["files"])


def main(argv: list[str] | None = None) -> int:
    """``python -m samples.zee --out DIR --events N --detector mc|data``."""
    from execution.executors import add_executor_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--events-per-file", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    add_zee_arguments(parser)
    add_executor_arguments(parser, default_workers=1)
    args = parser.parse_args(argv)
    files = generate_zee(args.out, args.events, args.events_per_file, args.seed, args.detector,
                         executor=args.executor, workers=args.workers, ecm=args.ecm, status=not args.no_progress)
    print("\n".join(files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
