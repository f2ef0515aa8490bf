"""runner.py run / plot end to end, bad input, filesets, metrics (issue 2)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import uproot

import runner
from core.errors import BadInputError
from inputs.fileset import load_fileset
from results.metrics import hist_quantiles

JEC_YAML = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "processors" / "configs" / "jec_summer22_puppi.yaml")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, shared_data):
    d = tmp_path_factory.mktemp("bad")
    good = shared_data / "cms" / "nano_dy.root"
    with uproot.recreate(d / "no_events.root") as f:
        f["Other"] = {"x": np.arange(5, dtype=np.float32)}
    raw = good.read_bytes()
    (d / "truncated.root").write_bytes(raw[: len(raw) // 2])
    (d / "not_root.root").write_text("this is not a ROOT file\n")
    return {"good": str(good), "missing": str(d / "missing.root"), "no_events": str(d / "no_events.root"),
            "truncated": str(d / "truncated.root"), "not_root": str(d / "not_root.root")}


def cli(*argv):
    return runner.main(list(argv))


@pytest.mark.parametrize("kind,words", [("missing", "does not exist"), ("no_events", "no 'Events' tree"),
                                        ("truncated", "cannot be read"), ("not_root", "cannot be read")])
def test_bad_file_is_a_one_line_error_naming_it(bad_files, kind, words, tmp_path, capsys):
    rc = cli("run", "--fileset", bad_files["good"], bad_files[kind], "--executor", "iterative",
             "--output", str(tmp_path / "o.coffea"), "--no-progress")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and bad_files[kind] in err[0] and words in err[0]
    assert not (tmp_path / "o.coffea").exists()


def test_skip_bad_files_lists_them_in_summary_and_output(bad_files, tmp_path, capsys):
    from coffea.util import load

    out_path = tmp_path / "o.coffea"
    rc = cli("run", "--fileset", bad_files["good"], bad_files["missing"], bad_files["no_events"],
             bad_files["truncated"], "--jec", str(tmp_path / "nope.yaml"), "--executor", "iterative",
             "--skip-bad-files", "--output", str(out_path), "--no-progress")
    assert rc == 0
    text = capsys.readouterr().out
    out = load(str(out_path))
    skipped = {s["file"] for s in out["skipped"]}
    assert skipped == {bad_files["missing"], bad_files["no_events"], bad_files["truncated"], str(tmp_path / "nope.yaml")}
    for f in skipped:
        assert f in text.replace("\n", "")  or f.split("/")[-1] in text
    assert out["cutflow"]["nano_dy"]["events"] == 40
    assert list(out["response"].axes["correction"]) == ["raw"]  # baseline skipped, raw still there


def test_missing_jec_file_is_a_one_line_error(bad_files, tmp_path, capsys):
    cfg = tmp_path / "jec.yaml"
    cfg.write_text("jec:\n  text_files: [does_not_exist_L1FastJet_AK4PFPuppi.jec.txt]\n")
    rc = cli("run", "--fileset", bad_files["good"], "--jec", str(cfg), "--executor", "iterative", "--no-progress",
             "--output", str(tmp_path / "o.coffea"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "does_not_exist_L1FastJet_AK4PFPuppi.jec.txt" in err[0] and "does not exist" in err[0]


def test_run_then_plot_on_dask(shared_data, tmp_path, capsys):
    from coffea.util import load

    out_path = tmp_path / "run.coffea"
    rc = cli("run", "--fileset", str(shared_data / "cms" / "nano_tt_v12.root"), str(shared_data / "cms" / "nano_dimuon.root"),
             "--jec", JEC_YAML, "--executor", "dask", "--workers", "2", "--chunksize", "100", "--output", str(out_path),
             "--no-progress")
    assert rc == 0
    text = capsys.readouterr().out
    assert "events 240" in text and "chunks" in text and "skipped: nothing" in text
    out = load(str(out_path))
    assert out["cutflow"]["nano_tt_v12"]["events"] == 200
    assert out["run_info"]["corrections"] == ["raw", "L1L2"]
    rc = cli("plot", str(out_path), "--out", str(tmp_path / "plots"))
    assert rc == 0
    pngs = sorted(p.name for p in (tmp_path / "plots" / "png").glob("*.png"))
    pdfs = sorted(p.name for p in (tmp_path / "plots" / "pdf").glob("*.pdf"))
    assert "median_eta0-1p3.png" in pngs and "resolution_eta0-1p3.png" in pngs and "flavour_L1L2_eta0-1p3.png" in pngs
    assert len(pngs) == len(pdfs) > 10


def test_fileset_json_with_relative_paths(shared_data, tmp_path):
    shutil.copy(shared_data / "cms" / "nano_dy.root", tmp_path / "dy.root")
    spec = {"DY": {"files": {"dy.root": "Events"}, "metadata": {"year": 2018}}}
    (tmp_path / "fs.json").write_text(json.dumps(spec))
    fs = load_fileset([str(tmp_path / "fs.json")])
    assert fs == {"DY": {"files": {str(tmp_path / "dy.root"): "Events"}, "metadata": {"year": 2018}}}


def test_fileset_errors(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        load_fileset([str(tmp_path / "none.json")])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BadInputError, match="not valid JSON"):
        load_fileset([str(tmp_path / "bad.json")])


def test_hist_quantiles_match_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 0.1, 200_000)
    edges = np.linspace(0, 2, 401)
    counts, _ = np.histogram(x, edges)
    q = hist_quantiles(counts, edges, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(q, np.quantile(x, [0.25, 0.5, 0.75]), atol=1e-3)
    assert np.isnan(hist_quantiles(np.zeros(10), np.linspace(0, 1, 11), [0.5])[0])


def test_report_against_baseline(shared_data, tmp_path, capsys):
    from results.metrics import flavour_medians, flavour_spread, summarize

    out_path = tmp_path / "tt.coffea"
    assert cli("run", "--fileset", str(shared_data / "cms" / "nano_tt_v12.root"), "--jec", JEC_YAML,
               "--executor", "iterative", "--output", str(out_path), "--no-progress") == 0
    assert cli("report", str(out_path), "--out", str(tmp_path / "rep"), "--bootstrap", "50") == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    from coffea.util import load

    h = load(str(out_path))["response"]
    raw = summarize(h, "raw", abs_eta=(0.0, 2.5), pt_gen=(30.0, None))
    l1l2 = summarize(h, "L1L2", abs_eta=(0.0, 2.5), pt_gen=(30.0, None))
    assert rep["pooled"]["raw"]["barrel+endcap"]["median"] == pytest.approx(raw.median)
    assert rep["pooled"]["L1L2"]["barrel+endcap"]["resolution"] == pytest.approx(l1l2.resolution)
    assert raw.median < 0.97 < l1l2.median  # Summer22 L2Relative raises the PUPPI response towards 1
    assert rep["pooled"]["L1L2"]["barrel+endcap"]["median_err"] > 0
    spread = flavour_spread(flavour_medians(h, "raw", abs_eta=(0.0, 2.5), pt_gen=(30.0, None)))
    assert rep["flavour"]["raw"]["spread"] == pytest.approx(spread)
    assert rep["comparison"]["raw"]["improvement_barrel+endcap"] == pytest.approx(1 - raw.resolution / l1l2.resolution)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| L1L2 |" in md and "improvement vs L1L2" in md


def test_gpu_resource_annotation_reaches_the_scheduler():
    from execution.executors import make_executor

    with make_executor("dask", 1, status=False, gpu_resource=True) as ex:
        fut = ex.client.submit(lambda x: x + 1, 1, pure=False)
        assert fut.result() == 2
        restrictions = ex.client.run_on_scheduler(
            lambda dask_scheduler: [ts.resource_restrictions for ts in dask_scheduler.tasks.values()])
        workers = ex.client.run_on_scheduler(
            lambda dask_scheduler: [ws.resources for ws in dask_scheduler.workers.values()])
    assert {"GPU": 1} in restrictions
    assert workers == [{"GPU": 1}]


def _summary_text(cutflow: dict, console_kwargs: dict) -> str:
    import io
    from pathlib import Path

    from rich.console import Console

    from commands.run import print_summary

    buf = io.StringIO()
    print_summary({"cutflow": cutflow}, {"chunks": 3, "processing_seconds": 1.0}, 2.0, Path("o.coffea"),
                  console=Console(file=buf, **console_kwargs))
    return buf.getvalue()


def _table_rows(text: str) -> dict[str, list[str]]:
    """The printed table's body rows: first cell -> the other cells."""
    return {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}


def test_summary_cutflow_with_many_models_is_never_cut_in_a_log_file():
    # four models add sixteen counters: as columns they were all squeezed to an ellipsis in an 80-column log
    models = ["DeepSets", "DeepSetsLite", "ParticleNetLite", "DeepSetsLiteRetrained"]
    cutflow = {ds: {"events": 1000, "jets": 24000 + i, "jets_selected": 24000 + i,
                    **{f"{m}_{c}": 10 * j + i for j, m in enumerate(models)
                       for c in ("jets", "out_of_domain", "clipped", "nonfinite")}}
               for i, ds in enumerate(["qcd_0000", "qcd_0001", "qcd_0002"])}
    text = _summary_text(cutflow, {"width": 80})
    assert "…" not in text
    rows = _table_rows(text)
    assert rows["events"] == ["1000", "1000", "1000", "3000"]
    assert rows["DeepSetsLiteRetrained_clipped"] == ["30", "31", "32", "93"]
    assert len(rows) == 3 + 16


def test_summary_cutflow_of_many_datasets_shows_their_sum():
    cutflow = {f"ds{i:02d}": {"events": 10 * i, "jets": i} for i in range(20)}
    text = _summary_text(cutflow, {"width": 80})
    rows = _table_rows(text)
    assert rows == {"events": ["1900"], "jets": ["190"]}
    assert "all 20 datasets" in text


def test_summary_title_with_a_long_output_path_stays_on_one_line():
    text = _summary_text({"qcd": {"events": 2000, "jets": 48243}}, {"width": 80})
    assert "caliber run -> o.coffea" in text
    from commands.run import cutflow_table

    long_title = "caliber run -> /tmp/fresh/main/outputs/main_job.coffea"
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=120).print(cutflow_table({"qcd": {"events": 1}}, long_title))
    assert long_title in buf.getvalue()
