"""The pre-check in worker processes gives what the serial one gives; ``bench preflight``'s slices are valid files."""
from __future__ import annotations

import numpy as np
import pytest


def _write_tiny(path, n_events=12, seed=0):
    from samples.writer import write_events

    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n_events)
    n = int(counts.sum())
    write_events(path, {"event": np.arange(n_events, dtype=np.int64), "fixedGridRhoFastjetAll": rng.random(n_events)},
                 {"Jet": {"counts": counts, "pt": rng.random(n).astype(np.float32),
                          "eta": rng.random(n).astype(np.float32)}})
    return str(path)


def test_check_fileset_in_processes_equals_serial(tmp_path):
    from core.errors import BadInputError
    from inputs.fileset import check_fileset, preflight_processes

    files = [_write_tiny(tmp_path / f"f{i}.root", seed=i) for i in range(20)]
    (tmp_path / "not_root.root").write_text("not a ROOT file")
    files.insert(7, str(tmp_path / "not_root.root"))
    files.append(str(tmp_path / "missing.root"))
    fileset = {"a": {"files": {f: "Events" for f in files[:12]}, "metadata": {"x": 1}},
               "b": {"files": {f: "Events" for f in files[12:]}, "metadata": {}}}
    serial = check_fileset(fileset, True, threads=1, processes=1)
    procs = check_fileset(fileset, True, processes=2)
    assert procs.fileset == serial.fileset and procs.skipped == serial.skipped and procs.branches == serial.branches
    assert len(serial.skipped) == 2 and set(serial.branches[files[0]]) >= {"event", "nJet", "Jet_pt"}
    with pytest.raises(BadInputError, match="not_root.root"):
        check_fileset(fileset, False, processes=2)
    assert preflight_processes(3) == 1 and preflight_processes(200, processes=4) == 4 and preflight_processes(1) == 1


def test_bench_preflight_slices_are_small_valid_copies(tmp_path):
    import uproot

    from bench.preflight import write_slices

    source = _write_tiny(tmp_path / "source.root", n_events=30)
    out = tmp_path / "slices"
    out.mkdir()
    paths = write_slices(source, 8, 5, out)
    assert len(set(paths)) == 8
    with uproot.open(source) as f:
        whole = f["Events"].arrays(library="np")
    for i, p in enumerate(paths):
        with uproot.open(p) as f:
            t = f["Events"]
            assert t.num_entries == 5
            part = t.arrays(library="np")
        start = (i * 5) % 26
        np.testing.assert_array_equal(part["event"], whole["event"][start:start + 5])
        np.testing.assert_array_equal(part["nJet"], whole["nJet"][start:start + 5])
        np.testing.assert_array_equal(np.concatenate(list(part["Jet_pt"])),
                                      np.concatenate(list(whole["Jet_pt"][start:start + 5])))


def test_coffea_preprocessing_reuses_the_check_and_not_a_changed_file(tmp_path):
    import os

    from bench.preflight import coffea_preprocess
    from execution.runner import prefill_metadata, with_tree_names
    from inputs.fileset import check_fileset, known_file_metadata

    files = [_write_tiny(tmp_path / f"g{i}.root", n_events=10 + i, seed=i) for i in range(3)]
    fileset = {"d": {"files": {f: "Events" for f in files}, "metadata": {"year": 2024}}}
    checked = check_fileset(fileset, False, processes=1)
    facts = known_file_metadata(files[1], "Events")
    assert facts["numentries"] == 11 and facts["uuid"] is not None
    cache = {}
    assert prefill_metadata(cache, with_tree_names(checked.fileset, "Events")) == 3
    assert all(v["year"] == 2024 and "numentries" in v for v in cache.values())
    assert coffea_preprocess(checked.fileset, True) == coffea_preprocess(checked.fileset, False) == 3
    _write_tiny(files[1], n_events=7, seed=9)  # rewritten after the check: its facts are stale
    os.utime(files[1], ns=(1, 1))
    assert known_file_metadata(files[1], "Events") is None
    assert prefill_metadata({}, with_tree_names(checked.fileset, "Events")) == 2


def test_merged_file_holds_the_inputs_events_in_order(tmp_path):
    import awkward as ak
    import uproot

    from samples.writer import merge_files

    inputs = [_write_tiny(tmp_path / f"part{i}.root", n_events=7 + i, seed=10 + i) for i in range(3)]
    out = tmp_path / "merged.root"
    assert merge_files(out, inputs) == 7 + 8 + 9
    with uproot.open(out) as f:
        merged = f["Events"].arrays()
        assert set(f["Events"].keys()) == {"event", "fixedGridRhoFastjetAll", "nJet", "Jet_pt", "Jet_eta"}
    parts = ak.concatenate([uproot.open(p)["Events"].arrays() for p in inputs])
    for field in ("event", "fixedGridRhoFastjetAll", "nJet", "Jet_pt", "Jet_eta"):
        assert ak.all(ak.flatten(merged[field], axis=None) == ak.flatten(parts[field], axis=None))
    assert ak.all(ak.num(merged["Jet_pt"]) == merged["nJet"])
