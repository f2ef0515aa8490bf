"""Real CMS files (issue 12): sane DNN corrections or a one-line refusal, and CMS's own regressions as rows."""
from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import runner
from core.errors import BadInputError
from inputs.output import load_output

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "trained" / "deepsets_lite.keras"
JEC = str(ROOT / "processors" / "configs" / "jec_summer22_puppi.yaml")
JET_FIELDS = ("pt", "eta", "phi", "mass", "rawFactor", "area", "genJetIdx", "hadronFlavour", "partonFlavour")


@pytest.fixture(scope="module")
def spec():
    from models.correction import ModelSpec

    if not SHIPPED.exists():
        pytest.skip("models/trained/deepsets_lite.keras not trained yet")
    return ModelSpec.from_path(str(SHIPPED), name="DeepSets")


def _write_tree(dst: Path, tree: dict) -> Path:
    """A TTree ``Events`` (not an RNTuple) with flat and jagged-record branches (nX + X_field)."""
    import uproot

    types = {k: (v.type.content if isinstance(v, ak.Array) and v.ndim > 1 else np.asarray(v).dtype)
             for k, v in tree.items()}
    with uproot.recreate(dst) as f:
        f.mktree("Events", types)
        f["Events"].extend({k: (v if isinstance(v, ak.Array) and v.ndim > 1 else np.asarray(v)) for k, v in tree.items()})
    return dst


def _write_subset(src: Path, dst: Path, drop_jet: tuple[str, ...] = (), rho: bool = True) -> Path:
    """A small NanoAOD-like copy of ``src`` (Jet, GenJet, rho) without the ``drop_jet`` fields / rho."""
    import uproot

    with uproot.open(src) as f:
        t = f["Events"]
        a = t.arrays(["run", "luminosityBlock", "event", *[f"Jet_{k}" for k in JET_FIELDS],
                      "GenJet_pt", "GenJet_eta", "GenJet_phi", "GenJet_mass", "Rho_fixedGridRhoFastjetAll"])
    tree = {"run": a.run, "luminosityBlock": a.luminosityBlock, "event": a.event,
            "Jet": ak.zip({k: a[f"Jet_{k}"] for k in JET_FIELDS if k not in drop_jet}),
            "GenJet": ak.zip({k: a[f"GenJet_{k}"] for k in ("pt", "eta", "phi", "mass")})}
    if rho:
        tree["Rho_fixedGridRhoFastjetAll"] = a.Rho_fixedGridRhoFastjetAll
    return _write_tree(dst, tree)


def _write_scouting(dst: Path) -> Path:
    """Scouting-like NanoAOD: ScoutingPFJet_* and no Jet collection."""
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 5, 20)
    n = int(counts.sum())
    jets = ak.unflatten(ak.zip({"pt": rng.uniform(20, 200, n).astype(np.float32),
                                "eta": rng.uniform(-2, 2, n).astype(np.float32),
                                "phi": rng.uniform(-3, 3, n).astype(np.float32),
                                "m": rng.uniform(1, 20, n).astype(np.float32)}), counts)
    return _write_tree(dst, {"run": np.ones(20, np.uint32), "luminosityBlock": np.ones(20, np.uint32),
                             "event": np.arange(20, dtype=np.uint64), "ScoutingPFJet": jets})


@pytest.fixture(scope="module")
def bad_files(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_files")
    tt = shared_data / "cms" / "nano_tt_v12.root"
    return {"no_rawfactor": _write_subset(tt, d / "no_rawfactor.root", drop_jet=("rawFactor",)),
            "no_rho": _write_subset(tt, d / "no_rho.root", rho=False),
            "scouting": _write_scouting(d / "scouting.root")}


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    rc = runner.main(["run", "--executor", "iterative", "--no-progress", *args])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def _one_line_error(text: str, *needles: str) -> None:
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "error:" in line]
    assert len(lines) == 1, text
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- the shipped model on real PFNano

def test_pfnano_with_shipped_model_is_finite_sane_and_counted(shared_data, spec):
    """Every corrected pT finite, median DNN response in 0.7-1.3, out-of-domain count in the cutflow and report."""
    from commands.run import run_fileset
    from physics.jec import JECConfig
    from processors.jets import JetResponseProcessor
    from results.report import build_report, to_markdown

    path = shared_data / "cms" / "pfnano.root"
    proc = JetResponseProcessor(jec=JECConfig.from_yaml(JEC), models=[spec], keep_jet_arrays=True)
    out, _ = run_fileset({"pfnano": {"files": {str(path): "Events"}}}, proc, executor="iterative", workers=1,
                         status=False)
    table = {k: v.value for k, v in out["jet_table"].items()}
    assert len(table["pt_DeepSets"]) >= 40
    assert np.all(np.isfinite(table["pt_DeepSets"]))
    median = np.median(table["pt_DeepSets"] / table["pt_gen"])
    assert 0.7 <= median <= 1.3, median
    cut = out["cutflow"]["pfnano"]
    assert cut["DeepSets_jets"] == cut["jets_selected"]
    assert 0 < cut["DeepSets_out_of_domain"] <= cut["DeepSets_jets"]
    assert cut["DeepSets_nonfinite"] == 0 and "DeepSets_clipped" in cut
    # every matched jet is in the model row once (NaN/inf would be dropped or sit in the overflow)
    h = out["response"][{"correction": "DeepSets"}]
    assert h.sum(flow=True) == len(table["pt_gen"])
    rep = build_report(out, n_boot=0)
    assert rep["trust"]["DeepSets"]["counts"]["out_of_domain"] == cut["DeepSets_out_of_domain"]
    md = to_markdown(rep)
    assert "DeepSets" in md and ("NOT TO BE TRUSTED" in md or "out of domain" in md)
    # this file has no matched jet beyond |eta| 2.5: the summary says so instead of "nan ± nan"
    assert rep["pooled"]["DeepSets"]["forward"]["n"] == 0
    summary = [line for line in md.splitlines() if line.startswith("| DeepSets |")][0]
    assert "nan" not in summary and summary.split("|")[4].strip() == "no jets"


# --------------------------------------------------------------------------- reference rows

def test_nano_v12_has_pnet_reference_rows_undefined_left_out(shared_data, tmp_path, capsys):
    out_path = tmp_path / "tt.coffea"
    rc, text = _run_cli(["--fileset", str(shared_data / "cms" / "nano_tt_v12.root"), "--jec", JEC,
                         "--output", str(out_path)], capsys)
    assert rc == 0, text
    out = load_output(out_path)
    rows = list(out["response"].axes["correction"])
    assert rows == ["raw", "L1L2", "PNetReg", "PNetReg+nu"]
    cut = out["cutflow"]["nano_tt_v12"]
    # NanoAOD writes 0 where the regression is not evaluated: counted, not binned
    assert cut["PNetReg_undefined"] > 0 and cut["PNetReg_jets"] == cut["jets_selected"]
    n_l1l2 = out["response"][{"correction": "L1L2"}].sum(flow=True)
    n_pnet = out["response"][{"correction": "PNetReg"}].sum(flow=True)
    assert n_pnet < n_l1l2 and n_pnet > 0.8 * n_l1l2
    # no zero-factor jet at response 0 (underflow or the first bin)
    assert out["response"][{"correction": "PNetReg"}].project("response").values(flow=True)[:2].sum() == 0
    # pT = raw pT x factor, jet by jet
    from physics.jets import raw_pt, reference_pts
    import uproot

    with uproot.open(shared_data / "cms" / "nano_tt_v12.root") as f:
        a = f["Events"].arrays(["Jet_pt", "Jet_rawFactor", "Jet_PNetRegPtRawCorr", "Jet_PNetRegPtRawCorrNeutrino"])
    jets = ak.zip({k[4:]: a[k] for k in a.fields})
    rows = reference_pts(jets, raw_pt(jets))
    pt, defined = rows["PNetReg+nu"]
    flat = ak.to_numpy(ak.flatten(pt))
    expect = ak.to_numpy(ak.flatten(raw_pt(jets) * jets.PNetRegPtRawCorr * jets.PNetRegPtRawCorrNeutrino))
    ok = ak.to_numpy(ak.flatten(defined))
    np.testing.assert_allclose(flat[ok], expect[ok], rtol=1e-6)
    assert np.isnan(flat[~ok]).all() and (~ok).sum() > 0
    from results.report import build_report, to_markdown

    md = to_markdown(build_report(out, n_boot=0))
    assert "| PNetReg |" in md and "carry no regression value" in md


def test_no_reference_rows_flag_and_files_without_pnet(shared_data, tmp_path, capsys):
    out_path = tmp_path / "tt.coffea"
    rc, text = _run_cli(["--fileset", str(shared_data / "cms" / "nano_tt_v12.root"), "--jec", JEC,
                         "--no-reference-rows", "--output", str(out_path)], capsys)
    assert rc == 0, text
    assert list(load_output(out_path)["response"].axes["correction"]) == ["raw", "L1L2"]
    # a file without the PNet columns: no rows, no error
    out_path = tmp_path / "dy.coffea"
    rc, text = _run_cli(["--fileset", str(shared_data / "cms" / "nano_dy.root"), "--jec", JEC,
                         "--output", str(out_path)], capsys)
    assert rc == 0, text
    out = load_output(out_path)
    assert list(out["response"].axes["correction"]) == ["raw", "L1L2"]
    assert not any(k.startswith("PNetReg") for k in out["cutflow"]["nano_dy"])


# --------------------------------------------------------------------------- files that cannot feed a model

def test_standard_nanoaod_with_a_model_is_one_line(shared_data, spec, tmp_path, capsys):
    rc, text = _run_cli(["--fileset", str(shared_data / "cms" / "nano_tt_v12.root"), "--model", f"DS={SHIPPED}",
                         "--output", str(tmp_path / "o.coffea")], capsys)
    assert rc == 2
    _one_line_error(text, "nano_tt_v12.root", "standard NanoAOD has no", "JetPFCands", "model 'DS'", "PFNano")


@pytest.mark.parametrize("kind, needles", [
    ("scouting", ("scouting.root", "no Jet collection", "scouting NanoAOD")),
    ("no_rawfactor", ("no_rawfactor.root", "Jet_rawFactor")),
    ("no_rho", ("no_rho.root", "rho")),
])
def test_file_that_cannot_feed_the_processor_is_one_line(bad_files, kind, needles, tmp_path, capsys):
    rc, text = _run_cli(["--fileset", str(bad_files[kind]), "--output", str(tmp_path / "o.coffea")], capsys)
    assert rc == 2
    _one_line_error(text, *needles)


def test_skip_bad_files_keeps_the_other_files_results(shared_data, bad_files, spec, tmp_path, capsys):
    """pfnano feeds everything; nano_tt_v12 loses only the model row; the broken files are listed, not fatal."""
    out_path = tmp_path / "mixed.coffea"
    files = [shared_data / "cms" / "pfnano.root", shared_data / "cms" / "nano_tt_v12.root",
             bad_files["scouting"], bad_files["no_rawfactor"], bad_files["no_rho"]]
    rc, text = _run_cli(["--fileset", *map(str, files), "--jec", JEC, "--model", f"DS={SHIPPED}",
                         "--skip-bad-files", "--output", str(out_path)], capsys)
    assert rc == 0, text
    assert "Traceback" not in text
    out = load_output(out_path)
    h = out["response"]
    assert h[{"correction": "DS"}].sum(flow=True) > 0          # from pfnano
    assert h[{"correction": "PNetReg"}].sum(flow=True) > 0     # from nano_tt_v12
    cut = out["cutflow"]
    assert cut["pfnano"]["DS_jets"] > 0 and "DS_jets" not in cut["nano_tt_v12"]
    assert cut["nano_tt_v12"]["jets_selected"] > 0
    skipped = {Path(s["file"]).name: s["reason"] for s in out["skipped"]}
    assert set(skipped) == {"nano_tt_v12.root", "scouting.root", "no_rawfactor.root", "no_rho.root"}
    assert "row 'DS' not filled" in skipped["nano_tt_v12.root"] and "PFNano" in skipped["nano_tt_v12.root"]
    assert "no Jet collection" in skipped["scouting.root"]
    assert "Jet_rawFactor" in skipped["no_rawfactor.root"]
    assert len(out["skipped"]) == 4                             # one entry per file, not per chunk
    for name in skipped:
        assert name in text                                     # listed in the summary


def test_model_on_standard_nanoaod_raises_bad_input_naming_file_and_model(shared_data, spec):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from models.correction import model_correction
    from physics.jets import raw_pt

    path = shared_data / "cms" / "nano_dy.root"
    events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager",
                                      metadata={"filename": str(path)}).events()
    with pytest.raises(BadInputError, match=r"nano_dy\.root: standard NanoAOD has no .*model 'DeepSets' needs PFNano"):
        model_correction(spec, events, events.Jet, raw_pt(events.Jet))
