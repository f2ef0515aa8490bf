"""Jet response processor on real CMS NanoAOD/PFNano files (issue 2)."""
from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
import uproot

from physics.jec import JECConfig
from physics.jets import flavour_category
from processors.jets import JetResponseProcessor
from commands.run import run_fileset

CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "processors" / "configs"
MC_FILES = ("pfnano.root", "nano_dy.root", "nano_tt_v12.root")


@pytest.fixture(scope="module")
def jec_text(shared_data):
    return JECConfig.from_yaml(CONFIGS / "jec_summer22_puppi.yaml")


@pytest.fixture(scope="module")
def jec_clib(shared_data):
    return JECConfig.from_yaml(CONFIGS / "jec_summer22_puppi_correctionlib.yaml")


def fileset_of(shared_data, names):
    return {n.removesuffix(".root"): {"files": {str(shared_data / "cms" / n): "Events"}, "metadata": {}}
            for n in names}


def run(fileset, proc, executor="iterative", **kw):
    out, _ = run_fileset(fileset, proc, executor=executor, workers=2, status=False, **kw)
    return out


def independent_matched_jets(path, min_pt_raw=10.0, max_dr=0.2):
    """Matched jets counted with uproot + numpy, without coffea."""
    t = uproot.open(path)["Events"]
    a = t.arrays(["Jet_pt", "Jet_rawFactor", "Jet_eta", "Jet_phi", "Jet_genJetIdx", "GenJet_eta", "GenJet_phi"])
    n = 0
    for ev in a:
        for pt, rf, eta, phi, gi in zip(ev.Jet_pt, ev.Jet_rawFactor, ev.Jet_eta, ev.Jet_phi, ev.Jet_genJetIdx):
            if (1 - rf) * pt <= min_pt_raw or abs(eta) >= 5.0:
                continue
            if gi < 0 or gi >= len(ev.GenJet_eta):
                continue
            dphi = (phi - ev.GenJet_phi[gi] + math.pi) % (2 * math.pi) - math.pi
            if math.hypot(eta - ev.GenJet_eta[gi], dphi) < max_dr:
                n += 1
    return n


def test_l1l2_equals_direct_factorized_jet_corrector(shared_data, jec_text):
    """Processor's L1L2 pT == FactorizedJetCorrector evaluated directly on the same jets."""
    from coffea.jetmet_tools import FactorizedJetCorrector
    from coffea.lookup_tools import extractor

    path = shared_data / "cms" / "nano_tt_v12.root"
    out = run(fileset_of(shared_data, ["nano_tt_v12.root"]), JetResponseProcessor(jec=jec_text, keep_jet_arrays=True))
    table = {k: v.value for k, v in out["jet_table"].items()}

    ext = extractor()
    ext.add_weight_sets([f"* * {f}" for f in jec_text.text_files])
    ext.finalize()
    ev = ext.make_evaluator()
    names = [f.split("/")[-1].split(".")[0] for f in jec_text.text_files]
    corrector = FactorizedJetCorrector(**{n: ev[n] for n in names})
    factor = corrector.getCorrection(JetEta=table["eta"], Rho=table["rho"], JetPt=table["pt_raw"], JetA=table["area"])
    direct = np.asarray(factor) * table["pt_raw"]
    assert len(direct) > 1000
    np.testing.assert_allclose(table["pt_L1L2"], direct, rtol=1e-6)
    # the correction really changes pT (Summer22 L2Relative is not 1)
    assert np.median(np.abs(table["pt_L1L2"] / table["pt_raw"] - 1)) > 0.01
    # rho is the v12 branch Rho_fixedGridRhoFastjetAll, read per event
    rho = uproot.open(path)["Events"]["Rho_fixedGridRhoFastjetAll"].array(library="np")
    assert set(np.round(table["rho"], 4)) <= set(np.round(rho, 4))


def test_correctionlib_stack_equals_text_stack(shared_data, jec_text, jec_clib):
    fs = fileset_of(shared_data, ["nano_tt_v12.root"])
    a = run(fs, JetResponseProcessor(jec=jec_text, keep_jet_arrays=True))["jet_table"]
    b = run(fs, JetResponseProcessor(jec=jec_clib, keep_jet_arrays=True))["jet_table"]
    np.testing.assert_allclose(a["pt_L1L2"].value, b["pt_L1L2"].value, rtol=1e-5)


@pytest.mark.parametrize("name", MC_FILES)
def test_histogram_counts_equal_independent_matched_jets(shared_data, jec_text, name):
    out = run(fileset_of(shared_data, [name]), JetResponseProcessor(jec=jec_text))
    expected = independent_matched_jets(shared_data / "cms" / name)
    assert expected > 0
    h = out["response"]
    for correction in ("raw", "L1L2"):
        assert h[{"correction": correction}].sum(flow=True) == expected
    assert out["cutflow"][name.removesuffix(".root")]["jets_gen_matched"] == expected


def test_collision_data_gives_reco_histograms_only(shared_data, jec_text):
    out = run(fileset_of(shared_data, ["nano_dimuon.root"]), JetResponseProcessor(jec=jec_text))
    assert out["datasets_without_gen"] == {"nano_dimuon"}
    n_jets = out["cutflow"]["nano_dimuon"]["jets_selected"]
    assert n_jets > 100
    assert out["reco_pt"][{"correction": "L1L2"}].sum(flow=True) == n_jets
    assert out["response"].sum(flow=True) == 0


def test_executors_give_identical_histograms(shared_data, jec_text):
    fs = fileset_of(shared_data, ["nano_tt_v12.root", "pfnano.root", "nano_dimuon.root"])
    outs = {ex: run(fs, JetResponseProcessor(jec=jec_text), executor=ex, chunksize=60)
            for ex in ("iterative", "futures", "dask")}
    ref = outs["iterative"]
    assert ref["response"].sum(flow=True) > 1000
    for ex in ("futures", "dask"):
        for key in ("response", "reco_pt"):
            assert list(outs[ex][key].axes["correction"]) == list(ref[key].axes["correction"]) or \
                sorted(outs[ex][key].axes["correction"]) == sorted(ref[key].axes["correction"])
            for c in ref[key].axes["correction"]:
                np.testing.assert_array_equal(outs[ex][key][{"correction": c}].values(flow=True),
                                              ref[key][{"correction": c}].values(flow=True))
        assert outs[ex]["cutflow"] == ref["cutflow"]


def test_flavour_definition():
    codes = np.array([0, 1, 2, 3, 4, 5, 21, 6])
    assert list(flavour_category(codes)) == ["unknown", "uds", "uds", "uds", "c", "b", "g", "unknown"]
    from physics.jets import jet_flavour

    jets = ak.Array([[{"hadronFlavour": 5, "partonFlavour": -1}, {"hadronFlavour": 0, "partonFlavour": -21},
                      {"hadronFlavour": 0, "partonFlavour": 0}, {"hadronFlavour": 4, "partonFlavour": 21}]])
    assert jet_flavour(jets).tolist() == [[5, 21, 0, 4]]
