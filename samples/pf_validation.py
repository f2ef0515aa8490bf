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
    uds, g = low & np.isin(j["flavour"], (1, 2, 3)), low & (j["flavour"] == 21)
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
    and |eta| < ``abs_eta_max``."""
    import awkward as ak
    import uproot

    a = uproot.open(path)["Events"].arrays(["PFCands_pvAssocQuality", "PFCands_lostInnerHits", "PFCands_puppiWeight",
                                            "PFCands_pdgId", "PFCands_charge", "JetPFCands_pFCandsIdx", "JetPFCands_jetIdx",
                                            "Jet_pt", "Jet_rawFactor", "Jet_eta"])
    jets = ((1 - a["Jet_rawFactor"]) * a["Jet_pt"] > pt_min) & (abs(a["Jet_eta"]) < abs_eta_max)
    idx = a["JetPFCands_pFCandsIdx"][jets[a["JetPFCands_jetIdx"]]]
    f = {k: ak.to_numpy(ak.flatten(a[f"PFCands_{k}"][idx])) for k in
         ("pvAssocQuality", "lostInnerHits", "puppiWeight", "pdgId", "charge")}
    ch = f["charge"] != 0
    return {"pvAssocQuality": f["pvAssocQuality"][ch], "lostInnerHits": f["lostInnerHits"][ch],
            "puppiWeight_charged": f["puppiWeight"][ch], "puppiWeight_neutral": f["puppiWeight"][~ch],
            "pdgId": np.abs(f["pdgId"]), "per_jet": len(f["pdgId"]) / max(int(ak.sum(jets)), 1)}


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
    gen = pfcand_distributions(files[0])
    real = pfcand_distributions(str(REAL_PFNANO)) if REAL_PFNANO.exists() else None
    for key, bins in (("pvAssocQuality", np.arange(-0.5, 8.5)), ("lostInnerHits", np.arange(-1.5, 3.5)),
                      ("puppiWeight_charged", np.linspace(0, 1, 21)), ("puppiWeight_neutral", np.linspace(0, 1, 21)),
                      ("pdgId", np.array([0, 1.5, 2.5, 12, 14, 30, 140, 300]))):
        fig, ax = plt.subplots()
        ax.hist(gen[key], bins, histtype="step", density=True, label=f"generated ({gen['per_jet']:.1f} per jet)")
        if real is not None:
            ax.hist(real[key], bins, histtype="step", density=True, label=f"real PFNano ({real['per_jet']:.1f} per jet)")
        ax.set_xlabel(f"jet PFCands {key}"); ax.legend()
        paths += save_figure(fig, out / f"pfcands_{key}")
    return paths


__all__ = ["pf_numbers", "pf_figures", "jet_composition", "pfcand_distributions"]


def save_figure(fig, stem: Path) -> list[str]:
    """Save ``fig`` as STEM.png and STEM.pdf and close it; returns the paths."""
    import matplotlib.pyplot as plt

    out = [str(stem.with_suffix(".png")), str(stem.with_suffix(".pdf"))]
    for p in out:
        fig.savefig(p)
    plt.close(fig)
    return out


def pfcand_summary(dist: dict) -> dict[str, float]:
    """Fractions that characterise the jet-constituent PFCands of ``pfcand_distributions``."""
    def frac(x, sel) -> float:
        return float(np.mean(sel)) if len(x) else float("nan")

    q, lih = dist["pvAssocQuality"], dist["lostInnerHits"]
    wc, wn, pid = dist["puppiWeight_charged"], dist["puppiWeight_neutral"], dist["pdgId"]
    row = {f"pvAssocQuality={v}": frac(q, q == v) for v in (0, 1, 4, 5, 6, 7)}
    row.update({f"lostInnerHits={v}": frac(lih, lih == v) for v in (-1, 0, 1, 2)})
    row.update({"puppiWeight charged = 0": frac(wc, wc < 0.01), "puppiWeight charged = 1": frac(wc, wc > 0.99),
                "puppiWeight neutral < 0.5": frac(wn, wn < 0.5), "puppiWeight neutral = 1": frac(wn, wn > 0.99)})
    row.update({f"pdgId {name}": frac(pid, np.isin(pid, codes)) for name, codes in
                (("211", (211,)), ("22", (22,)), ("130", (130,)), ("1,2 (HF)", (1, 2)), ("11", (11,)),
                 ("13", (13,)))})
    row["candidates per jet"] = float(dist["per_jet"])
    return row


def pfcand_table(generated: str, real: str, pt_min: float = 0.0, abs_eta_max: float = 5.0) -> str:
    """Markdown table: generated jet-constituent PFCands next to real PFNano (same jet selection)."""
    g = pfcand_summary(pfcand_distributions(generated, pt_min, abs_eta_max))
    r = pfcand_summary(pfcand_distributions(real, pt_min, abs_eta_max))
    lines = ["| quantity (jet constituents) | generated | real PFNano |", "|---|---|---|"]
    lines += [f"| {k} | {g[k]:.3f} | {r[k]:.3f} |" for k in g]
    return "\n".join(lines)
