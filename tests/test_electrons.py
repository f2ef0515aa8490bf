"""Z->ee: label formula, generator + detector, processor, shards, model, bad input."""
from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest

from commands.collect import collect_electrons
from commands.run import run_electrons
from core.constants import M_Z
from physics.electrons import mass_constraint_label, pair_labels, pair_mass
from processors.electrons import ZeeProcessor
from core.errors import BadInputError


def _z_decay(m: float, pz: float, pt: float, cos_theta: float, phi_star: float, phi_z: float):
    """Two massless electrons from a boson of mass m (GeV) with (pT, pz), decay angles in its rest frame."""
    e_star = m / 2
    sin_t = np.sqrt(1 - cos_theta**2)
    p1 = e_star * np.array([sin_t * np.cos(phi_star), sin_t * np.sin(phi_star), cos_theta])
    four = [np.array([e_star, *p1]), np.array([e_star, *-p1])]
    px, py = pt * np.cos(phi_z), pt * np.sin(phi_z)
    energy = np.sqrt(m**2 + px**2 + py**2 + pz**2)
    beta = np.array([px, py, pz]) / energy
    b2 = beta @ beta
    gamma = 1 / np.sqrt(1 - b2)
    out = []
    for v in four:
        bp = beta @ v[1:]
        e = gamma * (v[0] + bp)
        p = v[1:] + (((gamma - 1) * bp / b2 if b2 > 0 else 0.0) + gamma * v[0]) * beta
        out.append((e, np.hypot(p[0], p[1]), np.arcsinh(p[2] / np.hypot(p[0], p[1])), np.arctan2(p[1], p[0])))
    return out


@pytest.mark.parametrize("pz, pt, cos_theta", [(0.0, 0.0, 0.3), (150.0, 25.0, -0.6), (-400.0, 60.0, 0.1)])
def test_label_is_true_energy_for_exact_partner_on_the_z_mass(pz, pt, cos_theta):
    (e1, pt1, eta1, phi1), (e2, pt2, eta2, phi2) = _z_decay(M_Z, pz, pt, cos_theta, 0.7, 2.0)
    assert pair_mass(pt1, eta1, phi1, pt2, eta2, phi2) == pytest.approx(M_Z, rel=1e-9)
    label_et = mass_constraint_label(pt2, eta1 - eta2, phi1 - phi2)
    assert label_et * np.cosh(eta1) == pytest.approx(e1, rel=1e-9)
    lab1, lab2, m = pair_labels(np.array([e1]), eta1, phi1, np.array([e2]), eta2, phi2)
    assert lab1[0] == pytest.approx(e1, rel=1e-9) and lab2[0] == pytest.approx(e2, rel=1e-9)


def test_label_scales_inversely_with_the_partner_energy():
    (e1, pt1, eta1, phi1), (e2, pt2, eta2, phi2) = _z_decay(M_Z, 80.0, 10.0, 0.4, 1.1, -0.5)
    # a partner measured 5% high gives a label 5% low
    lab1, _, _ = pair_labels(np.array([e1]), eta1, phi1, np.array([1.05 * e2]), eta2, phi2)
    assert lab1[0] == pytest.approx(e1 / 1.05, rel=1e-9)


@pytest.mark.parametrize("m, has_label", [(80.0, False), (85.9, False), (86.5, True), (96.5, True), (97.2, False)])
def test_no_label_outside_the_mass_window(m, has_label):
    (e1, _, eta1, phi1), (e2, _, eta2, phi2) = _z_decay(m, 30.0, 5.0, 0.2, 0.3, 0.0)
    lab1, lab2, mass = pair_labels(np.array([e1]), eta1, phi1, np.array([e2]), eta2, phi2)
    assert mass[0] == pytest.approx(m, rel=1e-9)
    assert np.isfinite(lab1[0]) == has_label and np.isfinite(lab2[0]) == has_label


# --------------------------------------------------------------------------- generated samples

@pytest.fixture(scope="session")
def zee_files(tmp_path_factory):
    """Small seeded Z->ee samples: 1500 MC events (2 files) and 800 'data' events."""
    from samples.zee import generate_zee

    d = tmp_path_factory.mktemp("zee")
    mc = generate_zee(d / "mc", 1500, events_per_file=750, seed=3, detector="mc")
    data = generate_zee(d / "data", 800, events_per_file=800, seed=4, detector="data")
    return {"mc": mc, "data": data, "dir": d}


def _fileset(files, kind=None, name="ds"):
    return {name: {"files": {f: "Events" for f in files}, "metadata": ({"kind": kind} if kind else {})}}


def test_generated_files_have_nanoaod_layout(zee_files):
    import uproot

    with uproot.open(zee_files["mc"][0]) as f:
        keys = set(f["Events"].keys())
    for k in ("nElectron", "Electron_pt", "Electron_r9", "Electron_sieie", "Electron_eInvMinusPInv",
              "Electron_deltaEtaSC", "Electron_energyErr", "Electron_genPartIdx", "nGenPart", "nPFCands",
              "PFCands_pdgId", "PV_npvs", "fixedGridRhoFastjetAll"):
        assert k in keys, k
    with uproot.open(zee_files["data"][0]) as f:
        keys = set(f["Events"].keys())
    assert "nGenPart" not in keys and "Electron_genPartIdx" not in keys
    assert "Electron_r9" in keys


def test_generation_is_reproducible(tmp_path):
    from samples.zee import generate_zee

    a = generate_zee(tmp_path / "a", 60, events_per_file=60, seed=9, detector="data")
    b = generate_zee(tmp_path / "b", 60, events_per_file=60, seed=9, detector="data")
    import uproot

    xa = uproot.open(a[0])["Events"]["Electron_pt"].array()
    xb = uproot.open(b[0])["Events"]["Electron_pt"].array()
    assert ak.all(xa == xb) and ak.sum(ak.num(xa)) > 50


def test_detector_observables_follow_the_energy_loss():
    """Showering electrons (low r9) lose more energy and have E/p further from 1."""
    from samples.electron_detector import NOMINAL, simulate_electrons

    rng = np.random.default_rng(1)
    n = 20_000
    eta = rng.uniform(-2.4, 2.4, n)
    e = 45 * np.cosh(eta)
    r = simulate_electrons(e, eta, rng.uniform(-3, 3, n), rng.choice([-1, 1], n), np.zeros(n), np.full(n, 20.0),
                           None, NOMINAL, rng)
    resp = r["e_sc"] / e
    low_r9 = r["r9"] < 0.8
    assert np.median(resp[low_r9]) < np.median(resp[~low_r9]) - 0.01
    assert np.corrcoef(r["r9"], resp)[0, 1] > 0.1
    # more material at high |eta|: lower r9 on average
    assert r["r9"][np.abs(eta) > 1.6].mean() < r["r9"][np.abs(eta) < 0.8].mean()


def test_data_detector_differs_from_mc():
    from samples.electron_detector import DATA, NOMINAL, simulate_electrons

    out = {}
    for det in (NOMINAL, DATA):
        rng = np.random.default_rng(2)
        n = 20_000
        eta = rng.uniform(-1.4, 1.4, n)
        e = 40 * np.cosh(eta)
        r = simulate_electrons(e, eta, np.zeros(n), np.ones(n), np.zeros(n), np.full(n, 20.0), None, det, rng)
        out[det.name] = (np.median(r["e_sc"] / e), r["r9"].mean())
    assert abs(out["data"][0] - out["mc"][0]) > 0.005  # another ECAL scale
    assert out["data"][1] < out["mc"][1]  # more material -> more brem -> lower r9


def test_processor_cutflow_labels_and_truth(zee_files, tmp_path):
    fs = {**_fileset(zee_files["mc"], "mc", "zmc"), **_fileset(zee_files["data"], "data", "zdata")}
    out = collect_electrons(fs, tmp_path / "shards")
    cf = out["cutflow"]
    assert cf["zmc"]["events"] == 1500 and cf["zdata"]["events"] == 800
    for ds in ("zmc", "zdata"):
        c = cf[ds]
        assert c["events_two_good_electrons"] >= c["events_opposite_charge"] >= c["events_60_120"] \
            >= c["events_label_window"] > 0.2 * c["events"]
    # every selected MC electron is gen matched (one per leg)
    assert cf["zmc"]["electrons_gen_matched"] == 2 * cf["zmc"]["events_60_120"]
    table = ak.concatenate([ak.from_parquet(p) for p in out["shards"]])
    kind = np.asarray(ak.to_list(table.kind))
    m = ak.to_numpy(table.m_ee)
    lab = ak.to_numpy(table.e_label)
    # labels exactly inside the window
    assert np.all(np.isfinite(lab) == ((m > 86) & (m < 97)))
    assert np.isfinite(ak.to_numpy(table.e_true)[kind == "mc"]).all()
    assert np.isnan(ak.to_numpy(table.e_true)[kind == "data"]).all()
    assert (kind == "mc").sum() == 2 * cf["zmc"]["events_60_120"]
    # the raw MC response is close to but below 1 (brem losses); the label ratio peaks near the response
    mc = kind == "mc"
    resp = ak.to_numpy(table.e_raw)[mc] / ak.to_numpy(table.e_true)[mc]
    assert 0.95 < np.median(resp) < 1.0
    # histograms: one m_ee entry per pair in 60-120
    h = out["m_ee"]
    assert h[{"kind": "mc", "correction": "raw"}].sum() == cf["zmc"]["events_60_120"]
    assert out["ratio_true"][{"kind": "mc", "correction": "raw"}].sum(flow=True) == 2 * cf["zmc"]["events_60_120"]
    # nearby PF candidates are collected for generated electrons
    assert ak.mean(ak.num(table.cands)) > 0.3


def test_data_file_passed_as_mc_is_counted_not_crashing(zee_files):
    out = run_electrons(_fileset(zee_files["data"], "mc", "wrong"))
    assert out["cutflow"]["wrong"]["mc_without_genpart"] == 800
    assert any("declared MC but has no GenPart" in w for w in out["warnings"])
    assert out["m_ee"][{"kind": "data", "correction": "raw"}].sum() > 0


def test_file_without_electrons_and_single_electron_events(tmp_path):
    import uproot

    no_ele = tmp_path / "no_electrons.root"
    with uproot.recreate(no_ele) as f:
        f.mktree("Events", {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64})
        f["Events"].extend({"run": np.ones(5, np.uint32), "luminosityBlock": np.ones(5, np.uint32),
                            "event": np.arange(5, dtype=np.uint64)})
    out = run_electrons(_fileset([str(no_ele)], None, "empty"))
    assert out["cutflow"]["empty"]["no_electron_branches"] == 5
    assert any("no Electron collection" in w for w in out["warnings"])

    one = tmp_path / "one_electron.root"
    ele = ak.zip({"pt": np.full(4, 40.0, np.float32), "eta": np.zeros(4, np.float32), "phi": np.zeros(4, np.float32),
                  "mass": np.zeros(4, np.float32), "charge": np.full(4, -1, np.int32),
                  "deltaEtaSC": np.zeros(4, np.float32), "r9": np.full(4, 0.95, np.float32),
                  "sieie": np.full(4, 0.009, np.float32), "hoe": np.zeros(4, np.float32),
                  "eInvMinusPInv": np.zeros(4, np.float32), "energyErr": np.ones(4, np.float32),
                  "pfRelIso03_all": np.zeros(4, np.float32), "convVeto": np.ones(4, bool),
                  "lostHits": np.zeros(4, np.uint8), "cutBased": np.full(4, 4, np.int32)})
    with uproot.recreate(one) as f:
        tree = {"run": np.ones(4, np.uint32), "luminosityBlock": np.ones(4, np.uint32),
                "event": np.arange(4, dtype=np.uint64), "Electron": ak.unflatten(ele, [1, 1, 1, 1])}
        f.mktree("Events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in tree.items()})
        f["Events"].extend(tree)
    out = run_electrons(_fileset([str(one)], "data", "single"))
    c = out["cutflow"]["single"]
    assert c["events_one_good_electron"] == 4 and c["events_two_good_electrons"] == 0
    assert out["m_ee"].sum() == 0


def test_runs_on_real_nanoaod(shared_data, tmp_path):
    files = {"dy": shared_data / "cms" / "nano_dy.root", "tt": shared_data / "cms" / "nano_tt_v12.root",
             "dimuon": shared_data / "cms" / "nano_dimuon.root"}
    fs = {k: {"files": {str(v): "Events"}, "metadata": {}} for k, v in files.items()}
    out = collect_electrons(fs, tmp_path / "real")
    cf = out["cutflow"]
    assert cf["dy"]["events"] == 40 and cf["tt"]["events"] == 200 and cf["dimuon"]["events"] == 40
    assert cf["dy"]["events_60_120"] >= 1
    assert cf["dy"]["electrons_gen_matched"] == 2 * cf["dy"]["events_60_120"]
    assert "dimuon" in out["datasets_without_gen"]
    table = ak.concatenate([ak.from_parquet(p) for p in out["shards"] if "dy_" in p])
    e_true = ak.to_numpy(table.e_true)
    resp = ak.to_numpy(table.e_raw) / e_true
    assert np.all((resp > 0.7) & (resp < 1.3))  # CMS-regressed electrons are close to the truth
    assert np.isfinite(ak.to_numpy(table.f_rho)).all()


# --------------------------------------------------------------------------- model + training

@pytest.fixture(scope="session")
def zee_shards(zee_files, tmp_path_factory):
    d = tmp_path_factory.mktemp("zee_shards")
    collect_electrons(_fileset(zee_files["mc"], "mc", "zmc"), d / "mc")
    collect_electrons(_fileset(zee_files["data"], "data", "zdata"), d / "data")
    return d


def test_model_masks_padding_and_round_trips(zee_shards, tmp_path):
    from models.electron import ElectronModelConfig, load_model, predict_log_correction
    from models.train_electrons import load_shards, train

    cfg = ElectronModelConfig(epochs=2, label_rounds=2, cand_layers=[16, 16], cond_layers=[16], head_layers=[16],
                              batch_size=256)
    mc = load_shards(zee_shards / "mc", cfg.max_cands)
    data = load_shards(zee_shards / "data", cfg.max_cands)
    assert mc["cands"].shape[1:] == (cfg.max_cands, 9)
    info = train("simultaneous", mc, data, cfg, tmp_path / "sim.keras", log=lambda *a: None)
    assert info["trained_on_data"] and set(info["n_train"]) == {"mc", "data"}
    assert np.isfinite(info["loss_history"]).all()
    model = load_model(tmp_path / "sim.keras")
    flag = np.zeros(len(mc["e_raw"]))
    y1 = predict_log_correction(model, mc["scalars"], mc["cands"], mc["mask"], flag)
    # padded entries do not matter
    junk = mc["cands"].copy()
    junk[mc["mask"] == 0] = 123.0
    y2 = predict_log_correction(model, mc["scalars"], junk, mc["mask"], flag)
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "sim.json").read_text())["mode"] == "simultaneous"


def test_training_refuses_data_shards_as_mc(zee_shards, tmp_path):
    from models.electron import ElectronModelConfig
    from models.train_electrons import load_shards, train

    cfg = ElectronModelConfig(epochs=1, label_rounds=1)
    data = load_shards(zee_shards / "data", cfg.max_cands)
    with pytest.raises(BadInputError, match="no true energy"):
        train("mc", data, None, cfg, tmp_path / "x.keras", log=lambda *a: None)


def test_bad_config_and_missing_shards(tmp_path):
    from models.electron import ElectronModelConfig
    from models.train_electrons import load_shards

    cfg = tmp_path / "e.yaml"
    cfg.write_text("epochs: 3\nwidth: 9\n")
    with pytest.raises(BadInputError, match="unknown electron config keys"):
        ElectronModelConfig.from_yaml(cfg)
    with pytest.raises(BadInputError, match="no electron shards"):
        load_shards(tmp_path / "nothing", 16)


def test_processor_default_constructor_matches_run_cli():
    proc = ZeeProcessor()
    assert proc.corrections == ["raw"]


def test_generate_and_collect_commands(tmp_path, capsys):
    """``runner.py generate --process zee`` and ``runner.py collect --processor electrons`` end to end."""
    import uproot

    import runner

    rc = runner.main(["generate", "--process", "zee", "--detector", "data", "--events", "300",
                      "--events-per-file", "150", "--seed", "5", "--executor", "iterative", "--no-progress",
                      "--out", str(tmp_path / "gen")])
    assert rc == 0
    files = sorted((tmp_path / "gen").glob("zee_data_5_*.root"))
    assert len(files) == 2
    assert "nGenPart" not in uproot.open(files[0])["Events"].keys()
    capsys.readouterr()
    rc = runner.main(["collect", "--processor", "electrons", "--kind", "data", "--fileset", *map(str, files),
                      "--out", str(tmp_path / "shards"), "--executor", "iterative", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    shards = sorted((tmp_path / "shards").glob("*.parquet"))
    assert len(shards) == 2 and "2 shards" in printed
    table = ak.concatenate([ak.from_parquet(p) for p in shards])
    assert set(ak.to_list(table.kind)) == {"data"}
    assert np.isnan(ak.to_numpy(table.e_true)).all()


def test_reference_mass_is_the_in_window_median_of_true_energies():
    from models.train_electrons import reference_mass

    true_m = np.array([80.0, 88.0, 90.0, 90.5, 91.0, 99.0])  # two pairs outside 86-97
    e_true = np.repeat(true_m / 2, 2)  # back to back at eta 0: m = 2 sqrt(E1 E2)
    mc = {"e_true": e_true, "e_raw": 0.9 * e_true, "eta": np.zeros(12),
          "phi": np.tile([0.0, np.pi], 6)}
    assert reference_mass(mc) == pytest.approx(np.median([88.0, 90.0, 90.5, 91.0]), rel=1e-9)
    mc["e_true"] = np.full(12, np.nan)  # data passed as MC: no truth, fall back to M_Z
    assert reference_mass(mc) == M_Z


def test_brem_leaves_the_supercluster_at_z_energies_and_r9_tells():
    """Issue 16 realism: converted brem legs land outside the SC road as PF photons at E_T 45 GeV,
    low r9 means a lower and wider response, and data has more of it."""
    from samples.electron_detector import DATA, NOMINAL, simulate_electrons

    frac = {}
    for det in (NOMINAL, DATA):
        rng = np.random.default_rng(8)
        n = 10_000
        eta = rng.uniform(-1.4, 1.4, n)
        e = 45 * np.cosh(eta)
        r = simulate_electrons(e, eta, np.zeros(n), rng.choice([-1, 1], n), np.zeros(n), np.full(n, 20.0), None,
                               det, rng)
        frac[det.name] = np.mean([len(p) > 0 for p in r["pf_photons"]])
        resp = r["e_sc"] / e
        lo, hi = r["r9"] < np.quantile(r["r9"], 0.25), r["r9"] > np.quantile(r["r9"], 0.5)
        iqr = [np.subtract(*np.percentile(resp[m], [75, 25])) for m in (lo, hi)]
        assert iqr[0] > 1.3 * iqr[1] and np.median(resp[lo]) < np.median(resp[hi]) - 0.01
    assert frac["mc"] > 0.1 and frac["data"] > frac["mc"]


def test_data_truth_is_kept_in_a_sidecar_and_loose_id_is_near_90_percent(zee_files):
    import uproot

    from samples.zee import truth_sidecar

    side = truth_sidecar(zee_files["data"][0])
    truth = ak.from_parquet(side)
    with uproot.open(zee_files["data"][0]) as f:
        t = f["Events"]
        assert not any("ruth" in k or "GenPart" in k for k in t.keys())
        n_ele = int(ak.sum(t["nElectron"].array()))
    assert len(truth) == n_ele and np.isfinite(ak.to_numpy(truth.e_true)).all()
    with uproot.open(zee_files["mc"][0]) as f:
        ele = f["Events"].arrays(["Electron_pt", "Electron_cutBased"])
    sel = ak.flatten(ele.Electron_pt) > 15
    eff = float(np.mean(ak.to_numpy(ak.flatten(ele.Electron_cutBased))[ak.to_numpy(sel)] >= 2))
    assert 0.85 < eff < 0.95, eff
