"""Jets for the JEC derivation and its closure: reading PFNano files, PU/noPU matching, closure tables.

``read_jet_events`` is the I/O edge (gen matching and flavour through
``physics.jets``); the rest are pure functions on awkward / numpy arrays.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from physics.jets import MAX_MATCH_DR, delta_r, jet_flavour, matched_gen_jets, raw_pt
from samples.jec_levels import ABS_ETA_EDGES, FLAVOUR_GROUPS, binned_medians


# --------------------------------------------------------------------------- reading (I/O edge)

JET_BRANCHES = ("Jet_pt", "Jet_rawFactor", "Jet_eta", "Jet_phi", "Jet_area", "Jet_genJetIdx",
                "Jet_hadronFlavour", "Jet_partonFlavour", "GenJet_pt", "GenJet_eta", "GenJet_phi")


def read_jet_events(paths: list[str], treename: str = "Events"):
    """Events (jagged jets with pt_raw, eta, phi, area, gen match, flavour; rho; event id) from PFNano files."""
    import awkward as ak
    import uproot

    from core.errors import BadInputError

    parts = []
    for path in paths:
        if not Path(path).exists():
            raise BadInputError(f"{path}: file does not exist")
        try:
            with uproot.open(path) as f:
                if treename not in f:
                    raise BadInputError(f"{path}: no '{treename}' tree")
                tree = f[treename]
                rho_name = next((n for n in ("fixedGridRhoFastjetAll", "Rho_fixedGridRhoFastjetAll") if n in tree), None)
                missing = [b for b in JET_BRANCHES if b not in tree] + ([] if rho_name else ["fixedGridRhoFastjetAll"])
                if missing:
                    raise BadInputError(f"{path}: missing branch(es) {', '.join(missing)}")
                extra = ["event"] if "event" in tree else []
                arr = tree.arrays(list(JET_BRANCHES) + [rho_name] + extra)
        except BadInputError:
            raise
        except Exception as err:  # uproot raises many kinds for damaged files
            raise BadInputError(f"{path}: cannot be read ({type(err).__name__}: {str(err)[:160]})") from None
        nano = ak.zip({"pt": arr["Jet_pt"], "rawFactor": arr["Jet_rawFactor"], "eta": arr["Jet_eta"],
                       "phi": arr["Jet_phi"], "genJetIdx": arr["Jet_genJetIdx"],
                       "hadronFlavour": arr["Jet_hadronFlavour"], "partonFlavour": arr["Jet_partonFlavour"]})
        gen = ak.zip({"pt": arr["GenJet_pt"], "eta": arr["GenJet_eta"], "phi": arr["GenJet_phi"]})
        g = matched_gen_jets(nano, gen, MAX_MATCH_DR)  # None where unmatched or dR >= MAX_MATCH_DR
        matched = ~ak.is_none(g, axis=1)
        jets = ak.zip({
            "pt_raw": raw_pt(nano), "eta": arr["Jet_eta"], "phi": arr["Jet_phi"], "area": arr["Jet_area"],
            "pt_gen": ak.fill_none(g.pt, -1.0),
            "eta_gen": ak.fill_none(g.eta, 0.0),
            "flavour": jet_flavour(nano),
        })
        idx = arr["Jet_genJetIdx"]
        reco_idx = idx[matched]
        gen_local = ak.local_index(gen.pt, axis=1)
        pairs = ak.cartesian({"g": gen_local, "r": reco_idx}, axis=1, nested=True)
        has_reco = ak.any(pairs.g == pairs.r, axis=2)
        genjets = ak.zip({"pt": gen.pt, "eta": gen.eta, "has_reco": ak.fill_none(has_reco, False)})
        ev = {"jets": jets, "genjets": genjets, "rho": arr[rho_name]}
        if extra:
            ev["event"] = arr["event"]
        parts.append(ak.zip(ev, depth_limit=1))
    if not parts:
        raise BadInputError("no input files")
    return ak.concatenate(parts)


def flatten_jets(events) -> dict[str, np.ndarray]:
    """Flat per-jet arrays with the event's rho broadcast to each jet."""
    import awkward as ak

    jets = events.jets
    rho = ak.broadcast_arrays(events.rho, jets.pt_raw)[0]
    out = {f: ak.to_numpy(ak.flatten(jets[f])).astype(np.float64) for f in jets.fields}
    out["rho"] = ak.to_numpy(ak.flatten(rho)).astype(np.float64)
    out["flavour"] = out["flavour"].astype(np.int64)
    return out


def pileup_offsets(events_pu, events_nopu, pt_nopu_min: float = 5.0) -> dict[str, np.ndarray]:
    """Matched PU/noPU jets: offset = pt_raw(PU) - pt_raw(noPU) with rho, area, eta, pt_raw(PU) (flat)."""
    import awkward as ak

    from core.errors import BadInputError

    if len(events_pu) != len(events_nopu):
        raise BadInputError(f"PU and noPU samples have different numbers of events ({len(events_pu)} vs {len(events_nopu)})")
    if "event" in events_pu.fields and "event" in events_nopu.fields:
        if not np.array_equal(ak.to_numpy(events_pu.event), ak.to_numpy(events_nopu.event)):
            raise BadInputError("PU and noPU samples are not the same events (event numbers differ)")
    idx = match_pileup_jets(events_pu.jets, events_nopu.jets)
    partner = events_nopu.jets[idx]
    ok = ~ak.is_none(idx, axis=1)
    pu = events_pu.jets[ok]
    nopu = partner[ok]
    rho = ak.broadcast_arrays(events_pu.rho, pu.pt_raw)[0]
    flat = {
        "pt_raw": ak.flatten(pu.pt_raw), "pt_raw_nopu": ak.flatten(nopu.pt_raw), "eta": ak.flatten(pu.eta),
        "area": ak.flatten(pu.area), "rho": ak.flatten(rho),
    }
    flat = {k: ak.to_numpy(v).astype(np.float64) for k, v in flat.items()}
    keep = flat["pt_raw_nopu"] > pt_nopu_min
    flat = {k: v[keep] for k, v in flat.items()}
    flat["offset"] = flat["pt_raw"] - flat["pt_raw_nopu"]
    flat["n_pu_jets"] = int(ak.sum(ak.num(events_pu.jets)))
    return flat


# --------------------------------------------------------------------------- matching

def match_pileup_jets(jets_pu, jets_nopu, max_dr: float = MAX_MATCH_DR):
    """Index of the noPU jet matched to each PU jet (None if none), event by event.

    ``jets_pu`` and ``jets_nopu`` are jagged (events x jets) with eta and phi, the
    same events in the same order. A pair is kept when each jet is the other's
    nearest neighbour and dR < ``max_dr``.
    """
    import awkward as ak

    pairs = ak.cartesian({"pu": jets_pu, "nopu": jets_nopu}, axis=1, nested=True)
    dr = delta_r(pairs.pu.eta, pairs.pu.phi, pairs.nopu.eta, pairs.nopu.phi)  # [ev][pu][nopu]
    best_nopu = ak.argmin(dr, axis=2)  # per PU jet
    best_dr = ak.min(dr, axis=2)
    best_pu = ak.argmin(dr, axis=1)  # per noPU jet
    # an event without noPU jets has no best_pu entry: pad with -1 so that nothing matches there
    best_pu = ak.fill_none(ak.pad_none(best_pu, 1, axis=1), -1)
    back = best_pu[ak.fill_none(best_nopu, 0)]  # the PU jet nearest to my nearest noPU jet
    mine = ak.local_index(jets_pu, axis=1)
    ok = ak.fill_none((best_dr < max_dr) & (back == mine), False)
    return ak.mask(best_nopu, ok)


# --------------------------------------------------------------------------- closure

def closure_table(response: dict[str, np.ndarray], pt_gen, eta_gen, flavour, pt_gen_min: float = 30.0,
                  abs_eta_max: float = 2.5, abs_edges=ABS_ETA_EDGES) -> dict:
    """Median responses for each correction in ``response`` (name -> R per jet).

    Pooled over pt_gen > ``pt_gen_min`` GeV: per |eta_gen| bin, and for |eta_gen| <
    ``abs_eta_max`` all flavours together and per flavour (uds, c, b, g) with the spread.
    """
    from physics.jets import flavour_category

    pt_gen, eta_gen = np.asarray(pt_gen), np.abs(np.asarray(eta_gen))
    groups = flavour_category(flavour)
    sel_pt = pt_gen > pt_gen_min
    out: dict = {"eta_edges": list(abs_edges), "corrections": {}}
    for name, r in response.items():
        r = np.asarray(r)
        row = {"eta_bins": [], "eta_counts": []}
        for lo, hi in zip(abs_edges[:-1], abs_edges[1:]):
            m = sel_pt & (eta_gen >= lo) & (eta_gen < hi)
            row["eta_bins"].append(float(np.median(r[m])) if m.sum() else float("nan"))
            row["eta_counts"].append(int(m.sum()))
        central = sel_pt & (eta_gen < abs_eta_max)
        row["all"] = float(np.median(r[central])) if central.sum() else float("nan")
        row["n_central"] = int(central.sum())
        row["flavours"] = {}
        row["flavour_counts"] = {}
        for g in FLAVOUR_GROUPS:
            m = central & (groups == g)
            row["flavours"][g] = float(np.median(r[m])) if m.sum() else float("nan")
            row["flavour_counts"][g] = int(m.sum())
        vals = [v for v in row["flavours"].values() if np.isfinite(v)]
        row["spread"] = float(max(vals) - min(vals)) if len(vals) >= 2 else float("nan")
        out["corrections"][name] = row
    return out


def pt_closure(r: np.ndarray, pt_gen, eta_gen, pt_edges, abs_eta_max: float = 2.5, min_count: int = 30):
    """Median response in pt_gen bins for |eta_gen| < ``abs_eta_max`` (NaN where fewer than min_count)."""
    m = np.abs(np.asarray(eta_gen)) < abs_eta_max
    med, _, cnt = binned_medians(np.asarray(r)[m], np.asarray(pt_gen)[m], np.asarray(pt_edges), min_count)
    return med, cnt


def format_closure(table: dict, pt_rows: dict | None = None) -> str:
    """The closure table as text (medians of R = pt / pt_gen)."""
    edges = table["eta_edges"]
    names = list(table["corrections"])
    lines = ["median response R = pT / pT_gen, pT_gen > 30 GeV"]
    head = f"{'|eta_gen|':>12} " + " ".join(f"{n:>9}" for n in names) + f" {'jets':>8}"
    lines.append(head)
    first = table["corrections"][names[0]]
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        vals = " ".join(f"{table['corrections'][n]['eta_bins'][k]:9.4f}" for n in names)
        lines.append(f"{lo:5.1f}-{hi:<6.1f} {vals} {first['eta_counts'][k]:8d}")
    lines.append(f"{'<2.5 all':>12} " + " ".join(f"{table['corrections'][n]['all']:9.4f}" for n in names)
                 + f" {first['n_central']:8d}")
    for g in FLAVOUR_GROUPS:
        lines.append(f"{'<2.5 ' + g:>12} " + " ".join(f"{table['corrections'][n]['flavours'][g]:9.4f}" for n in names)
                     + f" {first['flavour_counts'][g]:8d}")
    lines.append(f"{'spread':>12} " + " ".join(f"{table['corrections'][n]['spread']:9.4f}" for n in names))
    if pt_rows:
        lines.append("")
        lines.append("median response in pt_gen bins, |eta_gen| < 2.5")
        edges_pt = pt_rows["edges"]
        lines.append(f"{'pt_gen':>14} " + " ".join(f"{n:>9}" for n in pt_rows["medians"]) + f" {'jets':>8}")
        for k in range(len(edges_pt) - 1):
            if pt_rows["counts"][k] == 0:
                continue
            vals = " ".join(f"{pt_rows['medians'][n][k]:9.4f}" for n in pt_rows["medians"])
            lines.append(f"{edges_pt[k]:6.0f}-{edges_pt[k + 1]:<7.0f} {vals} {pt_rows['counts'][k]:8d}")
    return "\n".join(lines)
