"""Particle-flow validation of generated samples: jet composition, response vs neutral-hadron
fraction, q/g response, PFCands distributions next to real PFNano (GeV).

``pf_numbers(files)`` returns the numbers issue 17 asks for (use a no-pileup sample):
raw response by quintile of the jet's neutral-hadron pT fraction at 50-200 GeV, |eta| < 1.3,
the mean charged / photon / neutral-hadron pT fractions there, and the uds - g raw response
difference at 30-50 GeV. ``pf_figures(files, outdir)`` draws them with the PFCands
distributions of ``REAL_PFNANO``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from physics.jets import FLAVOUR_CODES

REAL_PFNANO = Path(__file__).resolve().parents[2] / "shared" / "data" / "cms" / "pfnano.root"
TYPES = {"charged": (11, 13, 211), "photon": (22,), "neutral": (130,), "hf": (1, 2)}


def jet_composition(files: list[str]) -> dict:
    """Per matched jet: pt_raw, pt_gen, eta_gen, flavour and raw-pT fractions by candidate type."""
    import awkward as ak
    import uproot

    rows = []
    for f in files:
        a = uproot.open(f)["Events"].arrays(["Jet_pt", "Jet_rawFactor", "Jet_genJetIdx", "Jet_hadronFlavour",
                                             "Jet_partonFlavour", "GenJet_pt", "GenJet_eta", "PFCands_pt",
                                             "PFCands_pdgId", "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx"])
        nj = ak.to_numpy(ak.num(a["Jet_pt"]))
        joff = np.concatenate([[0], np.cumsum(nj)])[:-1]
        jidx = a["JetPFCands_jetIdx"]
        ev = np.repeat(np.arange(len(nj)), ak.to_numpy(ak.num(jidx)))
        gj = ak.to_numpy(ak.flatten(jidx)) + joff[ev]
        cpt = ak.to_numpy(ak.flatten(a["PFCands_pt"][a["JetPFCands_pFCandsIdx"]])).astype(float)
        cid = np.abs(ak.to_numpy(ak.flatten(a["PFCands_pdgId"][a["JetPFCands_pFCandsIdx"]])))
        ntot = int(nj.sum())
        raw = ak.to_numpy(ak.flatten(a["Jet_pt"] * (1 - a["Jet_rawFactor"])))
        sums = {k: np.bincount(gj, np.where(np.isin(cid, v), cpt, 0.0), ntot) for k, v in TYPES.items()}
        tot = np.maximum(sum(sums.values()), 1e-9)
        gi = a["Jet_genJetIdx"]
        ok = gi >= 0
        gsafe = ak.where(ok, gi, 0)
        gpt = ak.fill_none(ak.pad_none(a["GenJet_pt"], 1), -1.0)[gsafe]
        geta = ak.fill_none(ak.pad_none(a["GenJet_eta"], 1), 99.0)[gsafe]
        hf, pf = (ak.to_numpy(ak.flatten(a[k])) for k in ("Jet_hadronFlavour", "Jet_partonFlavour"))
        rows.append({"pt_raw": raw, "pt_gen": ak.to_numpy(ak.flatten(ak.where(ok, gpt, -1.0))),
                     "eta_gen": ak.to_numpy(ak.flatten(ak.where(ok, geta, 99.0))),
                     "flavour": np.where(hf > 0, hf, np.abs(pf)),
                     **{f"f_{k}": v / tot for k, v in sums.items()}})
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def pf_numbers(files: list[str]) -> dict:
    """The issue-17 numbers (see module doc) as a dict."""
    j = jet_composition(files)
    sel = (j["pt_gen"] > 50) & (j["pt_gen"] < 200) & (np.abs(j["eta_gen"]) < 1.3)
    r = j["pt_raw"] / np.where(j["pt_gen"] > 0, j["pt_gen"], 1.0)
    fn = j["f_neutral"][sel]
    rank = np.empty(len(fn), dtype=np.int64)
    rank[np.argsort(fn, kind="stable")] = np.arange(len(fn))
    q = rank * 5 // max(len(fn), 1)
    med = [float(np.median(r[sel][q == k])) if np.any(q == k) else float("nan") for k in range(5)]
    low = (j["pt_gen"] > 30) & (j["pt_gen"] < 50) & (np.abs(j["eta_gen"]) < 1.3)
    uds, g = low & np.isin(j["flavour"], FLAVOUR_CODES["uds"]), low & np.isin(j["flavour"], FLAVOUR_CODES["g"])
    out = {"n_jets": int(sel.sum()), "response_by_nh_quintile": med,
           "nh_quintile_change": float(med[-1] / med[0] - 1.0) if med[0] > 0 else float("nan"),
           "qg_response_difference_30_50": float(np.median(r[uds]) - np.median(r[g])) if uds.any() and g.any()
           else float("nan")}
    for k in TYPES:
        out[f"mean_fraction_{k}"] = float(np.mean(j[f"f_{k}"][sel])) if sel.any() else float("nan")
    return out


def pfcand_distributions(path: str, pt_min: float = 0.0, abs_eta_max: float = 5.0) -> dict:
    """Jet-constituent PFCands distributions of a file: pvAssocQuality, lostInnerHits (charged),
    puppiWeight (charged, neutral), pdgId mix and candidates per jet, for jets with raw pT > ``pt_min`` (GeV)
    and |eta| < ``abs_eta_max``; ``*_jet`` give each entry's jet (index into ``jet_pt``, the selected jets' raw pT,
    and ``jet_event``, their event)."""
    import awkward as ak
    import uproot

    a = uproot.open(path)["Events"].arrays(["PFCands_pvAssocQuality", "PFCands_lostInnerHits", "PFCands_puppiWeight",
                                            "PFCands_pdgId", "PFCands_charge", "JetPFCands_pFCandsIdx", "JetPFCands_jetIdx",
                                            "Jet_pt", "Jet_rawFactor", "Jet_eta"])
    raw = (1 - a["Jet_rawFactor"]) * a["Jet_pt"]
    jets = (raw > pt_min) & (abs(a["Jet_eta"]) < abs_eta_max)
    keep = jets[a["JetPFCands_jetIdx"]]
    idx = a["JetPFCands_pFCandsIdx"][keep]
    f = {k: ak.to_numpy(ak.flatten(a[f"PFCands_{k}"][idx])) for k in
         ("pvAssocQuality", "lostInnerHits", "puppiWeight", "pdgId", "charge")}
    flat_jets = ak.to_numpy(ak.flatten(jets))
    rank = np.cumsum(flat_jets) - 1                                  # index among the selected jets
    offset = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(jets)))])[:-1]
    jet_idx = a["JetPFCands_jetIdx"][keep]
    cand_jet = rank[ak.to_numpy(ak.flatten(jet_idx + offset))] if len(flat_jets) else np.zeros(0, np.int64)
    ch = f["charge"] != 0
    return {"pvAssocQuality": f["pvAssocQuality"][ch], "lostInnerHits": f["lostInnerHits"][ch],
            "puppiWeight_charged": f["puppiWeight"][ch], "puppiWeight_neutral": f["puppiWeight"][~ch],
            "pdgId": np.abs(f["pdgId"]), "charged_jet": cand_jet[ch], "neutral_jet": cand_jet[~ch],
            "pdgId_jet": cand_jet, "jet_pt": ak.to_numpy(ak.flatten(raw[jets])).astype(float),
            "jet_event": np.repeat(np.arange(len(raw)), ak.to_numpy(ak.sum(jets, axis=1))),
            "per_jet": len(f["pdgId"]) / max(int(ak.sum(jets)), 1)}


def merge_distributions(dists: list[dict]) -> dict:
    """One ``pfcand_distributions`` dict from several files' (jet indices shifted, per-jet count re-averaged)."""
    shift = np.cumsum([0] + [len(d["jet_pt"]) for d in dists])
    events = np.cumsum([0] + [int(d["jet_event"].max()) + 1 if len(d["jet_event"]) else 0 for d in dists])
    out = {k: np.concatenate([d[k] + (s if k.endswith("_jet") else e if k == "jet_event" else 0)
                              for d, s, e in zip(dists, shift, events)])
           for k in dists[0] if k != "per_jet"}
    out["per_jet"] = len(out["pdgId"]) / max(len(out["jet_pt"]), 1)
    return out


def spectrum_weight(reference_jet_pt: np.ndarray, jet_pt: np.ndarray, edges: np.ndarray):
    """Per-jet weight function w(pT) that gives ``jet_pt`` the raw-pT spectrum of ``reference_jet_pt``
    in ``edges`` (GeV); jets outside the edges or in bins the sample lacks get 0."""
    ref = np.histogram(reference_jet_pt, edges)[0] / max(len(reference_jet_pt), 1)
    own = np.histogram(jet_pt, edges)[0] / max(len(jet_pt), 1)
    ratio = np.where(own > 0, ref / np.where(own > 0, own, 1.0), 0.0)

    def weight(pt: np.ndarray) -> np.ndarray:
        b = np.searchsorted(edges, pt, side="right") - 1
        ok = (b >= 0) & (b < len(ratio))
        return np.where(ok, ratio[np.clip(b, 0, len(ratio) - 1)], 0.0)
    return weight


def pf_figures(files: list[str], outdir: str) -> list[str]:
    """Composition, response vs neutral-hadron fraction and PFCands vs real PFNano figures (PNG + PDF)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    out = Path(outdir)
    paths = []
    j = jet_composition(files)
    sel = (j["pt_gen"] > 30) & (np.abs(j["eta_gen"]) < 1.3)
    edges = np.geomspace(30, 1000, 10)
    b = np.searchsorted(edges, j["pt_gen"][sel]) - 1
    fig, ax = plt.subplots()
    x = np.sqrt(edges[:-1] * edges[1:])
    for k in TYPES:
        ax.plot(x, [np.mean(j[f"f_{k}"][sel][b == i]) if np.any(b == i) else np.nan for i in range(len(x))], "o-",
                label=k)
    ax.set_xscale("log"); ax.set_xlabel(r"$p_T^{gen}$ [GeV]"); ax.set_ylabel("raw pT fraction"); ax.legend()
    paths += save_figure(fig, out / "pf_jet_composition")
    s2 = (j["pt_gen"] > 50) & (j["pt_gen"] < 200) & (np.abs(j["eta_gen"]) < 1.3)
    fe = np.linspace(0, 0.5, 11)
    bb = np.searchsorted(fe, j["f_neutral"][s2]) - 1
    r = (j["pt_raw"] / np.maximum(j["pt_gen"], 1e-9))[s2]
    fig, ax = plt.subplots()
    ax.plot(0.5 * (fe[:-1] + fe[1:]), [np.median(r[bb == i]) if np.sum(bb == i) > 5 else np.nan for i in range(10)], "o-")
    ax.set_xlabel("neutral-hadron pT fraction (50-200 GeV, |eta| < 1.3)"); ax.set_ylabel("median raw response")
    paths += save_figure(fig, out / "pf_response_vs_nh_fraction")
    gen = merge_distributions([pfcand_distributions(f, 30.0, 2.5) for f in files])
    real = pfcand_distributions(str(REAL_PFNANO), 30.0, 2.5) if REAL_PFNANO.exists() else None
    jet_w = (spectrum_weight(real["jet_pt"], gen["jet_pt"], JET_PT_EDGES)(gen["jet_pt"]) if real is not None
             else np.ones(len(gen["jet_pt"])))
    owner = {"pvAssocQuality": "charged", "lostInnerHits": "charged", "puppiWeight_charged": "charged",
             "puppiWeight_neutral": "neutral", "pdgId": "pdgId"}
    for key, bins in (("pvAssocQuality", np.arange(-0.5, 8.5)), ("lostInnerHits", np.arange(-1.5, 3.5)),
                      ("puppiWeight_charged", np.linspace(0, 1, 21)), ("puppiWeight_neutral", np.linspace(0, 1, 21)),
                      ("pdgId", np.array([0, 1.5, 2.5, 12, 14, 30, 140, 300]))):
        fig, ax = plt.subplots()
        w = jet_w[gen[f"{owner[key]}_jet"]]
        ax.hist(gen[key], bins, weights=w, histtype="step", density=True, label="generated (real jet-pT spectrum)")
        if real is not None:
            ax.hist(real[key], bins, histtype="step", density=True, label=f"real PFNano ({len(real['jet_pt'])} jets)")
        ax.set_xlabel(f"PFCands {key} (jets raw pT > 30 GeV, |eta| < 2.5)"); ax.legend()
        paths += save_figure(fig, out / f"pfcands_{key}")
    if real is not None:
        table = out / "pfcands_vs_real.md"
        table.write_text(pfcand_table(files, str(REAL_PFNANO), 30.0, 2.5, match_spectrum=True) + "\n")
        paths.append(str(table))
    return paths


def truth_composition(n_events: int = 600, seed: int = 9, pt_range: tuple[float, float] = (50.0, 200.0),
                      abs_eta_max: float = 1.3, r: float = 0.4) -> dict[str, float]:
    """Generator-level against reconstructed content of no-pileup QCD jets, as mean shares of the gen jet pT.

    ``n_events`` Pythia events (seed ``seed``) go through the detector; for every anti-kT gen jet in ``pt_range``
    (GeV) and |eta| < ``abs_eta_max``, the pT within dR < ``r`` of its axis is summed for: generator charged
    particles, photons and neutral hadrons (K0S and Lambda reaching the calorimeter count as neutral), the charged
    particles that are tracked, and the PF candidates of each type (charged: hadrons, electrons, muons)."""
    from samples.generate import _cluster, _flat_particles, _kin, delta_r, mix_pileup
    from samples.pf_calibration import load_table
    from samples.pythia_gen import generate_events
    from samples.reconstruction import kinematics, reconstruct

    hard = generate_events("qcd", n_events, seed)
    no_pileup = mix_pileup({}, 0, np.random.default_rng(0))
    no_pileup["vertex_z"] = no_pileup.pop("vertex_z_mm")
    parts = _flat_particles(hard, np.zeros(n_events), [no_pileup] * n_events)      # sorted by event
    rec = reconstruct(parts, n_events, np.zeros(n_events, dtype=np.int64), seed, load_table())
    kin = kinematics(parts)
    tracked = np.zeros(len(kin["pt"]), dtype=bool)
    tracked[rec["tracks"]["particle"]] = True
    c = rec["cands"]                                                                 # sorted by event
    cid = np.abs(c["pdgId"])
    visible = ~np.isin(np.abs(parts["pdgId"]), (12, 14, 16))
    charged, photon = parts["charge"] != 0, np.abs(parts["pdgId"]) == 22
    masks = {"gen charged": charged, "gen photons": photon, "gen neutral hadrons": ~charged & ~photon,
             "tracked charged": charged & tracked}
    reco = {"PF charged": np.isin(cid, TYPES["charged"]), "PF photons": cid == 22, "PF neutral hadrons": cid == 130}
    jets, _, _ = _cluster(*(parts[k][visible] for k in ("px", "py", "pz", "e")), parts["event"][visible], n_events,
                          pt_range[0])
    p_bounds = np.searchsorted(parts["event"], np.arange(n_events + 1))
    c_bounds = np.searchsorted(c["event"], np.arange(n_events + 1))
    rows = []
    for i in range(n_events):
        _, jpt, jeta, jphi, _ = _kin(jets[i])
        p_ev, c_ev = slice(p_bounds[i], p_bounds[i + 1]), slice(c_bounds[i], c_bounds[i + 1])
        for k in np.nonzero((jpt > pt_range[0]) & (jpt < pt_range[1]) & (np.abs(jeta) < abs_eta_max))[0]:
            near = visible[p_ev] & (delta_r(kin["eta"][p_ev], kin["phi"][p_ev], jeta[k], jphi[k]) < r)
            near_c = delta_r(c["eta"][c_ev], c["phi"][c_ev], jeta[k], jphi[k]) < r
            rows.append([kin["pt"][p_ev][near & m[p_ev]].sum() / jpt[k] for m in masks.values()]
                        + [c["pt"][c_ev][near_c & m[c_ev]].sum() / jpt[k] for m in reco.values()])
    mean = np.mean(rows, axis=0) if rows else np.full(len(masks) + len(reco), np.nan)
    return {"n_jets": len(rows), **{f"{name} / gen jet pT": float(v) for name, v in zip([*masks, *reco], mean)}}


__all__ = ["pf_numbers", "pf_figures", "jet_composition", "pfcand_distributions", "pfcand_table", "spectrum_weight",
           "bootstrap_spread", "merge_distributions", "pfcand_breakdown",
           "truth_composition"]


def save_figure(fig, stem: Path) -> list[str]:
    """Save ``fig`` as STEM.png and STEM.pdf and close it; returns the paths."""
    import matplotlib.pyplot as plt

    out = [str(stem.with_suffix(".png")), str(stem.with_suffix(".pdf"))]
    for p in out:
        fig.savefig(p)
    plt.close(fig)
    return out


def pfcand_summary(dist: dict, jet_weights: np.ndarray | None = None) -> dict[str, float]:
    """Fractions that characterise the jet-constituent PFCands of ``pfcand_distributions``; with
    ``jet_weights`` (one per selected jet, e.g. from ``spectrum_weight``) every entry counts with its jet's weight."""
    jw = np.ones(len(dist["jet_pt"])) if jet_weights is None else np.asarray(jet_weights, dtype=float)

    def frac(sel, owner: str) -> float:
        w = jw[dist[f"{owner}_jet"]]
        return float(np.sum(w * sel) / np.sum(w)) if np.sum(w) > 0 else float("nan")

    q, lih = dist["pvAssocQuality"], dist["lostInnerHits"]
    wc, wn, pid = dist["puppiWeight_charged"], dist["puppiWeight_neutral"], dist["pdgId"]
    row = {f"pvAssocQuality={v}": frac(q == v, "charged") for v in (0, 1, 4, 5, 6, 7)}
    row.update({f"lostInnerHits={v}": frac(lih == v, "charged") for v in (-1, 0, 1, 2)})
    row.update({"puppiWeight charged = 0": frac(wc < 0.01, "charged"),
                "puppiWeight charged = 1": frac(wc > 0.99, "charged"),
                "puppiWeight neutral < 0.5": frac(wn < 0.5, "neutral"),
                "puppiWeight neutral = 1": frac(wn > 0.99, "neutral")})
    row.update({f"pdgId {name}": frac(np.isin(pid, codes), "pdgId") for name, codes in
                (("211", (211,)), ("22", (22,)), ("130", (130,)), ("1,2 (HF)", (1, 2)), ("11", (11,)),
                 ("13", (13,)))})
    n_cand = np.sum(jw[dist["pdgId_jet"]])
    row["candidates per jet"] = float(n_cand / np.sum(jw)) if np.sum(jw) > 0 else float("nan")
    return row


def bootstrap_spread(dist: dict, n_boot: int = 300, seed: int = 1, jet_weights: np.ndarray | None = None
                     ) -> dict[str, float]:
    """Standard deviation of every ``pfcand_summary`` value over event bootstrap replicas (the statistical
    uncertainty of a small sample such as the real file's 34 jets in 10 events; events, not jets, are drawn
    because the jets of one event share their pileup); ``jet_weights`` as in ``pfcand_summary``."""
    rng = np.random.default_rng(seed)
    ev = np.unique(dist["jet_event"], return_inverse=True)[1]
    ne = int(ev.max()) + 1 if len(ev) else 0
    jw = np.ones(len(ev)) if jet_weights is None else np.asarray(jet_weights, dtype=float)
    reps = [pfcand_summary(dist, jw * np.bincount(rng.integers(0, ne, ne), minlength=ne)[ev]) for _ in range(n_boot)]
    return {k: float(np.nanstd([r[k] for r in reps])) for k in reps[0]}


JET_PT_EDGES = np.array([30.0, 60.0, 120.0, 300.0, 1000.0, 1300.0, 1700.0])


def pfcand_table(generated: str | list[str], real: str, pt_min: float = 0.0, abs_eta_max: float = 5.0,
                 match_spectrum: bool = False, edges: np.ndarray = JET_PT_EDGES) -> str:
    """Markdown table: generated jet-constituent PFCands next to real PFNano (same jet selection), each with its
    event-bootstrap uncertainty, and the difference in units of both combined; with ``match_spectrum`` the generated
    jets are weighted to the real jets' raw-pT spectrum in ``edges`` (GeV), which leaves few effective generated
    jets at 1-1.7 TeV, so the generated error matters too."""
    files = [generated] if isinstance(generated, str) else list(generated)
    gd = merge_distributions([pfcand_distributions(f, pt_min, abs_eta_max) for f in files])
    rd = pfcand_distributions(real, pt_min, abs_eta_max)
    weights = spectrum_weight(rd["jet_pt"], gd["jet_pt"], edges)(gd["jet_pt"]) if match_spectrum else None
    g, r, err = pfcand_summary(gd, weights), pfcand_summary(rd), bootstrap_spread(rd)
    gerr = bootstrap_spread(gd, 100, 2, weights)
    n_gen = int(np.count_nonzero(weights)) if weights is not None else len(gd["jet_pt"])
    lines = [f"| quantity (jet constituents) | generated ({n_gen} jets) | real PFNano ({len(rd['jet_pt'])} jets) "
             "| (gen - real) / error |", "|---|---|---|---|"]
    for k in g:
        e = float(np.hypot(err[k], gerr[k]))
        pull = (g[k] - r[k]) / e if e > 0 else float("nan")
        lines.append(f"| {k} | {g[k]:.3f} ± {gerr[k]:.3f} | {r[k]:.3f} ± {err[k]:.3f} | {pull:+.1f} |")
    return "\n".join(lines)


BREAKDOWN_JET_PT = ((30.0, 100.0), (100.0, 300.0), (1000.0, 2000.0))


def _jet_constituents(files: list[str]) -> dict[str, np.ndarray]:
    """Jet-constituent PFCands (raw jet pT > 30 GeV, |eta| < 2.5) of ``files`` as flat columns, each with its
    jet's raw pT (``jet_pt``), plus per event rho and the number of pileup interactions (-1 where absent)."""
    import awkward as ak
    import uproot

    keys = ("pt", "eta", "pdgId", "charge", "puppiWeight", "pvAssocQuality", "lostInnerHits", "dzErr")
    cols: dict[str, list] = {k: [] for k in keys + ("jet_pt", "rho", "n_pu")}
    for f in files:
        tree = uproot.open(f)["Events"]
        a = tree.arrays([f"PFCands_{k}" for k in keys] + ["JetPFCands_pFCandsIdx", "JetPFCands_jetIdx", "Jet_pt",
                                                           "Jet_rawFactor", "Jet_eta", "fixedGridRhoFastjetAll"])
        raw = (1 - a["Jet_rawFactor"]) * a["Jet_pt"]
        keep = ((raw > 30) & (abs(a["Jet_eta"]) < 2.5))[a["JetPFCands_jetIdx"]]
        idx = a["JetPFCands_pFCandsIdx"][keep]
        for k in keys:
            cols[k].append(ak.to_numpy(ak.flatten(a[f"PFCands_{k}"][idx])))
        cols["jet_pt"].append(ak.to_numpy(ak.flatten(raw[a["JetPFCands_jetIdx"][keep]])))
        cols["rho"].append(ak.to_numpy(a["fixedGridRhoFastjetAll"]))
        cols["n_pu"].append(tree["Pileup_nPU"].array(library="np") if "Pileup_nPU" in tree.keys()
                            else np.full(len(raw), -1))
    return {k: np.concatenate(v) for k, v in cols.items()}


def pfcand_breakdown(files: str | list[str]) -> dict[str, float]:
    """Where the PFCands of jets differ, as numbers to set next to real PFNano's (GeV, cm): per jet raw-pT range
    (``BREAKDOWN_JET_PT``) the pT shares of charged / photons / neutral hadrons, the neutral hadrons' median pT,
    the share of neutrals below 1 GeV and the share of 3-10 GeV neutrals at PUPPI weight 1; for charged tracks the
    share of lostInnerHits=2 tracks at pvAssocQuality 1 and the median dzErr of prompt |eta| < 1 tracks with a
    layer-1 hit in pT bins; the events' mean rho and pileup interactions."""
    c = _jet_constituents([files] if isinstance(files, str) else list(files))
    pid, pt, charged = np.abs(c["pdgId"]), c["pt"].astype(float), c["charge"] != 0
    neutral_w = c["puppiWeight"]
    out: dict[str, float] = {}
    for lo, hi in BREAKDOWN_JET_PT:
        tag = f"{lo:.0f}-{hi:.0f} GeV jets"
        s = (c["jet_pt"] > lo) & (c["jet_pt"] < hi)
        total = max(pt[s].sum(), 1e-9)
        out[f"{tag}: pT share charged"] = float(pt[s & charged].sum() / total)
        out[f"{tag}: pT share photons"] = float(pt[s & (pid == 22)].sum() / total)
        out[f"{tag}: pT share neutral hadrons"] = float(pt[s & (pid == 130)].sum() / total)
        nh, ne = s & (pid == 130), s & ~charged
        mid = ne & (pt > 3) & (pt < 10)
        out[f"{tag}: neutral-hadron median pT"] = float(np.median(pt[nh])) if nh.any() else float("nan")
        out[f"{tag}: neutrals below 1 GeV"] = float(np.mean(pt[ne] < 1)) if ne.any() else float("nan")
        out[f"{tag}: 3-10 GeV neutrals at PUPPI weight 1"] = float(np.mean(neutral_w[mid] > 0.99)) if mid.any() \
            else float("nan")
    strip = charged & (c["lostInnerHits"] == 2)
    out["lostInnerHits=2 tracks at pvAssocQuality 1"] = float(np.mean(c["pvAssocQuality"][strip] == 1)) \
        if strip.any() else float("nan")
    prompt = charged & (c["lostInnerHits"] == -1) & (c["dzErr"] > 0) & (np.abs(c["eta"]) < 1)
    for lo, hi in ((0.5, 1.0), (1.0, 2.0), (2.0, 5.0), (5.0, 20.0)):
        m = prompt & (pt > lo) & (pt < hi)
        out[f"median dzErr [um], prompt tracks {lo:g}-{hi:g} GeV"] = float(np.median(c["dzErr"][m]) * 1e4) if m.any() \
            else float("nan")
    out["mean rho [GeV]"] = float(np.mean(c["rho"]))
    out["mean pileup interactions"] = float(np.mean(c["n_pu"]))
    return out
