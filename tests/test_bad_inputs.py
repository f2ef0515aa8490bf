"""Bad input: every kind gives one clear line naming the problem (or a listed skip), never a traceback (issue 13)."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import uproot

import runner

ROOT = Path(__file__).resolve().parents[1]
JEC_TEXT = ROOT / "processors" / "configs" / "jec_summer22_puppi.yaml"
JEC_CLIB = ROOT / "processors" / "configs" / "jec_summer22_puppi_correctionlib.yaml"


def corrupt_basket(src: Path, dst: Path, branch: str = "Jet_pt") -> Path:
    """A copy of ``src`` whose first basket of ``branch`` is overwritten: it passes the pre-check
    (which reads the last basket of the first branch) and fails only while the chunk is processed."""
    shutil.copy(src, dst)
    b = uproot.open(src)["Events"][branch]
    seek = int(b.member("fBasketSeek")[0])
    with open(dst, "r+b") as f:
        f.seek(seek + 120)
        f.write(b"\xde\xad\xbe\xef" * 64)
    return dst


@pytest.fixture(scope="module")
def bad(tmp_path_factory, shared_data) -> dict:
    """Every bad input, made once."""
    d = tmp_path_factory.mktemp("bad_inputs")
    good = shared_data / "cms" / "nano_dy.root"
    p = {"good": str(good), "good2": str(shared_data / "cms" / "nano_tt_v12.root"), "dir": d}
    (d / "list.json").write_text(json.dumps([str(good)]))
    (d / "broken.json").write_text("{\"a\": ")
    (d / "tree_number.json").write_text(json.dumps({"dy": {"files": {str(good): 5}}}))
    (d / "tree_runs.json").write_text(json.dumps({"dy": {"files": {str(good): "Runs"}}}))
    (d / "not_root.root").write_text("not ROOT\n")
    raw = good.read_bytes()
    (d / "truncated.root").write_bytes(raw[: len(raw) // 2])
    with uproot.recreate(d / "no_events.root") as f:
        f["Other"] = {"x": np.arange(5, dtype=np.float32)}
    corrupt_basket(good, d / "corrupt_basket.root")
    (d / "a_file").write_text("x")
    # JEC: text files of garbage, a gz of garbage, a correctionlib file asked for another era
    (d / "garbage_L1FastJet_AK4PFPuppi.jec.txt").write_text("{1 JetEta this is not a JEC table\n1 2 3\n")
    (d / "garbage_L2Relative_AK4PFPuppi.jec.txt.gz").write_bytes(b"\x1f\x8b not gzip at all")
    (d / "jec_text.yaml").write_text(f"jec:\n  name: L1L2\n  text_files:\n    - {d}/garbage_L1FastJet_AK4PFPuppi.jec.txt\n")
    (d / "jec_gz.yaml").write_text(f"jec:\n  name: L1L2\n  text_files:\n    - {d}/garbage_L2Relative_AK4PFPuppi.jec.txt.gz\n")
    clib = (ROOT.parent / "shared" / "data" / "jec" / "jet_jerc_Summer22_V3.json.gz").resolve()
    (d / "jec_era.yaml").write_text(f"jec:\n  name: L1L2\n  correctionlib: {clib}\n  era: Summer16_23Sep2016V3_MC\n"
                                    "  algorithm: AK4PFPuppi\n  levels: [L1FastJet, L2Relative]\n")
    (d / "random.keras").write_bytes(os.urandom(4096))
    with zipfile.ZipFile(d / "notmodel.keras", "w") as z:
        z.writestr("hello.txt", "not a model")
    from coffea.util import save

    save({"response": [1, 2, 3], "reco_pt": "text"}, str(d / "wrong_types.coffea"))
    (d / "not_coffea.coffea").write_bytes(b"garbage")
    return p


def cli_line(capsys, *argv) -> tuple[int, str]:
    """Run the command line; return (exit code, stderr) and check that stderr is one line."""
    rc = runner.main([str(a) for a in argv])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert len(err.splitlines()) == 1, err
    return rc, err


RUN = ("run", "--executor", "iterative", "--no-progress")

#: (id, argv builder, words the one line must contain)
CASES = [
    ("chunksize-zero", lambda p: [*RUN, "--fileset", p["good"], "--chunksize", "0"], "--chunksize must be at least 1"),
    ("chunksize-negative", lambda p: [*RUN, "--fileset", p["good"], "--chunksize", "-5"], "got -5"),
    ("max-chunks-zero", lambda p: [*RUN, "--fileset", p["good"], "--max-chunks", "0"], "--max-chunks must be"),
    ("workers-zero", lambda p: [*RUN, "--fileset", p["good"], "--workers", "0"], "--workers must be at least 1"),
    ("fileset-list", lambda p: [*RUN, "--fileset", p["dir"] / "list.json"], "got list"),
    ("fileset-broken-json", lambda p: [*RUN, "--fileset", p["dir"] / "broken.json"], "not valid JSON"),
    ("fileset-missing-json", lambda p: [*RUN, "--fileset", p["dir"] / "nope.json"], "does not exist"),
    ("tree-name-not-string", lambda p: [*RUN, "--fileset", p["dir"] / "tree_number.json"], "tree name string"),
    ("tree-name-wrong-tree", lambda p: [*RUN, "--fileset", p["dir"] / "tree_runs.json", "--output",
                                        p["dir"] / "tr.coffea"], "entries 0-"),
    ("file-missing", lambda p: [*RUN, "--fileset", p["dir"] / "missing.root"], "does not exist"),
    ("file-not-root", lambda p: [*RUN, "--fileset", p["dir"] / "not_root.root"], "cannot be read"),
    ("file-truncated", lambda p: [*RUN, "--fileset", p["dir"] / "truncated.root"], "cannot be read"),
    ("file-no-events-tree", lambda p: [*RUN, "--fileset", p["dir"] / "no_events.root"], "no 'Events' tree"),
    ("corrupt-basket", lambda p: [*RUN, "--fileset", p["dir"] / "corrupt_basket.root", "--output",
                                  p["dir"] / "cb.coffea"], "entries 0-40"),
    ("output-under-file", lambda p: [*RUN, "--fileset", p["good"], "--output", p["dir"] / "a_file" / "o.coffea"],
     "not writable"),
    ("output-in-proc", lambda p: [*RUN, "--fileset", p["good"], "--output", "/proc/caliber/o.coffea"], "not writable"),
    ("output-is-dir", lambda p: [*RUN, "--fileset", p["good"], "--output", p["dir"]], "is a directory"),
    ("jec-missing", lambda p: [*RUN, "--fileset", p["good"], "--jec", p["dir"] / "nope.yaml"], "does not exist"),
    ("jec-corrupt-text", lambda p: [*RUN, "--fileset", p["good"], "--jec", p["dir"] / "jec_text.yaml",
                                    "--output", p["dir"] / "j1.coffea"], "garbage_L1FastJet"),
    ("jec-corrupt-gz", lambda p: [*RUN, "--fileset", p["good"], "--jec", p["dir"] / "jec_gz.yaml",
                                  "--output", p["dir"] / "j2.coffea"], "garbage_L2Relative"),
    ("jec-other-era", lambda p: [*RUN, "--fileset", p["good"], "--jec", p["dir"] / "jec_era.yaml",
                                 "--output", p["dir"] / "j3.coffea"], "Summer16"),
    ("model-random-bytes", lambda p: [*RUN, "--fileset", p["good"], "--model", p["dir"] / "random.keras",
                                      "--output", p["dir"] / "m1.coffea"], "random.keras"),
    ("model-zip-not-model", lambda p: [*RUN, "--fileset", p["good"], "--model", p["dir"] / "notmodel.keras",
                                       "--output", p["dir"] / "m2.coffea"], "notmodel.keras"),
    ("model-missing", lambda p: [*RUN, "--fileset", p["good"], "--model", p["dir"] / "none.keras",
                                 "--output", p["dir"] / "m3.coffea"], "does not exist"),
    ("collect-fractions", lambda p: ["collect", "--fileset", p["good"], "--out", p["dir"] / "shards",
                                     "--split-fractions", "0.5", "0.3", "0.1"], "sum to 1"),
    ("collect-chunksize", lambda p: ["collect", "--fileset", p["good"], "--out", p["dir"] / "shards",
                                     "--chunksize", "0"], "--chunksize"),
    ("train-epochs-zero", lambda p: ["train", "--shards", p["dir"], "--out", p["dir"] / "m.keras", "--epochs", "0"],
     "--epochs must be at least 1"),
    ("train-batch-zero", lambda p: ["train", "--shards", p["dir"], "--out", p["dir"] / "m.keras",
                                    "--batch-size", "0"], "--batch-size must be at least 1"),
    ("generate-pileup-huge", lambda p: ["generate", "--out", p["dir"] / "gen", "--pileup", "1e6"], "--pileup"),
    ("generate-pileup-negative", lambda p: ["generate", "--out", p["dir"] / "gen", "--pileup", "-1"], "--pileup"),
    ("generate-events-zero", lambda p: ["generate", "--out", p["dir"] / "gen", "--events", "0"], "--events"),
    ("plot-wrong-types", lambda p: ["plot", p["dir"] / "wrong_types.coffea"], "not a caliber histogram"),
    ("plot-not-coffea", lambda p: ["plot", p["dir"] / "not_coffea.coffea"], "not a caliber output file"),
]


@pytest.mark.parametrize("case,build,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(bad, case, build, words, capsys):
    rc, err = cli_line(capsys, *build(bad))
    assert rc == 2
    assert words in err, err


def test_output_locked_by_a_running_run_is_refused(bad, capsys):
    out = bad["dir"] / "locked.coffea"
    Path(str(out) + ".lock").write_text(str(os.getpid()))  # this (living) process holds it
    try:
        rc, err = cli_line(capsys, *RUN, "--fileset", bad["good"], "--output", out)
    finally:
        Path(str(out) + ".lock").unlink()
    assert rc == 2 and "another run" in err and not out.exists()


def test_stale_lock_of_a_dead_run_is_taken_over(bad, capsys):
    out = bad["dir"] / "stale.coffea"
    Path(str(out) + ".lock").write_text("999999999")
    rc = runner.main([*RUN, "--fileset", bad["good"], "--output", str(out)])
    assert rc == 0 and out.exists() and not Path(str(out) + ".lock").exists()


def test_duplicate_file_is_counted_once_with_a_warning(bad, capsys):
    from coffea.util import load

    out = bad["dir"] / "dup.coffea"
    rc = runner.main([*RUN, "--fileset", bad["good"], bad["good"], "--output", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "duplicate" in text
    o = load(str(out))
    assert sum(c["events"] for c in o["cutflow"].values()) == 40
    assert o["accounting"] == {"nano_dy": {"events_in_fileset": 40, "events_processed": 40, "events_skipped": 0}}
    assert [s["reason"].split(" ")[0] for s in o["skipped"]] == ["duplicate"]


def test_nonfinite_pt_is_excluded_and_counted():
    import awkward as ak

    from physics.jets import count_false, finite_pt

    pt = ak.Array([[30.0, np.nan, 45.0], [], [np.inf, -np.inf, 12.0]])
    mask = finite_pt(pt)
    assert ak.to_list(pt[mask]) == [[30.0, 45.0], [], [12.0]]
    assert count_false(mask) == 3


def test_corrupt_basket_skipped_keeps_the_good_file_exactly(bad, tmp_path, capsys):
    """One corrupt-basket file + one good file under --skip-bad-files = the good file's histograms."""
    from coffea.util import load

    both, alone = tmp_path / "both.coffea", tmp_path / "alone.coffea"
    rc = runner.main([*RUN, "--fileset", str(bad["dir"] / "corrupt_basket.root"), bad["good2"], "--jec",
                      str(JEC_TEXT), "--chunksize", "60", "--skip-bad-files", "--output", str(both)])
    text = capsys.readouterr().out
    assert rc == 0 and "skipped chunk" in text and "corrupt_basket.root" in text
    assert runner.main([*RUN, "--fileset", bad["good2"], "--jec", str(JEC_TEXT), "--chunksize", "60",
                        "--output", str(alone)]) == 0
    a, b = load(str(both)), load(str(alone))
    for name in ("response", "reco_pt"):
        assert np.array_equal(a[name].values(flow=True), b[name].values(flow=True))
        assert a[name].sum(flow=True) > 0
    assert a["cutflow"]["nano_tt_v12"] == b["cutflow"]["nano_tt_v12"] and "corrupt_basket" not in a["cutflow"]
    [chunk] = a["skipped_chunks"]
    assert (chunk["file"], chunk["entrystart"], chunk["entrystop"]) == (str(bad["dir"] / "corrupt_basket.root"), 0, 40)
    assert "decompress" in chunk["reason"]
    assert a["accounting"]["corrupt_basket"] == {"events_in_fileset": 40, "events_processed": 0, "events_skipped": 40}
    acc = a["accounting"]["nano_tt_v12"]
    assert acc["events_in_fileset"] == acc["events_processed"] + acc["events_skipped"] == 200
