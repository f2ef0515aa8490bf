"""Validation quantities and figures of generated samples (raw response, q/g shapes, rho vs nPU)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from physics.jets import FLAVOUR_CODES
from samples.pf_validation import pf_figures, save_figure


def load_jets(files: list[str]) -> dict:
    """Flat arrays of matched reco jets (pt_raw, pt_gen, eta_gen, flavour, nConstituents, sigma2) and events."""
    import awkward as ak
    import uproot

    jets, evs = [], []
    for f in files:
        t = uproot.open(f)["Events"]
        a = t.arrays(["Jet_pt", "Jet_rawFactor", "Jet_eta", "Jet_phi", "Jet_genJetIdx", "Jet_hadronFlavour",
                      "Jet_partonFlavour", "Jet_nConstituents", "GenJet_pt", "GenJet_eta", "PFCands_pt",
                      "PFCands_eta", "PFCands_phi", "JetPFCands_jetIdx", "fixedGridRhoFastjetAll", "Pileup_nPU",
                      "PV_npvs"])
        gi = a["Jet_genJetIdx"]
        ok = gi >= 0
        gi_safe = ak.where(ok, gi, 0)
        gpt = ak.fill_none(ak.pad_none(a["GenJet_pt"], 1), -1.0)
        geta = ak.fill_none(ak.pad_none(a["GenJet_eta"], 1), 99.0)
        pt_gen = ak.where(ok, gpt[gi_safe], -1.0)
        # sigma2 (axis2-like) from the constituents, pt^2 weighted
        idx = a["JetPFCands_jetIdx"]
        w = a["PFCands_pt"] ** 2
        deta = a["PFCands_eta"] - a["Jet_eta"][idx]
        dphi = np.mod(a["PFCands_phi"] - a["Jet_phi"][idx] + np.pi, 2 * np.pi) - np.pi
        nj = ak.num(a["Jet_pt"])
        flat_ev = np.repeat(np.arange(len(nj)), ak.to_numpy(ak.num(idx)))
        offs = np.concatenate([[0], np.cumsum(ak.to_numpy(nj))])[:-1]
        gj = ak.to_numpy(ak.flatten(idx)) + offs[flat_ev]
        ntot = int(ak.sum(nj))
        wf = ak.to_numpy(ak.flatten(w))
        de, dp = ak.to_numpy(ak.flatten(deta)), ak.to_numpy(ak.flatten(dphi))
        sw = np.bincount(gj, wf, ntot)
        m = [np.bincount(gj, wf * x, ntot) / np.maximum(sw, 1e-9) for x in (de, dp, de * de, dp * dp, de * dp)]
        cee, cpp, cep = m[2] - m[0] ** 2, m[3] - m[1] ** 2, m[4] - m[0] * m[1]
        tr, det = cee + cpp, cee * cpp - cep ** 2
        sigma2 = np.sqrt(np.clip(tr / 2 - np.sqrt(np.clip(tr * tr / 4 - det, 0, None)), 0, None))
        hf, pf = ak.to_numpy(ak.flatten(a["Jet_hadronFlavour"])), np.abs(ak.to_numpy(ak.flatten(a["Jet_partonFlavour"])))
        jets.append({
            "pt_raw": ak.to_numpy(ak.flatten(a["Jet_pt"] * (1 - a["Jet_rawFactor"]))),
            "pt_gen": ak.to_numpy(ak.flatten(pt_gen)),
            "eta_gen": ak.to_numpy(ak.flatten(ak.where(ok, geta[gi_safe], 99.0))),
            "flavour": np.where(hf > 0, hf, pf),
            "nConstituents": ak.to_numpy(ak.flatten(a["Jet_nConstituents"])),
            "sigma2": sigma2,
        })
        evs.append({"rho": ak.to_numpy(a["fixedGridRhoFastjetAll"]), "nPU": ak.to_numpy(a["Pileup_nPU"]),
                    "npv": ak.to_numpy(a["PV_npvs"])})
    cat = lambda lst: {k: np.concatenate([d[k] for d in lst]) for k in lst[0]}  # noqa: E731
    return {"jets": cat(jets), "events": cat(evs)}


def median_response(jets: dict, flavour: str | None, pt_lo: float, pt_hi: float, eta_max: float = 2.5) -> tuple[float, int]:
    """Median raw response pt_raw/pt_gen of matched jets in a pt_gen bin (and flavour); (median, count)."""
    sel = (jets["pt_gen"] >= pt_lo) & (jets["pt_gen"] < pt_hi) & (np.abs(jets["eta_gen"]) < eta_max)
    if flavour is not None:
        sel &= np.isin(jets["flavour"], FLAVOUR_CODES[flavour])
    r = jets["pt_raw"][sel] / jets["pt_gen"][sel]
    return (float(np.median(r)) if len(r) else float("nan")), int(len(r))


def validation_figures(files: list[str], outdir: str) -> list[str]:
    """Raw response vs pt by flavour, multiplicity and sigma2 (q vs g), rho vs nPU; PNG + PDF paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.CMS)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    d = load_jets(files)
    jets, evs = d["jets"], d["events"]
    paths = []
    edges = np.geomspace(20, 3000, 14)
    fig, ax = plt.subplots()
    for fl in FLAVOUR_CODES:
        med = [median_response(jets, fl, lo, hi)[0] for lo, hi in zip(edges[:-1], edges[1:])]
        ax.plot(np.sqrt(edges[:-1] * edges[1:]), med, "o-", label=fl)
    ax.set_xscale("log"); ax.set_xlabel(r"$p_T^{gen}$ [GeV]"); ax.set_ylabel("median raw response"); ax.legend()
    paths += save_figure(fig, out / "raw_response_flavour")
    sel = (jets["pt_gen"] > 30) & (jets["pt_gen"] < 100) & (np.abs(jets["eta_gen"]) < 2.5)
    q, g = sel & np.isin(jets["flavour"], FLAVOUR_CODES["uds"]), sel & np.isin(jets["flavour"], FLAVOUR_CODES["g"])
    for key, bins, name in (("nConstituents", np.arange(0, 80, 2), "multiplicity_qg"),
                            ("sigma2", np.linspace(0, 0.2, 40), "sigma2_qg")):
        fig, ax = plt.subplots()
        ax.hist(jets[key][q], bins, histtype="step", density=True, label="uds")
        ax.hist(jets[key][g], bins, histtype="step", density=True, label="g")
        ax.set_xlabel(key + r" (30 < $p_T^{gen}$ < 100 GeV)"); ax.legend()
        paths += save_figure(fig, out / name)
    fig, ax = plt.subplots()
    ax.scatter(evs["nPU"], evs["rho"], s=4)
    ax.set_xlabel("number of pileup interactions"); ax.set_ylabel(r"$\rho$ [GeV]")
    paths += save_figure(fig, out / "rho_vs_npu")

    paths += pf_figures(files, outdir)
    return paths
