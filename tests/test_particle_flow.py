"""Physics of the particle-flow detector: calorimeter clustering, PF calibration, PFNano conventions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

REAL_PFNANO = "/work/shared/data/cms/pfnano.root"


def test_two_close_photons_merge_into_one_cluster():
    from samples.calorimeter import calorimeter_clusters
    from samples.detector import EB

    rng = np.random.default_rng(1)
    ev = np.array([0, 0, 1, 1])
    eta = np.array([0.1003, 0.1053, 0.1003, 0.3003])      # event 0: 0.005 apart; event 1: 0.2 apart
    phi = np.array([0.5, 0.5, 0.5, 0.5])
    w = np.stack([np.full(4, 10.0), np.full(4, 10.0)], axis=1)
    _, cl = calorimeter_clusters(EB, ev, eta, phi, w, rng)
    n_per_event = np.bincount(cl["event"], minlength=2)
    assert n_per_event.tolist() == [1, 2]
    merged = cl["energy"][cl["event"] == 0][0]
    assert 18.0 < merged < 21.0
    assert abs(cl["eta"][cl["event"] == 0][0] - 0.103) < 0.01


def _gun(species, eta_range, e_range=(20.0, 100.0), n=3000, seed=3):
    from samples.pf_calibration import load_table
    from samples.pf_calibration_derive import gun_sums, particle_gun

    g = particle_gun(species, n, e_range, eta_range, np.random.default_rng(seed))
    return g, gun_sums(g, seed, load_table())


@pytest.mark.parametrize("species, eta_range", [((130, 2112), (0.0, 1.3)), ((130, 2112), (1.6, 2.9)),
                                                ((22,), (0.0, 2.5)), ((211, 130), (3.2, 4.8))])
def test_calibrated_neutral_response_near_one(species, eta_range):
    g, s = _gun(species, eta_range)
    total = s["photon"] + s["neutral"] + s["hf_had"] + s["hf_em_cand"] + s["charged"]
    r = np.mean(total / g["e"])
    assert 0.9 < r < 1.1


def test_em_fraction_fluctuates_per_shower():
    from samples.detector import hadron_showers

    rng = np.random.default_rng(2)
    e = np.full(5000, 50.0)
    _, _, fem = hadron_showers(e, np.full(5000, 211), np.full(5000, 0.1396), rng)
    assert 0.05 < fem.std() < 0.25
    _, _, fem_p = hadron_showers(e, np.full(5000, 2212), np.full(5000, 0.938), rng)
    assert fem_p.mean() < fem.mean() - 0.03               # baryon showers are less electromagnetic


@pytest.fixture(scope="module")
def pu_chunk():
    from samples.generate import _load_library, pileup_library, simulate_chunk
    from samples.pythia_gen import generate_events
    from pathlib import Path

    hard = generate_events("qcd", 30, 21)
    lib = _load_library(pileup_library(Path(__file__).resolve().parents[1] / "cache" / "pileup"))
    return simulate_chunk(hard, 21, 30.0, lib)


def test_pfcands_branches_match_real_pfnano(pu_chunk):
    import uproot

    from samples.generate import PFCAND_BRANCHES

    t = uproot.open(REAL_PFNANO)["Events"]
    real = {k[len("PFCands_"):]: t[k].interpretation.content.from_dtype.newbyteorder("=")
            for k in t.keys(filter_name="PFCands_*")}
    assert set(PFCAND_BRANCHES) == set(real)
    pf = pu_chunk[1]["PFCands"]
    for k, dt in real.items():
        assert pf[k].dtype == dt, k
    assert "fromPV" not in pf


def test_pfcands_conventions_like_real(pu_chunk):
    pf = pu_chunk[1]["PFCands"]
    ch = pf["charge"] != 0
    assert set(np.unique(pf["pvAssocQuality"][ch])) <= {0, 1, 4, 5, 6, 7}
    assert len(set(np.unique(pf["pvAssocQuality"][ch]))) >= 4
    assert set(np.unique(pf["lostInnerHits"][ch])) <= {-1, 0, 1, 2}
    assert np.mean(pf["lostInnerHits"][ch] == -1) > 0.6
    assert np.all(pf["lostInnerHits"][~ch] == -1) and np.all(pf["pvAssocQuality"][~ch] == 7)
    w = pf["puppiWeight"]
    assert set(np.unique(w[ch])) <= {0.0, 1.0}
    assert np.any((w[~ch] > 0.05) & (w[~ch] < 0.95))             # continuous neutral weights
    assert np.mean(w[~ch] < 0.05) > 0.05                            # pileup neutrals suppressed
    n_hf = np.isin(pf["pdgId"], (1, 2)).sum()
    assert n_hf < ch.sum()


def test_jet_area_of_hard_jets(pu_chunk):
    jets = pu_chunk[1]["Jet"]
    hard = jets["pt"] > 60
    assert hard.sum() > 5
    assert abs(np.median(jets["area"][hard]) - np.pi * 0.16) < 0.05


def test_pf_numbers_cms_like(nopu_files):
    from samples.pf_validation import pf_numbers

    d = pf_numbers(nopu_files)
    assert d["n_jets"] > 50
    assert 0.45 < d["mean_fraction_charged"] < 0.75
    assert 0.15 < d["mean_fraction_photon"] < 0.4
    assert 0.03 < d["mean_fraction_neutral"] < 0.25
    assert abs(d["nh_quintile_change"]) < 0.1


@pytest.fixture(scope="module")
def nopu_files(tmp_path_factory):
    from samples.generate import generate_sample

    return generate_sample(str(tmp_path_factory.mktemp("pf_nopu")), 200, 200, seed=11, pileup_mean=0.0,
                           executor="iterative")


def test_pfcand_table_of_hard_jets(nopu_files, shared_data):
    """The generated-vs-real table: same quantities on both sides, fractions that add up, conventions shared."""
    from samples.pf_validation import pfcand_distributions, pfcand_summary, pfcand_table

    real = str(shared_data / "cms" / "pfnano.root")
    gen = pfcand_summary(pfcand_distributions(nopu_files[0], pt_min=30.0, abs_eta_max=2.5))
    ref = pfcand_summary(pfcand_distributions(real, pt_min=30.0, abs_eta_max=2.5))
    assert gen.keys() == ref.keys()
    for row in (gen, ref):
        assert sum(row[f"pvAssocQuality={v}"] for v in (0, 1, 4, 5, 6, 7)) == pytest.approx(1.0, abs=1e-9)
        assert row["lostInnerHits=-1"] > 0.5 and row["candidates per jet"] > 5
    # without pileup the hard jets carry no pileup charged candidates and a CMS-like charged share
    assert gen["puppiWeight charged = 1"] > 0.9 and 0.3 < gen["pdgId 211"] < 0.7
    table = pfcand_table(nopu_files[0], real, pt_min=30.0, abs_eta_max=2.5)
    assert table.count("\n") == len(gen) + 1



def test_pfcand_breakdown_of_the_real_file(shared_data):
    """The breakdown's numbers on real PFNano: pT shares that add up, the strip-seeded tracks only closest in dz,
    dz errors falling with pT, Run-2 pileup."""
    from samples.pf_validation import BREAKDOWN_JET_PT, pfcand_breakdown

    b = pfcand_breakdown(str(shared_data / "cms" / "pfnano.root"))
    for lo, hi in BREAKDOWN_JET_PT:
        tag = f"{lo:.0f}-{hi:.0f} GeV jets"
        shares = [b[f"{tag}: pT share {k}"] for k in ("charged", "photons", "neutral hadrons")]
        assert sum(shares) == pytest.approx(1.0, abs=0.01) and 0.4 < shares[0] < 0.7
    assert b["lostInnerHits=2 tracks at pvAssocQuality 1"] > 0.7
    dz = [b[f"median dzErr [um], prompt tracks {k}"] for k in ("0.5-1 GeV", "1-2 GeV", "2-5 GeV", "5-20 GeV")]
    assert dz == sorted(dz, reverse=True) and 10 < dz[-1] < dz[0] < 200
    assert 10 < b["mean rho [GeV]"] < 30 and 20 < b["mean pileup interactions"] < 40

def test_tracks_outside_vertex_fits_are_associated_by_dz():
    """PrimaryVertexAssignment-like: fit -> 7; not in a fit -> 5 when dz-compatible with the closest vertex
    (small dz error), 1 when only closest, 0 when far from all; PUPPI's fromPV logic on top."""
    from samples.reconstruction import charged_from_pv
    from samples.tracking import associate_tracks

    vertex_z = np.array([0.0, 1.0, -2.0])                 # PV and two pileup vertices, all reconstructed
    n = 6
    event = np.zeros(n, dtype=np.int64)
    vertex = np.array([1, 1, 1, 0, 0, 2])
    z_trk = np.array([1.001, 1.02, 1.02, 0.01, 0.002, 4.0])
    dz_err = np.array([0.005, 0.01, 0.08, 0.01, 0.005, 0.01])
    fit_ok = np.array([True, False, False, False, True, False])
    assoc, q = associate_tracks(event, vertex, z_trk, dz_err, np.zeros(n), vertex_z, np.ones(3, bool),
                                np.array([3]), fit_ok=fit_ok)
    assert q.tolist() == [7, 5, 1, 5, 7, 0]
    assert assoc.tolist() == [1, 1, 1, 0, 0, -1]
    from_pv = charged_from_pv(np.ones(n, bool), assoc, q, z_trk - vertex_z[0], 0.3)
    assert from_pv.tolist() == [False, False, False, True, True, False]


def test_lost_inner_hits_codes():
    from samples.detector import NOMINAL
    from samples.tracking import lost_inner_hits

    u = np.array([0.01, 0.10, 0.20, 0.99, 0.5, 0.5])
    r = np.array([0.1, 0.1, 0.1, 0.1, 4.0, 10.0])
    lih = lost_inner_hits(r, np.zeros(6), u, NOMINAL)
    assert lih.tolist() == [2, 0, 1, -1, 1, 2]
    many = lost_inner_hits(np.full(100_000, 0.1), np.zeros(100_000), np.random.default_rng(1).random(100_000))
    assert 0.7 < np.mean(many == -1) < 0.85 and 0.08 < np.mean(many == 0) < 0.12


def test_spectrum_weights_reproduce_the_reference_spectrum():
    from samples.pf_validation import JET_PT_EDGES, spectrum_weight

    rng = np.random.default_rng(4)
    ref = np.concatenate([rng.uniform(35, 250, 14), rng.uniform(1100, 1600, 20)])
    own = 30 * np.exp(rng.exponential(1.2, 20_000))
    w = spectrum_weight(ref, own, JET_PT_EDGES)(own)
    got = np.histogram(own, JET_PT_EDGES, weights=w)[0] / w.sum()
    want = np.histogram(ref, JET_PT_EDGES)[0] / len(ref)
    assert np.allclose(got, want)
    assert np.all(w[own > JET_PT_EDGES[-1]] == 0)


def test_dense_core_neighbours_counted_per_event_and_across_phi_wrap():
    from samples.tracking import core_neighbours

    event = np.array([0, 0, 0, 1, 1, 1])
    eta = np.array([0.5, 0.505, 0.9, 0.0, 0.0, 0.0])
    phi = np.array([1.0, 1.0, 1.0, np.pi - 0.004, -np.pi + 0.004, 2.0])   # event 1: a pair across the phi wrap
    hard = np.array([True, True, True, True, True, True])
    assert core_neighbours(event, eta, phi, hard, 0.02).tolist() == [1, 1, 0, 1, 1, 0]
    hard[1] = False                                                            # soft particles do not count
    assert core_neighbours(event, eta, phi, hard, 0.02).tolist() == [0, 0, 0, 1, 1, 0]


def test_impact_resolution_like_real_pfnano_and_worse_without_inner_hits():
    """Prompt |eta| ~ 0 tracks: real PFNano dzErr medians are ~89 um at 0.75 GeV and ~23 um at 10 GeV; a track
    seeded in the strips (lostInnerHits 2) has ~40x that, so it cannot be dz-compatible (dzErr < 0.05 cm)."""
    from samples.tracking import impact_resolution, lost_hit_scale

    _, sz = impact_resolution(np.array([0.75, 10.0]), np.zeros(2))
    assert 70e-4 < sz[0] < 110e-4 and 18e-4 < sz[1] < 30e-4
    scale = lost_hit_scale(np.array([-1, 0, 1, 2, -1]), np.array([0.0, 0.0, 0.0, 0.0, 29.0]))
    assert scale.tolist() == [1.0, 1.5, 3.0, 40.0, 11.0]
    assert sz[1] * scale[3] > 0.05


def test_photon_conversions_follow_the_material_and_lose_soft_legs():
    """More conversions where the tracker has more material; a converted 0.6 GeV photon mostly loses
    its legs (they curl up before the ECAL), a 50 GeV one keeps both, bent apart in phi by charge."""
    from samples.detector import NOMINAL, photon_conversions
    from samples.material import conversion_probability, tracker_material

    n = 20_000
    rng = np.random.default_rng(5)
    for eta, want in ((0.0, conversion_probability(tracker_material(0.0))),
                      (1.4, conversion_probability(tracker_material(1.4)))):
        cv = photon_conversions(np.full(n, 10.0), np.full(n, eta), np.zeros(n), np.ones(n, bool), rng)
        assert cv["conv"].mean() == pytest.approx(want, abs=0.015)
    assert conversion_probability(tracker_material(1.4)) > 2 * conversion_probability(tracker_material(0.0))
    soft = photon_conversions(np.full(n, 0.6), np.zeros(n), np.zeros(n), np.ones(n, bool), rng)
    c = soft["conv"]
    assert (soft["reach_a"][c] & soft["reach_b"][c]).mean() < 0.2
    hard = photon_conversions(np.full(n, 50.0), np.zeros(n), np.zeros(n), np.ones(n, bool), rng)
    c = hard["conv"] & (hard["share"] > 0.3) & (hard["share"] < 0.7)
    assert (hard["reach_a"][c] & hard["reach_b"][c]).all()
    assert np.all(hard["phi_a"][c] < 0) and np.all(hard["phi_b"][c] > 0)   # + bends to -phi, - to +phi
    off = photon_conversions(np.full(10, 10.0), np.zeros(10), np.zeros(10), np.ones(10, bool), rng,
                             replace(NOMINAL, photon_conversions=False))
    assert not off["conv"].any()


def test_endcap_seeds_need_transverse_energy():
    """CMS's EE seeding asks for 0.15 GeV of transverse energy too: 1 GeV at eta 2.9 (pT 0.11) seeds no
    cluster, the same energy at eta 1.6 (pT 0.39) does."""
    from samples.calorimeter import calorimeter_clusters
    from samples.detector import EE

    rng = np.random.default_rng(3)
    eta = np.array([1.6, 2.9])
    w = np.stack([np.full(2, 1.0), np.full(2, 1.0)], axis=1)
    _, cl = calorimeter_clusters(replace(EE, noise=1e-6, miscalibration=0.0), np.array([0, 1]), eta,
                                 np.zeros(2), w, rng)
    assert cl["event"].tolist() == [0]


def test_b_track_recovery_gives_quality_4():
    """PrimaryVertexAssignment's b-track recovery: not dz-compatible (more than 5 sigma) but within 1 mm of
    the closest vertex and with a small impact -> 4, assigned to that vertex; too far in dxy -> 1."""
    from samples.tracking import associate_tracks

    vertex_z = np.array([0.0, 1.0])
    z_trk = np.array([0.04, 0.04, 0.04])                   # 400 um from the PV, 40 sigma
    d0 = np.array([0.01, 0.2, 0.01])
    dz_err = np.array([0.001, 0.001, 0.08])
    assoc, q = associate_tracks(np.zeros(3, np.int64), np.zeros(3, np.int64), z_trk, dz_err, np.full(3, 5.0),
                                vertex_z, np.ones(2, bool), np.array([2]), d0=d0, eta=np.zeros(3))
    assert q.tolist() == [4, 1, 1] and assoc.tolist() == [0, 0, 0]


def test_no_decays_beyond_the_calorimeter():
    """K0S and Lambda decay in flight only inside the ECAL surface; beyond it they reach the calorimeter."""
    from samples.detector import NOMINAL
    from samples.pythia_gen import generate_events

    evs = generate_events("qcd", 40, 8)
    r = np.concatenate([np.hypot(e["vx"], e["vy"]) for e in evs])
    z = np.abs(np.concatenate([e["vz"] for e in evs]))
    pid = np.abs(np.concatenate([e["pdgId"] for e in evs]))
    assert r.max() < 1000 * NOMINAL.ecal_radius and z.max() < 1000 * NOMINAL.ecal_z
    assert np.isin(pid, (310, 3122)).sum() > 10            # long-lived ones left undecayed


def test_truth_composition_tracks_part_of_the_charged_pt():
    """Generator shares add up to about the gen jet pT; tracked charged pT is most, not all, of the charged pT,
    and PF charged equals the tracked (charged candidates are the tracks)."""
    from samples.pf_validation import truth_composition

    d = truth_composition(80, 3, pt_range=(30.0, 500.0), abs_eta_max=2.0)
    assert d["n_jets"] > 20
    gen = d["gen charged / gen jet pT"] + d["gen photons / gen jet pT"] + d["gen neutral hadrons / gen jet pT"]
    assert 0.95 < gen < 1.15
    assert 0.8 * d["gen charged / gen jet pT"] < d["tracked charged / gen jet pT"] < d["gen charged / gen jet pT"]
    assert d["PF charged / gen jet pT"] == pytest.approx(d["tracked charged / gen jet pT"], rel=0.05)
    assert 0.15 < d["PF photons / gen jet pT"] < 0.45
