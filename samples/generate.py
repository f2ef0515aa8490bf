"""Generate PFNano-layout samples: Pythia 8 + pileup mixing + parametric detector + FastJet.

``generate_sample(outdir, n_events, events_per_file, seed, pileup_mean, process, executor,
workers)`` runs one chunk per file on a coffea executor. Chunk i uses the seed
``chunk_seed(seed, i)``; the hard scatter, its detector smearing and the pileup mixing use
separate random streams, so the hard-scatter part of an event is identical whatever
``pileup_mean`` is (pileup offsets can be measured by matching PU and no-PU jets).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

R_JET = 0.4
GENJET_MIN_PT = 10.0
RECOJET_MIN_PT_RAW = 15.0
#: stored Jet_pt = pt_raw * NOMINAL_FACTOR (a fixed nominal "correction"); rawFactor = 1 - 1/NOMINAL_FACTOR
NOMINAL_FACTOR = 1.1
RHO_ETA, RHO_NETA, RHO_NPHI = 4.7, 17, 12
PU_LIBRARY_EVENTS = 200
PU_LIBRARY_SEED = 20260
BEAMSPOT_SIGMA_Z_CM = 3.5
LIBRARY_VERSION = "v3"          # v2: K0S/Lambda decay in flight, production vertices stored; v3: only inside the calorimeter
GHOST_AREA, GHOST_MAXRAP = 0.01, 5.0
#: PFCands branches and dtypes written, as in real PFNano (../shared/data/cms/pfnano.root)
PFCAND_BRANCHES = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "mass": np.float32, "pdgId": np.int32,
                   "charge": np.int32, "d0": np.float32, "d0Err": np.float32, "dz": np.float32, "dzErr": np.float32,
                   "trkChi2": np.float32, "vtxChi2": np.float32, "trkQuality": np.int32,
                   "pvAssocQuality": np.int32, "lostInnerHits": np.int32, "puppiWeight": np.float32,
                   "puppiWeightNoLep": np.float32}


def _execution():
    """(BadInputError, make_executor) wherever the execution layer lives now."""
    try:
        from core.errors import BadInputError
        from execution.executors import make_executor
    except ImportError:  # older layout
        from processors.execution import BadInputError, make_executor
    return BadInputError, make_executor


def chunk_seed(seed: int, i: int) -> int:
    """The seed of chunk ``i`` of a sample seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0])


# ---------------------------------------------------------------- small pure helpers
def delta_phi(a, b):
    """phi difference wrapped into [-pi, pi)."""
    return np.mod(np.asarray(a) - np.asarray(b) + np.pi, 2 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """Distance in (eta, phi); broadcasts."""
    return np.hypot(np.asarray(eta1) - np.asarray(eta2), delta_phi(phi1, phi2))


def grid_rho(eta: np.ndarray, phi: np.ndarray, pt: np.ndarray, event: np.ndarray, n_events: int) -> np.ndarray:
    """fixedGridRho-style: per event, the median of pT / area over an (eta, phi) grid (GeV)."""
    sel = np.abs(eta) < RHO_ETA
    ie = np.clip(((eta[sel] + RHO_ETA) / (2 * RHO_ETA) * RHO_NETA).astype(int), 0, RHO_NETA - 1)
    ip = np.clip(((phi[sel] + np.pi) / (2 * np.pi) * RHO_NPHI).astype(int), 0, RHO_NPHI - 1)
    ncell = RHO_NETA * RHO_NPHI
    cell = event[sel] * ncell + ie * RHO_NPHI + ip
    sums = np.bincount(cell, weights=pt[sel], minlength=n_events * ncell).reshape(n_events, ncell)
    area = (2 * RHO_ETA / RHO_NETA) * (2 * np.pi / RHO_NPHI)
    return np.median(sums, axis=1) / area


def jet_area(eta: np.ndarray, phi: np.ndarray, r: float = R_JET) -> np.ndarray:
    """Jet area estimate: pi R^2 minus half the overlap with each neighbouring jet (pt-ordered input)."""
    n = len(eta)
    area = np.full(n, np.pi * r * r)
    if n > 1:
        d = delta_r(eta[:, None], phi[:, None], eta[None, :], phi[None, :])
        x = np.clip(d / (2 * r), 0, 1)
        lens = 2 * r * r * np.arccos(x) - 0.5 * d * np.sqrt(np.clip(4 * r * r - d * d, 0, None))
        np.fill_diagonal(lens, 0.0)
        area -= 0.5 * lens.sum(axis=1)
    return np.maximum(area, 0.05)


def jet_flavours(jet_eta, jet_phi, had_eta, had_phi, had_fl, par_eta, par_phi, par_pt, par_id, r: float = R_JET):
    """(hadronFlavour, partonFlavour) per jet: B/C hadrons within R (b first), then partons (b, c, hardest)."""
    nj = len(jet_eta)
    hflav = np.zeros(nj, dtype=np.int32)
    pflav = np.zeros(nj, dtype=np.int32)
    if nj == 0:
        return hflav, pflav
    if len(had_eta):
        dr = delta_r(jet_eta[:, None], jet_phi[:, None], had_eta[None, :], had_phi[None, :]) < r
        hflav = np.where((dr & (had_fl[None, :] == 5)).any(1), 5, np.where((dr & (had_fl[None, :] == 4)).any(1), 4, 0))
    if len(par_eta):
        dr = delta_r(jet_eta[:, None], jet_phi[:, None], par_eta[None, :], par_phi[None, :]) < r
        aid = np.abs(par_id)[None, :]
        hardest = np.argmax(np.where(dr, par_pt[None, :], -1.0), axis=1)
        any_p = dr.any(1)
        has_b, has_c = (dr & (aid == 5)).any(1), (dr & (aid == 4)).any(1)
        sign_b = np.sign(np.where(dr & (aid == 5), par_id[None, :], 0).sum(1)) + 0
        sign_c = np.sign(np.where(dr & (aid == 4), par_id[None, :], 0).sum(1)) + 0
        pflav = np.where(has_b, 5 * np.where(sign_b == 0, 1, sign_b),
                         np.where(has_c, 4 * np.where(sign_c == 0, 1, sign_c),
                                  np.where(any_p, par_id[hardest], 0))).astype(np.int32)
    return hflav.astype(np.int32), pflav


# ---------------------------------------------------------------- pileup library
def pileup_library(cache_dir: str | Path, seed: int = PU_LIBRARY_SEED, n_events: int = PU_LIBRARY_EVENTS) -> Path:
    """Path of the minimum-bias library (npz), generated with Pythia on first use."""
    from samples.pythia_gen import generate_events

    path = Path(cache_dir) / f"minbias_{LIBRARY_VERSION}_seed{seed}_n{n_events}.npz"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    evs = generate_events("minbias", n_events, seed)
    keys = ("px", "py", "pz", "e", "pdgId", "charge", "vx", "vy", "vz")
    arr = {k: np.concatenate([e[k] for e in evs]) for k in keys}
    arr["counts"] = np.array([len(e["px"]) for e in evs])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arr)
    tmp.replace(path)
    return path


def _load_library(path: str | Path) -> dict:
    with np.load(path) as f:
        lib = {k: f[k] for k in f.files}
    lib["offsets"] = np.concatenate([[0], np.cumsum(lib["counts"])])
    return lib


def mix_pileup(lib: dict, n_pu: int, rng: np.random.Generator) -> dict:
    """Stable particles of ``n_pu`` minimum-bias interactions at their own vertices.

    Returns px, py, pz, e, pdgId, charge, vx, vy, vz (mm: production point, vz absolute),
    ``vertex`` (interaction 0..n_pu-1) and ``vertex_z_mm`` (z of each interaction)."""
    if n_pu == 0:
        z = np.zeros(0)
        return {"px": z, "py": z, "pz": z, "e": z, "pdgId": np.zeros(0, np.int32), "charge": np.zeros(0, np.int32),
                "vx": z, "vy": z, "vz": z, "vertex": np.zeros(0, dtype=np.int64), "vertex_z_mm": z}
    pick = rng.integers(0, len(lib["counts"]), n_pu)
    flip = rng.random(n_pu) < 0.5               # reflect in z and rotate in phi to extend the library
    rot = rng.uniform(-np.pi, np.pi, n_pu)
    z = rng.normal(0.0, BEAMSPOT_SIGMA_Z_CM * 10.0, n_pu)
    idx = np.concatenate([np.arange(lib["offsets"][k], lib["offsets"][k + 1]) for k in pick])
    vert = np.repeat(np.arange(n_pu), lib["counts"][pick])
    c, s = np.cos(rot[vert]), np.sin(rot[vert])
    sign = np.where(flip[vert], -1, 1)
    px, py = lib["px"][idx], lib["py"][idx]
    vx, vy = lib["vx"][idx], lib["vy"][idx]
    return {"px": c * px - s * py, "py": s * px + c * py, "pz": sign * lib["pz"][idx],
            "e": lib["e"][idx], "pdgId": lib["pdgId"][idx], "charge": lib["charge"][idx],
            "vx": c * vx - s * vy, "vy": s * vx + c * vy, "vz": z[vert] + sign * lib["vz"][idx], "vertex": vert,
            "vertex_z_mm": z}


# ---------------------------------------------------------------- clustering
def _cluster(px, py, pz, e, event, n_events, min_pt):
    """anti-kT R=0.4 per event: list of (jets px,py,pz,E arrays, constituent index lists) per event."""
    import awkward as ak
    import fastjet

    counts = np.bincount(event, minlength=n_events)
    arr = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D"), counts)
    jd = fastjet.JetDefinition(fastjet.antikt_algorithm, R_JET)
    cs = fastjet.ClusterSequence(arr, jd)
    jets = cs.inclusive_jets(min_pt)
    cidx = cs.constituent_index(min_pt)
    return ak.to_list(jets), ak.to_list(cidx), counts


def _kin(jets_ev):
    px = np.array([j["px"] for j in jets_ev], dtype=float)
    py = np.array([j["py"] for j in jets_ev], dtype=float)
    pz = np.array([j["pz"] for j in jets_ev], dtype=float)
    e = np.array([j["E"] for j in jets_ev], dtype=float)
    pt = np.hypot(px, py)
    p = np.sqrt(px ** 2 + py ** 2 + pz ** 2)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.clip(e ** 2 - p ** 2, 0, None))
    order = np.argsort(-pt, kind="stable")
    return order, pt, eta, phi, mass


# ---------------------------------------------------------------- one chunk
_GHOSTS: list = []


def _ghost_spec():
    """The process-wide ghost specification, its random state checkpointed at creation."""
    import fastjet

    if not _GHOSTS:
        spec = fastjet.GhostedAreaSpec(GHOST_MAXRAP, 1, GHOST_AREA)
        spec.checkpoint_random()
        _GHOSTS.append(spec)
    return _GHOSTS[0]


def _reco_jets(flat: dict, mask: np.ndarray, n: int, min_pt: float) -> list[tuple[list, list, list]]:
    """anti-kT R=0.4 of the masked candidates per event with FastJet active areas (ghost area 0.01 to
    |y| = 5): per event (jets px,py,pz,E dicts, constituent lists, areas). ``active_area`` clusters the same
    ghosts as ``active_area_explicit_ghosts`` (same jets, same areas) but leaves them out of the constituents,
    so Python never walks the ~50 ghosts of every jet."""
    import fastjet

    jd = fastjet.JetDefinition(fastjet.antikt_algorithm, R_JET)
    spec = _ghost_spec()
    ad = fastjet.AreaDefinition(fastjet.active_area, spec)
    idx = np.nonzero(mask)[0]
    ev = flat["event"][idx]
    pt, eta, phi, m = (flat[k][idx] for k in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px ** 2 + py ** 2 + pz ** 2 + m ** 2)
    bounds = np.searchsorted(ev, np.arange(n + 1))
    out = []
    for i in range(n):
        a, b = bounds[i], bounds[i + 1]
        pjs = [fastjet.PseudoJet(*v) for v in zip(px[a:b].tolist(), py[a:b].tolist(), pz[a:b].tolist(), e[a:b].tolist())]
        for k, pj in enumerate(pjs):
            pj.set_user_index(int(idx[a + k]))
        spec.restore_checkpoint_random()      # the same ghosts in every event and process: reproducible
        cs = fastjet.ClusterSequenceArea(pjs, jd, ad)
        jets = cs.inclusive_jets(min_pt)
        out.append(([{"px": j.px(), "py": j.py(), "pz": j.pz(), "E": j.E()} for j in jets],
                    [sorted(c.user_index() for c in j.constituents()) for j in jets],
                    [j.area() for j in jets]))
    return out


def _flat_particles(hard: list[dict], pv_z: np.ndarray, pu: list[dict]) -> dict:
    """Hard-scatter and pileup particles of a chunk, flat, with event, vertex and vertex_z (cm, rel. PV)."""
    keys = ("px", "py", "pz", "e", "pdgId", "charge", "vx", "vy", "vz")
    rows, vz = [], []
    for i, ev in enumerate(hard):
        d = {k: ev[k] for k in keys}
        d["event"] = np.full(len(ev["px"]), i)
        d["vertex"] = np.zeros(len(ev["px"]), dtype=np.int64)
        d["hf_idx"] = ev["hf_idx"]
        rows.append(d)
        p = pu[i]
        if len(p["px"]):
            d = {k: p[k] for k in keys}
            d["event"] = np.full(len(p["px"]), i)
            d["vertex"] = 1 + p["vertex"]
            d["hf_idx"] = np.full(len(p["px"]), -1)
            rows.append(d)
        vz.append(np.concatenate([[0.0], (p["vertex_z"] - pv_z[i]) * 0.1]))
    flat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    flat["vertex_z"] = np.concatenate(vz)
    return flat


def simulate_chunk(hard: list[dict], seed: int, pileup_mean: float, library: dict | None, first_event: int = 0,
                   run: int = 1) -> tuple[dict, dict]:
    """Detector, pileup, jets, SVs for the generator events ``hard``; returns (scalars, collections)."""
    from samples.pf_calibration import load_table
    from samples.reconstruction import reconstruct

    n = len(hard)
    rng_hard = np.random.default_rng([seed, 1])
    rng_mix = np.random.default_rng([seed, 2])
    pv_z = rng_hard.normal(0.0, BEAMSPOT_SIGMA_Z_CM * 10.0, n)  # mm
    n_true = rng_mix.uniform(0.8, 1.2, n) * pileup_mean if pileup_mean > 0 else np.zeros(n)
    n_pu = rng_mix.poisson(n_true) if pileup_mean > 0 else np.zeros(n, dtype=int)
    pu = [mix_pileup(library, int(n_pu[i]), rng_mix) if n_pu[i] > 0 else mix_pileup({}, 0, rng_mix)
          for i in range(n)]
    for i, p in enumerate(pu):
        p["vertex_z"] = p.pop("vertex_z_mm")
        p["vz"] = p["vz"] - pv_z[i]
    parts = _flat_particles(hard, pv_z, pu)
    rec = reconstruct(parts, n, n_pu, seed, load_table())
    flat = rec["cands"]
    flat["vz_true"] = flat["z0"] + pv_z[flat["event"]] * 0.1
    flat["vx_true"], flat["vy_true"] = flat["vx"], flat["vy"]
    npv = rec["npv"]
    ev_of = flat["event"]
    rho = grid_rho(flat["eta"], flat["phi"], flat["pt"], ev_of, n)
    cand_off = np.searchsorted(ev_of, np.arange(n + 1))
    cands = [{k: v[cand_off[i]:cand_off[i + 1]] for k, v in flat.items()} for i in range(n)]
    # ---- reco jets from CHS candidates: charged candidates used in the fit of a pileup vertex removed
    chs = ~((flat["charge"] != 0) & (flat["assoc_vertex"] > 0) & (flat["pvAssocQuality"] >= 6))
    reco = _reco_jets(flat, chs, n, RECOJET_MIN_PT_RAW)
    gens = [~np.isin(np.abs(ev["pdgId"]), (12, 14, 16)) for ev in hard]
    # ---- gen jets from visible stable hard-scatter particles
    gflat = {k: np.concatenate([ev[k][g] for ev, g in zip(hard, gens)]) for k in ("px", "py", "pz", "e")}
    gev = np.concatenate([np.full(int(g.sum()), i) for i, g in enumerate(gens)])
    gjets, _, _ = _cluster(gflat["px"], gflat["py"], gflat["pz"], gflat["e"], gev, n, GENJET_MIN_PT)

    J = {k: [] for k in ("pt", "rawFactor", "eta", "phi", "mass", "area", "genJetIdx", "hadronFlavour",
                         "partonFlavour", "nConstituents", "nSVs")}
    G = {k: [] for k in ("pt", "eta", "phi", "mass", "hadronFlavour", "partonFlavour")}
    PF = {k: [] for k in PFCAND_BRANCHES}
    JPF = {"jetIdx": [], "pFCandsIdx": []}
    SV = {k: [] for k in ("mass", "pt", "eta", "phi", "dlen", "dlenSig", "dxy", "dxySig", "ntracks", "chi2",
                         "ndof", "x", "y", "z", "charge")}
    JSV = {"jetIdx": [], "sVIdx": []}
    GP = {k: [] for k in ("pt", "eta", "phi", "mass", "pdgId", "status", "statusFlags", "genPartIdxMother")}
    cnt = {k: np.zeros(n, dtype=np.int64) for k in ("Jet", "GenJet", "PFCands", "JetPFCands", "SV", "JetSVs",
                                                    "GenPart")}
    for i, ev in enumerate(hard):
        # gen jets
        go, gpt, geta, gphi, gm = _kin(gjets[i])
        gpt, geta, gphi, gm = gpt[go], geta[go], gphi[go], gm[go]
        ghf, gpf = jet_flavours(geta, gphi, ev["had_eta"], ev["had_phi"], ev["had_flavour"], ev["parton_eta"],
                                ev["parton_phi"], ev["parton_pt"], ev["parton_pdgId"])
        for k, v in zip(G, (gpt, geta, gphi, gm, ghf, gpf)):
            G[k].append(v)
        cnt["GenJet"][i] = len(gpt)
        # reco jets
        rjets_i, rcidx_i, rarea_i = reco[i]
        ro, rpt, reta, rphi, rm = _kin(rjets_i)
        rpt, reta, rphi, rm = rpt[ro], reta[ro], rphi[ro], rm[ro]
        consts = [np.asarray(rcidx_i[k], dtype=np.int64) for k in ro]
        nj = len(rpt)
        hf, pf = jet_flavours(reta, rphi, ev["had_eta"], ev["had_phi"], ev["had_flavour"], ev["parton_eta"],
                              ev["parton_phi"], ev["parton_pt"], ev["parton_pdgId"])
        gidx = np.full(nj, -1, dtype=np.int32)
        if nj and len(gpt):
            d = delta_r(reta[:, None], rphi[:, None], geta[None, :], gphi[None, :])
            best = np.argmin(d, axis=1)
            gidx = np.where(d[np.arange(nj), best] < 0.2, best, -1).astype(np.int32)
        J["pt"].append(rpt * NOMINAL_FACTOR)
        J["rawFactor"].append(np.full(nj, 1.0 - 1.0 / NOMINAL_FACTOR))
        J["eta"].append(reta)
        J["phi"].append(rphi)
        J["mass"].append(rm * NOMINAL_FACTOR)
        J["area"].append(np.asarray(rarea_i, dtype=float)[ro] if len(ro) else np.zeros(0))
        J["genJetIdx"].append(gidx)
        J["hadronFlavour"].append(hf)
        J["partonFlavour"].append(pf)
        J["nConstituents"].append(np.array([len(c) for c in consts], dtype=np.int32))
        cnt["Jet"][i] = nj
        # PF candidates of the stored jets, jet-ordered
        allc = np.concatenate(consts) if consts else np.zeros(0, dtype=np.int64)  # flat candidate indices
        for k in PF:
            PF[k].append(flat[k][allc].astype(PFCAND_BRANCHES[k]))
        cnt["PFCands"][i] = len(allc)
        JPF["jetIdx"].append(np.repeat(np.arange(nj), [len(c) for c in consts]).astype(np.int32))
        JPF["pFCandsIdx"].append(np.arange(len(allc), dtype=np.int32))
        cnt["JetPFCands"][i] = len(allc)
        # secondary vertices: >= 2 tracks (pT > 1 GeV) from one weakly decaying heavy hadron
        c = cands[i]
        sv_rows, sv_jet = [], []
        trk = c["tracked"] & (c["hf_idx"] >= 0) & (c["pt"] > 1.0)
        for h in np.unique(c["hf_idx"][trk]):
            t = np.nonzero(trk & (c["hf_idx"] == h))[0]
            if len(t) < 2:
                continue
            x, y, z = (np.mean(c[k][t]) for k in ("vx_true", "vy_true", "vz_true"))
            z = z - pv_z[i] * 0.1
            dist = np.sqrt(x * x + y * y + z * z)
            err = np.hypot(0.004, 0.03 * dist)
            xs, ys, zs = x + err * rng_hard.standard_normal(), y + err * rng_hard.standard_normal(), \
                z + err * rng_hard.standard_normal()
            dlen = np.sqrt(xs * xs + ys * ys + zs * zs)
            if dlen / err < 3.0:
                continue
            tpx = np.sum(c["pt"][t] * np.cos(c["phi"][t]))
            tpy = np.sum(c["pt"][t] * np.sin(c["phi"][t]))
            tpz = np.sum(c["pt"][t] * np.sinh(c["eta"][t]))
            te = np.sum(np.sqrt((c["pt"][t] * np.cosh(c["eta"][t])) ** 2 + 0.13957 ** 2))
            spt = np.hypot(tpx, tpy)
            seta, sphi = np.arcsinh(tpz / spt), np.arctan2(tpy, tpx)
            smass = np.sqrt(max(te ** 2 - tpx ** 2 - tpy ** 2 - tpz ** 2, 0.0))
            dxy = np.hypot(xs, ys)
            ndof = 2 * len(t) - 3
            sv_rows.append((smass, spt, seta, sphi, dlen, dlen / err, dxy, dxy / err, len(t),
                            rng_hard.chisquare(ndof) / ndof, ndof, xs, ys, zs + pv_z[i] * 0.1,
                            int(np.sum(c["charge"][t]))))
            j = -1
            if nj:
                dj = delta_r(reta, rphi, seta, sphi)
                j = int(np.argmin(dj)) if dj.min() < R_JET else -1
            sv_jet.append(j)
        sv = np.array(sv_rows, dtype=float).reshape(-1, len(SV))
        for k, col in zip(SV, sv.T):
            SV[k].append(col)
        cnt["SV"][i] = len(sv)
        sv_jet = np.array(sv_jet, dtype=np.int32)
        assoc = np.nonzero(sv_jet >= 0)[0]
        JSV["jetIdx"].append(sv_jet[assoc])
        JSV["sVIdx"].append(assoc.astype(np.int32))
        cnt["JetSVs"][i] = len(assoc)
        J["nSVs"].append(np.bincount(sv_jet[assoc], minlength=nj).astype(np.int32)[:nj])
        # reduced generator record: hard partons (status 23) and weakly decaying B/C hadrons
        hp = ev["parton_status"] == 23
        nh = len(ev["had_pt"])
        GP["pt"].append(np.concatenate([ev["parton_pt"][hp], ev["had_pt"]]))
        GP["eta"].append(np.concatenate([ev["parton_eta"][hp], ev["had_eta"]]))
        GP["phi"].append(np.concatenate([ev["parton_phi"][hp], ev["had_phi"]]))
        GP["mass"].append(np.concatenate([np.zeros(hp.sum()), ev["had_mass"]]))
        GP["pdgId"].append(np.concatenate([ev["parton_pdgId"][hp], ev["had_pdgId"]]).astype(np.int32))
        GP["status"].append(np.concatenate([np.full(hp.sum(), 23), np.full(nh, 2)]).astype(np.int32))
        GP["statusFlags"].append(np.concatenate([np.full(hp.sum(), (1 << 7) | (1 << 8)),
                                                 np.full(nh, 1 << 13)]).astype(np.int32))
        GP["genPartIdxMother"].append(np.full(hp.sum() + nh, -1, dtype=np.int32))
        cnt["GenPart"][i] = hp.sum() + nh

    def col(d, name):
        out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in d.items()}
        out["counts"] = cnt[name]
        return out

    collections = {"Jet": col(J, "Jet"), "GenJet": col(G, "GenJet"), "PFCands": col(PF, "PFCands"),
                   "JetPFCands": col(JPF, "JetPFCands"), "SV": col(SV, "SV"), "JetSVs": col(JSV, "JetSVs"),
                   "GenPart": col(GP, "GenPart")}
    for k in ("ntracks", "ndof", "charge"):
        collections["SV"][k] = collections["SV"][k].astype(np.int32)
    scalars = {
        "run": np.full(n, run, dtype=np.uint32),
        "luminosityBlock": np.full(n, 1 + first_event // 1000, dtype=np.uint32),
        "event": (np.arange(n) + first_event).astype(np.uint64),
        "genWeight": np.array([ev["weight"] for ev in hard], dtype=np.float32),
        "fixedGridRhoFastjetAll": rho.astype(np.float32),
        "PV_npvs": npv.astype(np.int32),
        "PV_x": np.zeros(n, dtype=np.float32),
        "PV_y": np.zeros(n, dtype=np.float32),
        "PV_z": (pv_z * 0.1).astype(np.float32),
        "Pileup_nTrueInt": n_true.astype(np.float32),
        "Pileup_nPU": np.asarray(n_pu, dtype=np.int32),
    }
    return scalars, collections


def _generate_chunk(item: dict) -> dict:
    """Generate one chunk (coffea executor function): returns {"files": [path], "events": n}."""
    from samples.pythia_gen import generate_events
    from samples.writer import write_events

    seed = item["seed"]
    hard = generate_events(item["process"], item["n_events"], seed)
    lib = _load_library(item["library"]) if item["pileup_mean"] > 0 else None
    scalars, collections = simulate_chunk(hard, seed, item["pileup_mean"], lib, first_event=item["first_event"])
    write_events(item["path"], scalars, collections)
    return {"files": [item["path"]], "events": item["n_events"]}


def chunk_items(outdir: str | Path, n_events: int, events_per_file: int, seed: int, pileup_mean: float,
                process: str, library: str | None) -> list[dict]:
    """One descriptor per chunk/file."""
    items, first, i = [], 0, 0
    while first < n_events:
        m = min(events_per_file, n_events - first)
        items.append({"path": str(Path(outdir) / f"{process}_{i:04d}.root"), "n_events": m,
                      "seed": chunk_seed(seed, i), "first_event": first, "pileup_mean": float(pileup_mean),
                      "process": process, "library": library})
        first += m
        i += 1
    return items


def generate_sample(outdir: str, n_events: int, events_per_file: int = 500, seed: int = 1,
                    pileup_mean: float = 30.0, process: str = "qcd", executor: str = "dask", workers: int = 2,
                    library_dir: str | None = None, status: bool = False) -> list[str]:
    """Generate ``n_events`` in files of ``events_per_file``; returns the ROOT file paths (sorted)."""
    from core.errors import BadInputError
    from execution.executors import make_executor
    from samples.pythia_gen import PROCESSES

    if process not in PROCESSES or process == "minbias":
        raise BadInputError(f"unknown process {process!r}: choose qcd, or zee through samples.zee "
                            "(runner.py generate --process zee); minbias is the pileup library only")
    if not np.isfinite(pileup_mean) or pileup_mean < 0:
        raise BadInputError(f"pileup mean must be >= 0, got {pileup_mean}")
    if n_events < 1 or events_per_file < 1:
        raise BadInputError(f"events ({n_events}) and events per file ({events_per_file}) must be positive")
    out = Path(outdir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise BadInputError(f"output directory {outdir} is not writable: {err}") from None
    library = None
    if pileup_mean > 0:
        root = Path(__file__).resolve().parents[1]
        library = str(pileup_library(library_dir or root / "cache" / "pileup"))
    items = chunk_items(out, n_events, events_per_file, seed, pileup_mean, process, library)
    with make_executor(executor, workers, status=status, desc=f"generate {process}", unit="file") as ex:
        result = ex(items, _generate_chunk, {"files": [], "events": 0})
    acc = result[0] if isinstance(result, tuple) else result
    return sorted(acc["files"])


__all__ = ["generate_sample", "simulate_chunk", "chunk_seed", "grid_rho", "jet_area", "jet_flavours"]
