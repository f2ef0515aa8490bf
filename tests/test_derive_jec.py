"""derive-jec: L1FastJet offset fit, L2Relative numerical inversion, text files, closure.

The physics checks run on a toy with a known offset and a known non-linear,
flavour-dependent response; the I/O checks on real CMS PFNano files and on toy
PFNano-layout ROOT files written here.
"""
from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from samples import derive_jec as dj
from samples import jec_closure as jc
from samples import jec_levels as jl

#: toy offset parameters per |eta| bin i: p0 [GeV/area], p1, p2 (rho_ref = 20)
def toy_offset_params(abs_bin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return 18.0 - 1.5 * abs_bin, 0.9 - 0.02 * abs_bin, 0.02 + 0.003 * abs_bin


def toy_flat_response(pt_gen, eta, flavour):
    """Toy raw response without pileup: non-linear in pT, falling with |eta|, gluons 2% and b 1% low."""
    shift = np.where(flavour == 21, -0.02, np.where(flavour == 5, -0.01, 0.0))
    return 0.95 - 0.9 / np.sqrt(pt_gen) - 0.05 * np.abs(eta) / 4.7 + shift


def make_toy(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Flat toy jets (GeV): pt_gen ~ pt^-2 from 15 GeV, |eta| < 4.7, rho ~ Gamma(6, 4), area ~ 0.5.

    pt_nopu = pt_gen * R * (1 + resolution); the PU jet carries the offset
    A (p0 + p1 (rho - 20)) (1 + p2 ln pt_PU) plus a 1.5 GeV Gaussian fluctuation.
    """
    rng = np.random.default_rng(seed)
    pt_gen = np.minimum(15.0 / (1.0 - rng.random(n)), 3000.0)
    eta = rng.uniform(-4.7, 4.7, n)
    flavour = rng.choice([1, 2, 3, 4, 5, 21], size=n, p=[0.15, 0.15, 0.1, 0.1, 0.1, 0.4])
    rho = rng.gamma(6.0, 4.0, n)
    area = rng.normal(0.50, 0.02, n)
    sigma = np.sqrt(1.0 / pt_gen + 0.05**2)
    pt_nopu = pt_gen * toy_flat_response(pt_gen, eta, flavour) * (1.0 + sigma * rng.normal(size=n))
    p0, p1, p2 = toy_offset_params(jl.abs_bin(eta))
    noise = rng.normal(0.0, 1.5, n)
    keep = pt_nopu > 5.0
    pt_pu = pt_nopu + 10.0
    for _ in range(30):  # the offset depends on the PU pT itself: fixed point
        pt_pu = np.where(keep, pt_nopu + noise + area * (p0 + p1 * (rho - 20.0)) * (1 + p2 * np.log(np.abs(pt_pu))), 1.0)
    out = {"pt_gen": pt_gen, "eta": eta, "flavour": flavour, "rho": rho, "area": area,
           "pt_nopu": pt_nopu, "pt_raw": pt_pu}
    return {k: v[keep] for k, v in out.items()}


@pytest.fixture(scope="module")
def toy():
    return make_toy(200_000)


@pytest.fixture(scope="module")
def derived(toy, tmp_path_factory):
    l1 = dj.derive_l1(toy["pt_raw"] - toy["pt_nopu"], toy["rho"], toy["area"], toy["pt_raw"], toy["pt_nopu"],
                      toy["eta"])
    pt_l1 = l1.factor(toy["eta"], toy["pt_raw"], rho=toy["rho"], area=toy["area"]) * toy["pt_raw"]
    l2 = dj.derive_l2(pt_l1, toy["pt_gen"], toy["eta"])
    outdir = tmp_path_factory.mktemp("jec")
    paths = jl.write_jec_files(outdir, "Toy_V1_MC", [l1, l2])
    return l1, l2, paths


# --------------------------------------------------------------------------- L1FastJet

def test_l1_recovers_toy_offset_parameters(derived):
    l1, _, _ = derived
    nb = len(jl.ABS_ETA_EDGES) - 1
    assert l1.params.shape == (2 * nb, 4)
    p0, p1, p2 = toy_offset_params(np.arange(nb))
    fitted = l1.params[nb:]  # positive-eta half
    np.testing.assert_allclose(fitted[:, 0], p0, rtol=0.03)
    np.testing.assert_allclose(fitted[:, 1], p1, rtol=0.04)
    np.testing.assert_allclose(fitted[:, 2], p2, atol=0.008)
    np.testing.assert_array_equal(fitted[:, 3], 20.0)
    # mirrored: the negative-eta rows are the same fits in reverse order
    np.testing.assert_array_equal(l1.params[:nb], fitted[::-1])


def test_l1_factor_is_the_cms_formula():
    level = jl.JECLevel("L1FastJet", ("Rho", "JetPt", "JetA"), jl.L1_FORMULA, np.array([-5.191, 0.0, 5.191]),
                        np.array([[[0, 200], [1, 6500], [0, 10]]] * 2, dtype=float),
                        np.array([[10.0, 0.8, 0.05, 20.0], [12.0, 0.9, 0.0, 20.0]]))
    f = level.factor(np.array([-1.0, 2.0, 6.0]), np.array([40.0, 40.0, 40.0]), rho=np.array([30.0] * 3),
                     area=np.array([0.5] * 3))
    expected_neg = 1 - 0.5 / 40.0 * (10.0 + 0.8 * 10.0) * (1 + 0.05 * np.log(40.0))
    expected_pos = 1 - 0.5 / 40.0 * (12.0 + 0.9 * 10.0)
    np.testing.assert_allclose(f, [expected_neg, expected_pos, 1.0])  # beyond the last edge: 1, as in coffea


def test_offset_profile_is_unbiased_by_pileup_fluctuations(toy):
    """Cells in pt_noPU: the mean offset density equals the model at the cell's mean rho and ln pT."""
    m = jl.abs_bin(toy["eta"]) == 0
    prof = dj.offset_profile(toy["pt_raw"][m] - toy["pt_nopu"][m], toy["rho"][m], toy["area"][m],
                             toy["pt_raw"][m], toy["pt_nopu"][m])
    model = (18.0 + 0.9 * (prof["rho"] - 20.0)) * (1 + 0.02 * prof["log_pt"])
    pulls = (prof["density"] - model) / prof["err"]
    assert len(pulls) > 30
    assert abs(np.mean(pulls)) < 0.5
    assert np.std(pulls) < 1.5


# --------------------------------------------------------------------------- L2Relative and closure

def test_l1l2_closes_on_toy(toy, derived):
    l1, l2, _ = derived
    pt_l1, pt_corr = jl.apply_l1l2(l1, l2, toy["pt_raw"], toy["eta"], toy["rho"], toy["area"])
    r = pt_corr / toy["pt_gen"]
    table = jc.closure_table({"raw": toy["pt_raw"] / toy["pt_gen"], "L1L2": r}, toy["pt_gen"], toy["eta"],
                             toy["flavour"])
    row = table["corrections"]["L1L2"]
    assert abs(row["all"] - 1.0) < 0.005
    assert abs(table["corrections"]["raw"]["all"] - 1.0) > 0.03  # the toy needed correcting
    for k, med in enumerate(row["eta_bins"]):
        assert abs(med - 1.0) < 0.01, f"|eta| bin {k}: median {med}"
    edges = np.geomspace(30.0, 1000.0, 13)
    med, cnt = jc.pt_closure(r, toy["pt_gen"], toy["eta"], edges)
    assert (cnt >= 200).all()
    assert np.max(np.abs(med - 1.0)) < 0.01, med


def test_flavour_spread_survives_l1l2(toy, derived):
    """L1L2 is flavour-blind: the toy's 2% gluon-vs-quark difference stays (about 2-3%)."""
    l1, l2, _ = derived
    _, pt_corr = jl.apply_l1l2(l1, l2, toy["pt_raw"], toy["eta"], toy["rho"], toy["area"])
    row = jc.closure_table({"L1L2": pt_corr / toy["pt_gen"]}, toy["pt_gen"], toy["eta"], toy["flavour"])["corrections"]["L1L2"]
    assert row["flavours"]["g"] < row["flavours"]["b"] < row["flavours"]["uds"]
    assert 0.015 < row["spread"] < 0.035
    assert row["spread"] == pytest.approx(max(row["flavours"].values()) - min(row["flavours"].values()))


def test_efficiency_turn_on_finds_the_reco_threshold(toy):
    """With reco jets kept only above 15 GeV raw, the inversion must start where the efficiency is flat."""
    has_reco = toy["pt_nopu"] > 15.0
    edges = dj.default_pt_gen_edges(10.0)
    start = dj.efficiency_turn_on(toy["pt_gen"], np.abs(toy["eta"]), has_reco, edges)
    assert start.shape == (len(jl.ABS_ETA_EDGES) - 1,)
    # raw response ~0.7-0.8 and 25-30% resolution at 20-30 GeV: full efficiency only well above 15 / 0.75
    # (P(reco < 15 GeV) is about 12% at pt_gen = 27 GeV and under 2% above 33 GeV)
    assert np.all(start > 25.0) and np.all(start < 50.0)
    # no threshold: start at the first edge
    np.testing.assert_array_equal(dj.efficiency_turn_on(toy["pt_gen"], np.abs(toy["eta"]), np.ones(len(has_reco), bool), edges),
                                  edges[0])


def test_inversion_improves_over_iterations(toy, derived):
    _, l2, _ = derived
    for history in l2.info["nonclosure"]:
        assert history[0] > 0.2  # raw L1 response is far from 1
        assert history[-1] < 0.05


# --------------------------------------------------------------------------- text files

def test_written_files_match_coffea(toy, derived):
    l1, l2, paths = derived
    names = [p.rsplit("/", 1)[-1] for p in paths]
    assert names == ["Toy_V1_MC_L1FastJet_AK4PF.txt", "Toy_V1_MC_L2Relative_AK4PF.txt"]
    n = 20000
    sl = {k: v[:n] for k, v in toy.items()}
    eta = sl["eta"].copy()
    eta[:10] = 5.3  # beyond the files' range: factor 1 in both
    pt_coffea = jl.coffea_l1l2_pt(paths, sl["pt_raw"], eta, sl["rho"], sl["area"])
    _, pt_own = jl.apply_l1l2(l1, l2, sl["pt_raw"], eta, sl["rho"], sl["area"])
    np.testing.assert_allclose(pt_coffea, pt_own, rtol=2e-6)
    np.testing.assert_allclose(pt_coffea[:10], sl["pt_raw"][:10])
    assert np.mean(np.abs(pt_coffea[10:] / sl["pt_raw"][10:] - 1) > 1e-3) > 0.98


def test_written_files_work_in_the_project_jec_stack(toy, derived):
    """The processors' own JECConfig / CorrectedJetsFactory path reads the derived files."""
    from physics.jec import JECConfig, l1l2_pt

    l1, l2, paths = derived
    n = 500
    cfg = JECConfig(text_files=tuple(paths))
    counts = np.full(n // 5, 5)
    table = ak.unflatten(ak.zip({
        "pt": toy["pt_raw"][:n], "mass": np.zeros(n), "pt_raw": toy["pt_raw"][:n], "mass_raw": np.zeros(n),
        "eta": toy["eta"][:n], "area": toy["area"][:n], "rho": toy["rho"][:n], "pt_gen": toy["pt_gen"][:n]}), counts)
    pt = ak.to_numpy(ak.flatten(l1l2_pt(table, cfg)))
    _, pt_own = jl.apply_l1l2(l1, l2, toy["pt_raw"][:n], toy["eta"][:n], toy["rho"][:n], toy["area"][:n])
    np.testing.assert_allclose(pt, pt_own, rtol=2e-6)


def test_bad_era_name_is_rejected(derived, tmp_path):
    l1, _, _ = derived
    with pytest.raises(ValueError, match="Campaign_Era_MC"):
        jl.write_jec_files(tmp_path, "Toy.V1", [l1])
    with pytest.raises(ValueError, match="Campaign_Era_MC"):
        jl.write_jec_files(tmp_path, "ToyMC", [l1])


# --------------------------------------------------------------------------- matching and reading

def test_match_pileup_jets_mutual_nearest():
    pu = ak.Array([[{"eta": 0.0, "phi": 0.0}, {"eta": 1.0, "phi": 3.1}, {"eta": 0.05, "phi": 0.05}],
                   [{"eta": -2.0, "phi": 1.0}]])
    nopu = ak.Array([[{"eta": 1.02, "phi": -3.13}, {"eta": 0.01, "phi": 0.0}],
                     [{"eta": 2.0, "phi": 1.0}]])
    idx = jc.match_pileup_jets(pu, nopu).tolist()
    # jet 1 matches across the phi wrap; jet 2 is not the nearest to noPU jet 1 (jet 0 is); event 2: too far
    assert idx == [[1, 0, None], [None]]
    # events without noPU jets (pileup-only jets) or without PU jets match nothing
    pu = ak.Array([[{"eta": 0.0, "phi": 0.0}, {"eta": 1.0, "phi": 1.0}], [], [{"eta": 0.0, "phi": 0.0}]])
    nopu = ak.Array([[], [{"eta": 0.0, "phi": 0.0}], [{"eta": 0.01, "phi": 0.0}]])
    assert jc.match_pileup_jets(pu, nopu).tolist() == [[None, None], [], [0]]


def test_read_real_pfnano_and_self_match(shared_data):
    path = str(shared_data / "cms" / "pfnano.root")
    events = jc.read_jet_events([path])
    import uproot

    with uproot.open(path) as f:
        arr = f["Events"].arrays(["Jet_pt", "Jet_rawFactor", "Jet_genJetIdx"])
    assert len(events) == 10
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(events.jets.pt_raw)),
                               ak.to_numpy(ak.flatten((1 - arr["Jet_rawFactor"]) * arr["Jet_pt"])), rtol=1e-6)
    has_gen = ak.to_numpy(ak.flatten(events.jets.pt_gen > 0))
    assert 0 < has_gen.sum() <= ak.sum(arr["Jet_genJetIdx"] >= 0)
    # each gen jet with a matched reco jet is flagged (one reco jet per gen jet in this file)
    assert ak.sum(events.genjets.has_reco) == has_gen.sum()
    # the same file as PU and noPU: every jet matches itself, zero offset
    off = jc.pileup_offsets(events, events, pt_nopu_min=0.0)
    assert len(off["offset"]) == off["n_pu_jets"] == ak.sum(ak.num(events.jets))
    np.testing.assert_array_equal(off["offset"], 0.0)


def test_reading_data_without_gen_jets_names_the_problem(shared_data):
    from core.errors import BadInputError

    path = str(shared_data / "cms" / "nano_dimuon.root")
    with pytest.raises(BadInputError, match=r"nano_dimuon\.root: missing branch\(es\).*GenJet_pt"):
        jc.read_jet_events([path])


def test_missing_file_named(tmp_path):
    from core.errors import BadInputError

    with pytest.raises(BadInputError, match="nothere.root: file does not exist"):
        jc.read_jet_events([str(tmp_path / "nothere.root")])


# --------------------------------------------------------------------------- the command, end to end

def write_toy_pfnano(path, pt_raw, eta, phi, area, rho, pt_gen, flavour, jets_per_event: int):
    """Toy jets as a PFNano-layout Events tree (rawFactor 0, one gen jet per jet)."""
    import uproot

    n_ev = len(rho)
    counts = np.full(n_ev, jets_per_event)

    def jag(a, dtype=np.float32):
        return ak.unflatten(np.asarray(a, dtype=dtype), counts)

    with uproot.recreate(path) as f:
        branches = {
            "event": np.arange(n_ev, dtype=np.uint64),
            "fixedGridRhoFastjetAll": rho.astype(np.float32),
            "Jet_pt": jag(pt_raw), "Jet_rawFactor": jag(np.zeros_like(pt_raw)), "Jet_eta": jag(eta),
            "Jet_phi": jag(phi), "Jet_area": jag(area),
            "Jet_genJetIdx": jag(np.tile(np.arange(jets_per_event), n_ev), np.int32),
            "Jet_hadronFlavour": jag(np.where(np.isin(flavour, (4, 5)), flavour, 0), np.int32),
            "Jet_partonFlavour": jag(flavour, np.int32),
            "GenJet_pt": jag(pt_gen), "GenJet_eta": jag(eta), "GenJet_phi": jag(phi),
        }
        f["Events"] = branches


def test_derive_jec_command_on_toy_root_files(tmp_path, capsys):
    from runner import main

    k = 4
    toy = make_toy(60_000, seed=11)
    n_ev = len(toy["pt_raw"]) // k
    t = {key: v[: n_ev * k] for key, v in toy.items()}
    # one rho per event: take the first jet's and recompute nothing (the offset is per jet in the toy)
    rho_ev = t["rho"][::k]
    # jets of an event spread in phi so that matching is unambiguous
    phi = np.tile(np.linspace(-np.pi, np.pi, k, endpoint=False) + 0.3, n_ev)
    p0, p1, p2 = toy_offset_params(jl.abs_bin(t["eta"]))
    rho_jet = np.repeat(rho_ev, k)
    pt_pu = t["pt_nopu"] + 10.0
    for _ in range(30):
        pt_pu = t["pt_nopu"] + t["area"] * (p0 + p1 * (rho_jet - 20.0)) * (1 + p2 * np.log(pt_pu))
    common = dict(eta=t["eta"], phi=phi, area=t["area"], pt_gen=t["pt_gen"], flavour=t["flavour"], jets_per_event=k)
    write_toy_pfnano(str(tmp_path / "pu.root"), pt_pu, rho=rho_ev, **common)
    write_toy_pfnano(str(tmp_path / "nopu.root"), t["pt_nopu"], rho=np.full(n_ev, 2.0), **common)
    out = tmp_path / "jec"
    rc = main(["derive-jec", "--fileset-pu", str(tmp_path / "pu.root"), "--fileset-nopu", str(tmp_path / "nopu.root"),
               "--out", str(out), "--name", "Toy_V2_MC", "--executor", "iterative"])
    assert rc == 0
    text = capsys.readouterr().out
    assert (out / "Toy_V2_MC_L1FastJet_AK4PF.txt").exists() and (out / "Toy_V2_MC_L2Relative_AK4PF.txt").exists()
    line = next(s for s in text.splitlines() if s.startswith("closure"))
    median = float(line.split("median R = ")[1].split()[0])
    assert abs(median - 1.0) < 0.01
    assert "within 1%" in line
    diff = float(text.split("max relative difference ")[1].split()[0])
    assert diff < 1e-5


def test_command_needs_both_filesets(tmp_path):
    from runner import main

    rc = main(["derive-jec", "--fileset-pu", str(tmp_path / "a.root"), "--out", str(tmp_path)])
    assert rc == 2
