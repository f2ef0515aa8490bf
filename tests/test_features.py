"""Jet features on the real PFNano file and on the ml-jec-vars format."""
from __future__ import annotations

import math
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

from core.errors import BadInputError
from physics.features import Constituents, FEATURE_NAMES, JetTable, assemble_features, jet_features, one_hot, pt_d, read_mljec, relative_kinematics, sigma2, wrap_phi

IDX = {coll: {name: i for i, name in enumerate(names)} for coll, names in FEATURE_NAMES.items()}


def _events(path):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="virtual",
                                           metadata={"filename": str(path)}).events()


@pytest.fixture(scope="module")
def pfnano(shared_data):
    path = shared_data / "cms" / "pfnano.root"
    events = _events(path)
    return path, events, jet_features(events, events.Jet)


@pytest.fixture(scope="module")
def raw(pfnano):
    """The branches of pfnano.root read with plain uproot, for hand computations."""
    path = pfnano[0]
    with uproot.open(path) as f:
        return f["Events"].arrays(
            ["Jet_pt", "Jet_rawFactor", "Jet_eta", "Jet_phi", "Jet_nConstituents", "JetPFCands_jetIdx",
             "JetPFCands_pFCandsIdx", "PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_charge",
             "PFCands_pdgId", "PFCands_d0", "PFCands_d0Err"], library="ak")


def test_layout_matches_feature_names(pfnano):
    _, events, feats = pfnano
    n_jets = int(ak.sum(ak.num(events.Jet)))
    assert list(feats) == ["globals", "charged", "neutral", "sv"]
    assert feats["globals"].to_numpy().shape == (n_jets, len(FEATURE_NAMES["globals"]))
    for coll in ("charged", "neutral", "sv"):
        assert len(feats[coll]) == n_jets
        inner = ak.to_numpy(ak.flatten(feats[coll], axis=1))
        assert inner.shape[1] == len(FEATURE_NAMES[coll]) and inner.dtype == np.float32
        assert np.all(np.isfinite(inner)), coll
    assert np.all(np.isfinite(feats["globals"].to_numpy()))
    assert ak.sum(ak.num(feats["sv"], axis=1)) > 0


def test_constituent_pt_sum_over_raw_pt_close_to_one(pfnano, raw):
    _, _, feats = pfnano
    pt_raw = feats["globals"].to_numpy()[:, IDX["globals"]["pt_raw"]]
    total = ak.to_numpy(ak.sum(feats["charged"][:, :, 0], axis=1) + ak.sum(feats["neutral"][:, :, 0], axis=1))
    ratio = total / pt_raw
    assert np.mean((ratio > 0.8) & (ratio < 1.2)) > 0.9, ratio
    # multiplicity equals the stored constituent count of every jet
    mult = feats["globals"].to_numpy()[:, IDX["globals"]["multiplicity"]]
    np.testing.assert_array_equal(mult, ak.to_numpy(ak.flatten(raw["Jet_nConstituents"])))
    # relative pT of the constituents sums to the same ratio
    dpt_sum = ak.to_numpy(ak.sum(feats["charged"][:, :, IDX["charged"]["dpt"]], axis=1)
                          + ak.sum(feats["neutral"][:, :, IDX["neutral"]["dpt"]], axis=1))
    np.testing.assert_allclose(dpt_sum, ratio, rtol=1e-4)


@pytest.mark.parametrize("event, jet", [(0, 0), (0, 3), (4, 1), (9, 7)])
def test_hand_computed_features(pfnano, raw, event, jet):
    """dpt, deta, dphi, d0 significance, pT_D and sigma2 of one jet, computed by hand from uproot arrays."""
    _, events, feats = pfnano
    row = int(np.sum(ak.to_numpy(ak.num(events.Jet))[:event])) + jet
    ev = raw[event]
    pt_raw = (1 - ev.Jet_rawFactor[jet]) * ev.Jet_pt[jet]
    jeta, jphi = ev.Jet_eta[jet], ev.Jet_phi[jet]
    cand = [int(p) for j, p in zip(ev.JetPFCands_jetIdx, ev.JetPFCands_pFCandsIdx) if j == jet]
    charged_rows, neutral_rows, all_rows = [], [], []
    for p in cand:
        pt, eta, phi = float(ev.PFCands_pt[p]), float(ev.PFCands_eta[p]), float(ev.PFCands_phi[p])
        dphi = phi - jphi
        while dphi >= math.pi:
            dphi -= 2 * math.pi
        while dphi < -math.pi:
            dphi += 2 * math.pi
        deta = (eta - jeta) * (1 if jeta >= 0 else -1)
        r = [pt, pt / pt_raw, deta, dphi]
        all_rows.append(r)
        if ev.PFCands_charge[p] != 0:
            err = float(ev.PFCands_d0Err[p])
            charged_rows.append(r + [float(ev.PFCands_d0[p]) / err if err > 0 else 0.0,
                                     float(abs(ev.PFCands_pdgId[p]) == 211)])
        else:
            neutral_rows.append(r + [float(ev.PFCands_pdgId[p] == 22)])
    ch = ak.to_numpy(feats["charged"][row])
    ne = ak.to_numpy(feats["neutral"][row])
    c = IDX["charged"]
    assert len(ch) == len(charged_rows) and len(ne) == len(neutral_rows)
    want = np.array(charged_rows)
    got = ch[:, [c["pt"], c["dpt"], c["deta"], c["dphi"], c["d0_significance"], c["is_charged_hadron"]]]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    n = IDX["neutral"]
    np.testing.assert_allclose(ne[:, [n["pt"], n["dpt"], n["deta"], n["dphi"], n["is_photon"]]],
                               np.array(neutral_rows), rtol=2e-4, atol=2e-5)

    a = np.array(all_rows, dtype=np.float64)
    ptd_hand = math.sqrt(np.sum(a[:, 0] ** 2)) / np.sum(a[:, 0])
    w = a[:, 0] ** 2
    cov = np.cov(np.vstack([a[:, 2], a[:, 3]]), aweights=w, bias=True)
    sigma2_hand = math.sqrt(max(np.linalg.eigvalsh(cov)[0], 0.0))
    g = feats["globals"].to_numpy()[row]
    gi = IDX["globals"]
    assert g[gi["pt_d"]] == pytest.approx(ptd_hand, rel=1e-4)
    assert g[gi["sigma2"]] == pytest.approx(sigma2_hand, rel=1e-3, abs=1e-6)
    assert g[gi["pt_raw"]] == pytest.approx(pt_raw, rel=1e-6)
    assert g[gi["log_pt_raw"]] == pytest.approx(math.log(pt_raw), rel=1e-6)
    assert g[gi["multiplicity"]] == len(cand)


def test_selected_jets_keep_their_own_constituents(pfnano):
    """A selection (reordered cut) gives exactly the rows of those jets in the full result."""
    _, events, full = pfnano
    jets = events.Jet
    mask = ((1 - jets.rawFactor) * jets.pt > 30) & (abs(jets.eta) < 2.5)
    sub = jet_features(events, jets[mask])
    rows = np.nonzero(ak.to_numpy(ak.flatten(mask)))[0]
    assert 0 < len(rows) < len(full["globals"])
    for coll in ("globals", "charged", "neutral", "sv"):
        assert ak.to_list(sub[coll]) == ak.to_list(full[coll][rows]), coll


def test_dphi_is_wrapped_and_deta_signed():
    assert wrap_phi(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert wrap_phi(-3.5) == pytest.approx(-3.5 + 2 * math.pi)
    dpt, deta, dphi = relative_kinematics(np.array([10.0]), np.array([-1.2]), np.array([-3.1]),
                                          np.array([50.0]), np.array([-1.0]), np.array([3.1]))
    assert dpt[0] == pytest.approx(0.2)
    assert deta[0] == pytest.approx(0.2)  # sign(eta_jet) = -1 flips (eta - eta_jet) = -0.2
    assert dphi[0] == pytest.approx(2 * math.pi - 6.2)


def test_jet_without_constituents_is_finite():
    """A jet with no PF candidate and no SV gets zeros, never 0/0."""
    jet = JetTable(pt_raw=np.array([40.0, 25.0]), eta=np.array([0.5, -2.0]), phi=np.array([3.1, 0.0]),
                   mass_raw=np.array([5.0, 3.0]), area=np.array([0.5, 0.5]), rho=np.array([10.0, 10.0]),
                   n_pv=np.array([20.0, 20.0]))
    charged = Constituents({"pt": np.array([30.0]), "eta": np.array([0.6]), "phi": np.array([-3.1]),
                            "pdgId": np.array([-211]), "d0": np.array([0.01]), "d0Err": np.array([0.0]),
                            "dz": np.array([0.1]), "trkChi2": np.array([1.0]),
                            "lostInnerHits": np.array([0]), "pvAssocQuality": np.array([7])}, np.array([1, 0]))
    neutral = Constituents({"pt": np.array([]), "eta": np.array([]), "phi": np.array([]),
                            "pdgId": np.array([])}, np.array([0, 0]))
    sv = Constituents({k: np.array([]) for k in ("pt", "eta", "phi", "mass", "dlen", "dlenSig", "ntracks")},
                      np.array([0, 0]))
    f = assemble_features(jet, charged, neutral, sv)
    g = f["globals"].to_numpy()
    assert np.all(np.isfinite(g))
    gi = IDX["globals"]
    assert g[1, gi["multiplicity"]] == 0 and g[1, gi["pt_d"]] == 0 and g[1, gi["sigma2"]] == 0
    assert g[0, gi["pt_d"]] == pytest.approx(1.0) and g[0, gi["sigma2"]] == 0  # one constituent
    assert ak.num(f["charged"], axis=1).tolist() == [1, 0]
    row = ak.to_numpy(f["charged"][0])[0]
    c = IDX["charged"]
    assert row[c["dphi"]] == pytest.approx(2 * math.pi - 6.2, abs=1e-5)
    assert row[c["d0_significance"]] == 0.0  # d0Err = 0
    assert row[c["is_charged_hadron"]] == 1 and row[c["pv_assoc_7"]] == 1 and row[c["pv_assoc_0"]] == 0


def test_pt_d_sigma2_and_one_hot_small_cases():
    pt = ak.Array([[1.0, 1.0], [3.0], []])
    np.testing.assert_allclose(ak.to_numpy(pt_d(pt)), [math.sqrt(2) / 2, 1.0, 0.0])
    # two equal constituents along deta only: variance (0.1)^2 on one axis, 0 on the other
    s = sigma2(ak.Array([[1.0, 1.0], [1.0, 1.0]]), ak.Array([[-0.1, 0.1], [-0.1, 0.1]]),
               ak.Array([[0.0, 0.0], [-0.2, 0.2]]))
    np.testing.assert_allclose(ak.to_numpy(s), [0.0, 0.0], atol=1e-7)  # points on one line: minor axis 0
    s = sigma2(ak.Array([[1.0, 1.0, 1.0, 1.0]]), ak.Array([[-0.1, 0.1, 0.0, 0.0]]),
               ak.Array([[0.0, 0.0, -0.2, 0.2]]))
    assert ak.to_numpy(s)[0] == pytest.approx(math.sqrt(0.01 / 2))
    oh = one_hot(np.array([211, 11, 13, 22]), (211, 11, 13))
    np.testing.assert_array_equal(oh, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])


def test_mljec_reader_gives_the_same_layout(shared_data, pfnano):
    path = shared_data / "mljec" / "shard1.root"
    feats, info = read_mljec(str(path))
    _, _, pf_feats = pfnano
    assert list(feats) == list(pf_feats)
    with uproot.open(path) as f:
        a = f["Jets"].arrays(["pt", "ch_size", "ne_size", "sv_size", "ch_pt", "ne_pt", "sv_mass"], library="ak")
    n = len(a)
    assert feats["globals"].to_numpy().shape == (n, len(FEATURE_NAMES["globals"]))
    for coll, size in (("charged", "ch_size"), ("neutral", "ne_size"), ("sv", "sv_size")):
        inner = ak.to_numpy(ak.flatten(feats[coll], axis=1))
        assert inner.shape[1] == pf_feats[coll].type.content.content.size == len(FEATURE_NAMES[coll])
        assert inner.dtype == np.float32 and np.all(np.isfinite(inner))
        assert ak.num(feats[coll], axis=1).tolist() == a[size].tolist()
    # physics: constituents sum to the raw pT, relative pT is pt / pt_raw
    total = ak.to_numpy(ak.sum(a.ch_pt, axis=1) + ak.sum(a.ne_pt, axis=1))
    assert np.all(np.abs(total / info["pt_raw"] - 1) < 0.2)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(feats["charged"][:, :, IDX["charged"]["dpt"]])),
                               ak.to_numpy(ak.flatten(a.ch_pt / a.pt)), rtol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(feats["sv"][:, :, IDX["sv"]["mass"]])),
                               ak.to_numpy(ak.flatten(a.sv_mass)), rtol=1e-6)
    gi = IDX["globals"]
    np.testing.assert_array_equal(feats["globals"].to_numpy()[:, gi["multiplicity"]],
                                  ak.to_numpy(a.ch_size + a.ne_size))
    assert set(info) >= {"pt_raw", "pt_gen", "flavour", "eta", "eta_gen"}
    assert set(np.unique(info["flavour"])) <= {0, 1, 2, 3, 4, 5, 21}


def test_missing_branch_names_file_and_branch(shared_data, tmp_path):
    path = shared_data / "cms" / "nano_dy.root"  # NanoAOD without PF candidates
    events = _events(path)
    with pytest.raises(BadInputError, match=r"nano_dy\.root.*PFCands_pt"):
        jet_features(events, events.Jet)
    # an ml-jec-vars file that has only the per-jet branches
    with uproot.open(shared_data / "mljec" / "shard1.root") as f:
        a = f["Jets"].arrays(["pt", "eta", "phi", "mass", "area", "rho", "num_pv", "pt_gen", "eta_gen",
                              "phi_gen", "hadron_flavor", "parton_flavor", "pt_full_corr"], library="np")
    broken = tmp_path / "no_constituents.root"
    with uproot.recreate(broken) as f:
        f["Jets"] = a
    with pytest.raises(BadInputError, match=r"no_constituents\.root: missing branch ch_id"):
        read_mljec(str(broken))
    with pytest.raises(BadInputError, match="does not exist"):
        read_mljec(str(tmp_path / "absent.root"))


def test_fast_paths_give_the_values_of_the_plain_formulas():
    """wrap_phi without the float modulo and the block-wise float32 stacking (issue 15): the same values."""
    import physics.features as features

    rng = np.random.default_rng(3)
    dphi = np.concatenate([rng.uniform(-2 * math.pi, 2 * math.pi, 5000), rng.uniform(-30, 30, 500),
                           [np.nan, np.inf, -np.inf, -math.pi, math.pi, 3 * math.pi, -3 * math.pi, 2 * math.pi, -0.0,
                            np.nextafter(-math.pi, 0.0), np.nextafter(-math.pi, -4.0), -math.pi - 1e-17]])
    with np.errstate(invalid="ignore"):
        want = (dphi + math.pi) % (2.0 * math.pi) - math.pi
        got = wrap_phi(dphi)
    np.testing.assert_array_equal(got, want)
    n = 3 * features.STACK_ROWS + 17
    cols = [rng.normal(size=n), rng.normal(size=n).astype(np.float32), rng.integers(-1, 3, n),
            rng.normal(size=(n, 2)), features.OneHot(rng.integers(0, 4, n), (1, 3, 0))]
    cols[0][[5, n - 2]] = [np.nan, np.inf]
    got = features._stack32(cols, 8)
    want = np.concatenate([cols[0][:, None], cols[1][:, None], cols[2][:, None], cols[3],
                           one_hot(cols[4].values, cols[4].categories)], axis=1).astype(np.float32)
    want[[5, n - 2], 0] = 0.0
    np.testing.assert_array_equal(got, want)
