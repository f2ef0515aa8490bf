"""``runner.py collect``: shards, manifest, split and weights, end to end on the real PFNano file."""
from __future__ import annotations

import json
import math
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

import runner
from commands.collect import collect
from inputs.shards import MANIFEST, event_split, flat_histogram, flat_weight_table, flat_weights, norm_from_sums, shard_name
from core.errors import BadInputError
from inputs.fileset import load_fileset
from physics.features import FEATURE_NAMES, jet_features


@pytest.fixture(scope="session")
def collected(shared_data, tmp_path_factory):
    """pfnano.root collected with the iterative executor in chunks of 4 events."""
    out = tmp_path_factory.mktemp("collect") / "shards"
    path = shared_data / "cms" / "pfnano.root"
    rc = runner.main(["collect", "--fileset", str(path), "--out", str(out), "--executor", "iterative",
                      "--chunksize", "4", "--no-progress"])
    assert rc == 0
    manifest = json.loads((out / MANIFEST).read_text())
    records = ak.concatenate([ak.from_parquet(out / name) for name in manifest["shards"]])
    return path, out, manifest, records


def matched_jets_by_hand(path, min_pt_raw=15.0, max_abs_eta=4.7, max_dr=0.2) -> int:
    """Gen-matched jets passing the cuts, counted with uproot + awkward only."""
    with uproot.open(path) as f:
        a = f["Events"].arrays(["Jet_pt", "Jet_rawFactor", "Jet_eta", "Jet_phi", "Jet_genJetIdx",
                                "GenJet_eta", "GenJet_phi"], library="ak")
    n = 0
    for ev in ak.to_list(a):
        for pt, rf, eta, phi, gi in zip(ev["Jet_pt"], ev["Jet_rawFactor"], ev["Jet_eta"], ev["Jet_phi"],
                                        ev["Jet_genJetIdx"]):
            if (1 - rf) * pt <= min_pt_raw or abs(eta) >= max_abs_eta or not 0 <= gi < len(ev["GenJet_eta"]):
                continue
            dphi = (phi - ev["GenJet_phi"][gi] + math.pi) % (2 * math.pi) - math.pi
            if math.hypot(eta - ev["GenJet_eta"][gi], dphi) < max_dr:
                n += 1
    return n


def test_record_count_equals_matched_jets(collected):
    path, out, manifest, records = collected
    expected = matched_jets_by_hand(path)
    assert expected > 20
    assert len(records) == expected
    assert sum(manifest["n_jets"].values()) == expected
    assert manifest["n_jets"]["train"] == int(np.sum(records.split == 0))
    # one shard per chunk (coffea makes chunks of about 4 events), named after dataset and entry range;
    # the entry ranges tile the file's 10 events
    assert len(manifest["shards"]) >= 2
    assert all((out / name).exists() for name in manifest["shards"])
    assert all(name.startswith("pfnano__pfnano-") for name in manifest["shards"])
    ranges = sorted(tuple(int(x) for x in name.removesuffix(".parquet").rsplit("__", 1)[1].split("-"))
                    for name in manifest["shards"])
    assert ranges[0][0] == 0 and ranges[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_manifest_content(collected):
    _, _, manifest, records = collected
    assert manifest["version"] == 1
    assert manifest["target"] == "log(pt_gen/pt_raw)"
    assert manifest["features"] == FEATURE_NAMES
    assert manifest["split"]["fractions"] == [0.6, 0.2, 0.2]
    train = records[records.split == 0]
    for coll, names in FEATURE_NAMES.items():
        norm = manifest["norm"][coll]
        assert len(norm["mean"]) == len(norm["std"]) == len(names)
        assert min(norm["std"]) >= 1e-6
        values = ak.to_numpy(train[coll] if coll == "globals" else ak.flatten(train[coll], axis=1)).astype(np.float64)
        np.testing.assert_allclose(norm["mean"], values.mean(axis=0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(norm["std"], np.maximum(values.std(axis=0), 1e-6), rtol=1e-4, atol=1e-6)
    for coll in ("charged", "neutral", "sv"):
        assert manifest["max_constituents"][coll] == int(ak.max(ak.num(records[coll], axis=1)))


def test_shard_values(collected):
    path, _, _, records = collected
    np.testing.assert_allclose(ak.to_numpy(records.target),
                               np.log(ak.to_numpy(records.pt_gen) / ak.to_numpy(records.pt_raw)), rtol=1e-5)
    assert np.all(ak.to_numpy(records.pt_raw) > 15) and np.all(np.abs(ak.to_numpy(records.eta)) < 4.7)
    assert set(np.unique(ak.to_numpy(records.flavour))) <= {0, 1, 2, 3, 4, 5, 21}
    for field, dtype in (("target", np.float32), ("weight_flat", np.float32), ("weight_natural", np.float32),
                         ("split", np.int8), ("event", np.int64), ("run", np.int64), ("luminosityBlock", np.int64)):
        assert ak.to_numpy(records[field]).dtype == dtype, field
    # split from the event hash; every jet of an event in the same split
    split = ak.to_numpy(records.split)
    np.testing.assert_array_equal(split, event_split(ak.to_numpy(records.run), ak.to_numpy(records.luminosityBlock),
                                                     ak.to_numpy(records.event)))
    by_event = {}
    for e, s in zip(ak.to_numpy(records.event), split):
        by_event.setdefault(int(e), set()).add(int(s))
    assert all(len(s) == 1 for s in by_event.values())
    # flat weights: mean 1 over all jets, natural = genWeight
    assert np.mean(ak.to_numpy(records.weight_flat)) == pytest.approx(1.0, rel=1e-5)
    with uproot.open(path) as f:
        gen_weight = dict(zip(f["Events"]["event"].array(library="np").astype(np.int64),
                              f["Events"]["genWeight"].array(library="np")))
    np.testing.assert_allclose(ak.to_numpy(records.weight_natural),
                               [gen_weight[int(e)] for e in ak.to_numpy(records.event)])


def test_parquet_round_trip_equals_features(collected):
    """The shards hold exactly what jet_features computes for the selected jets."""
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from processors.collect import CollectProcessor

    path, _, _, records = collected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=PFNanoAODSchema,
                                             mode="virtual").events()
    jets, _, _ = CollectProcessor("unused").select(events)
    feats = jet_features(events, jets)
    for coll in FEATURE_NAMES:
        assert ak.to_list(records[coll]) == ak.to_list(feats[coll]), coll
    assert str(records.charged.type.content) == f"var * {len(FEATURE_NAMES['charged'])} * float32"


def test_split_fractions_and_hash_independent_of_order():
    rng = np.random.default_rng(7)
    n = 200_000
    run = rng.integers(1, 400_000, n)
    lumi = rng.integers(1, 3000, n)
    event = np.arange(1, n + 1, dtype=np.uint64) * 7919 + 12345
    split = event_split(run, lumi, event)
    fractions = np.bincount(split, minlength=3) / n
    np.testing.assert_allclose(fractions, [0.6, 0.2, 0.2], atol=0.005)
    perm = rng.permutation(n)
    np.testing.assert_array_equal(event_split(run[perm], lumi[perm], event[perm]), split[perm])
    # consecutive events of one run and lumi section are spread over the splits (not file order)
    consecutive = event_split(np.full(1000, 1), np.full(1000, 1), np.arange(1000))
    np.testing.assert_allclose(np.bincount(consecutive, minlength=3) / 1000, [0.6, 0.2, 0.2], atol=0.05)
    assert np.bincount(event_split(run, lumi, event, (0.8, 0.1, 0.1)), minlength=3)[0] / n == pytest.approx(0.8, abs=0.005)


def test_flat_weights_flatten_the_spectrum():
    rng = np.random.default_rng(3)
    pt = 20 * rng.pareto(2.0, 100_000) + 20  # steeply falling
    abs_eta = np.abs(rng.normal(0, 1.5, 100_000))
    h = flat_histogram(pt, abs_eta)
    table = flat_weight_table(h, min_count=10)
    w = flat_weights(pt, abs_eta, table)
    assert np.mean(w) == pytest.approx(1.0, rel=1e-6)
    weighted = flat_histogram(pt, abs_eta).astype(float) * table
    well_filled = h >= 10
    # weighted counts equal in every bin with at least min_count jets
    np.testing.assert_allclose(weighted[well_filled], weighted[well_filled][0], rtol=1e-9)
    assert np.all(weighted[(h > 0) & ~well_filled] < weighted[well_filled][0])


def test_norm_and_shard_name_helpers():
    mean, std = norm_from_sums(np.array([6.0, 3.0]), np.array([14.0, 3.0]), 3)
    np.testing.assert_allclose(mean, [2.0, 1.0])
    np.testing.assert_allclose(std, [math.sqrt(14 / 3 - 4), 1e-6])
    assert shard_name("QCD/Pt-15", "/data/a b.root", 0, 100) == shard_name("QCD/Pt-15", "/data/a b.root", 0, 100)
    assert shard_name("QCD/Pt-15", "/data/a.root", 0, 100) != shard_name("QCD/Pt-15", "/other/a.root", 0, 100)
    assert "/" not in shard_name("QCD/Pt-15", "/data/a.root", 0, 100)


def test_empty_fileset_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(BadInputError, match="empty fileset"):
        collect(load_fileset([str(empty)]), tmp_path / "out")
    rc = runner.main(["collect", "--fileset", str(empty), "--out", str(tmp_path / "out"), "--executor", "iterative"])
    assert rc == 2
    assert "empty.json: empty fileset" in capsys.readouterr().err


def test_missing_branch_names_file_and_branch(shared_data, tmp_path):
    path = shared_data / "cms" / "nano_dy.root"
    with pytest.raises(BadInputError, match=r"nano_dy\.root: missing branch PFCands_pt"):
        collect(load_fileset([str(path)]), tmp_path / "out")


def test_missing_branch_inside_a_chunk_is_reported(shared_data, tmp_path):
    """Without the up-front check the processor itself names the file and branch."""
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    from execution.runner import bad_input_in as _bad_input_in
    from processors.collect import CollectProcessor

    path = shared_data / "cms" / "nano_dy.root"
    run = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            run({"dy": {"files": {str(path): "Events"}}}, CollectProcessor(str(tmp_path)), treename="Events")
    bad = _bad_input_in(info.value)
    assert bad is not None and "nano_dy.root" in str(bad) and "PFCands_pt" in str(bad)


def test_existing_collection_needs_overwrite(collected, capsys):
    path, out, manifest, _ = collected
    rc = runner.main(["collect", "--fileset", str(path), "--out", str(out), "--executor", "iterative", "--no-progress"])
    assert rc == 2
    assert "already holds a collection" in capsys.readouterr().err
    assert json.loads((out / MANIFEST).read_text()) == manifest


def test_mljec_files_give_the_same_shard_format(shared_data, collected, tmp_path):
    from commands.collect import collect_mljec
    from physics.features import read_mljec

    paths = [str(shared_data / "mljec" / "shard1.root"), str(shared_data / "mljec" / "shard2.root")]
    manifest = collect_mljec(paths, tmp_path / "mljec", min_pt_raw=15.0)
    records = ak.concatenate([ak.from_parquet(tmp_path / "mljec" / name) for name in manifest["shards"]])
    _, _, pf_manifest, pf_records = collected
    assert records.fields == pf_records.fields
    assert manifest["features"] == pf_manifest["features"]
    expected = []
    for path in sorted(paths):
        feats, info = read_mljec(path)
        keep = (info["pt_raw"] > 15.0) & (np.abs(info["eta"]) < 4.7)
        expected.append((feats, info, keep))
    assert len(records) == sum(int(k.sum()) for _, _, k in expected)
    first = expected[0]
    n0 = int(first[2].sum())
    assert ak.to_list(records.charged[:n0]) == ak.to_list(first[0]["charged"][first[2]])
    np.testing.assert_allclose(ak.to_numpy(records.target[:n0]),
                               np.log(first[1]["pt_gen"][first[2]] / first[1]["pt_raw"][first[2]]), rtol=1e-5)
