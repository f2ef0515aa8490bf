"""The processor's faster paths give exactly what the plain ones give (issue 15).

Histograms counted from bins (``physics.jets.add_counts``) equal hist's own fill value by value; the
JEC tables made numpy (``physics.jec.flat_corrector``) give the same corrected pT bit for bit as the
untouched jetmet_tools stack; the flat field buffers equal ``ak.flatten``; NanoEvents built from the
processor's branches only give the same histograms as NanoEvents of every branch.
"""
from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from physics.jec import JECConfig, build_jec_stack, jec_columns, l1l2_pt_flat
from physics.jets import (ABS_ETA_EDGES, PT_GEN_EDGES, PT_RECO_EDGES, add_counts, flat_columns, flavour_category,
                          flavour_index, flow_index, reco_pt_hist, response_hist)

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _awkward_values(rng, n: int, edges) -> np.ndarray:
    """Random values around ``edges`` plus the edges themselves, their neighbours, inf and NaN."""
    edges = np.asarray(edges, dtype=np.float64)
    x = rng.uniform(edges[0] - 1.0, edges[-1] * 1.2, n)
    special = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                              [np.nan, np.inf, -np.inf, -0.0]])
    return np.concatenate([x, special])


def test_flow_index_is_the_bin_fill_uses():
    rng = np.random.default_rng(15)
    h, r = reco_pt_hist(), response_hist()
    for hh, axis, edges in ((h, "abs_eta", ABS_ETA_EDGES), (h, "pt", PT_RECO_EDGES), (r, "pt_gen", PT_GEN_EDGES),
                            (r, "response", (0.0, 2.0))):
        x = _awkward_values(rng, 5000, edges)
        expected = np.asarray(hh.axes[axis].index(x)) + 1
        assert np.array_equal(flow_index(hh, axis, x), expected), axis
    # the few-edge path puts NaN and the last edge in the overflow, as boost-histogram does
    assert flow_index(h, "abs_eta", np.array([np.nan, 5.0, -1.0]))[[0, 1, 2]].tolist() == [5, 5, 0]


def test_flavour_index_matches_the_category_names():
    r = response_hist()
    codes = np.array([0, 1, 2, 3, 4, 5, 21, 6, -5, 99, 15])
    names = flavour_category(codes)
    assert np.array_equal(flavour_index(r, codes), [r.axes["flavour"].index(n) for n in names])


def test_add_counts_equals_fill_value_by_value():
    rng = np.random.default_rng(7)
    n = 20000
    eta = rng.uniform(-5.5, 5.5, n)
    pts = {"raw": rng.exponential(40.0, n) + 5.0, "L1L2": rng.exponential(45.0, n) + 5.0,
           "empty": np.full(n, np.nan), "model": rng.exponential(45.0, n)}
    pts["raw"][::97] = np.nan
    pts["L1L2"][::89] = np.inf
    pts["model"][:3] = [PT_RECO_EDGES[0], PT_RECO_EDGES[-1], 0.0]
    code = rng.choice(np.array([0, 1, 2, 3, 4, 5, 21, -1, 7]), n)
    eta_gen, pt_gen = rng.uniform(-5.5, 5.5, n), rng.exponential(50.0, n) + 15.0
    eta_gen[:2], pt_gen[:2] = [np.nan, 5.0], [3000.0, np.nan]

    plain_reco, plain_resp = reco_pt_hist(), response_hist()
    flavour = flavour_category(code)
    for name, pt in pts.items():
        ok = np.isfinite(pt)
        plain_reco.fill(correction=name, abs_eta=np.abs(eta)[ok], pt=pt[ok])
        resp = pt / pt_gen
        ok = np.isfinite(resp)
        plain_resp.fill(correction=name, flavour=flavour[ok], abs_eta_gen=np.abs(eta_gen)[ok], pt_gen=pt_gen[ok],
                        response=resp[ok])

    reco, response = reco_pt_hist(), response_hist()
    eta_bin = flow_index(reco, "abs_eta", np.abs(eta))
    add_counts(reco, {name: {"abs_eta": eta_bin[np.isfinite(pt)], "pt": flow_index(reco, "pt", pt[np.isfinite(pt)])}
                      for name, pt in pts.items()})
    shared = {"flavour": flavour_index(response, code), "abs_eta_gen": flow_index(response, "abs_eta_gen", np.abs(eta_gen)),
              "pt_gen": flow_index(response, "pt_gen", pt_gen)}
    rows = {}
    for name, pt in pts.items():
        resp = pt / pt_gen
        ok = np.isfinite(resp)
        rows[name] = dict({k: v[ok] for k, v in shared.items()}, response=flow_index(response, "response", resp[ok]))
    add_counts(response, rows)

    for mine, plain in ((reco, plain_reco), (response, plain_resp)):
        assert list(mine.axes["correction"]) == ["raw", "L1L2", "model"]  # no entry, no row: as a fill
        assert list(mine.axes["correction"]) == list(plain.axes["correction"])
        assert np.array_equal(mine.view(flow=True), plain.view(flow=True))
        assert mine == plain
        assert mine.sum(flow=True) > 10000
    # a histogram that already has rows gets the new counts added to them
    add_counts(reco, {"L1L2": {"abs_eta": np.array([1]), "pt": np.array([3])}})
    assert reco[{"correction": "L1L2"}].values(flow=True)[1, 3] == plain_reco[{"correction": "L1L2"}].values(flow=True)[1, 3] + 1


@pytest.mark.parametrize("config", ["samples/jec/Caliber_V6_MC.yaml", "processors/configs/jec_summer22_puppi.yaml"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_jec_equals_untouched_jetmet_tools(config, dtype):
    """numpy tables, scalar clamps and float64 binning give the jetmet_tools numbers bit for bit."""
    cfg = JECConfig.from_yaml(ROOT / config)
    rng = np.random.default_rng(3)
    n = 5000
    columns = {"pt_raw": rng.exponential(40.0, n).astype(dtype) + dtype(2.0), "eta": rng.uniform(-5.4, 5.4, n).astype(dtype),
               "area": rng.normal(0.5, 0.05, n).astype(dtype), "rho": rng.uniform(0.0, 60.0, n).astype(dtype)}
    columns["pt_raw"][:3] = [1e-3, 7000.0, 10.0]
    columns["eta"][:4] = [-5.191, 5.191, 0.0, 7.0]
    assert jec_columns(cfg) <= set(columns)
    corrector = build_jec_stack(cfg).jec  # the stack as jetmet_tools built it (awkward tables)
    names = {"JetPt": "pt_raw", "JetEta": "eta", "JetA": "area", "Rho": "rho"}
    plain = np.asarray(corrector.getCorrection(**{k: columns[names[k]] for k in corrector.signature})) * columns["pt_raw"]
    fast = l1l2_pt_flat(columns, cfg)
    assert fast.dtype == plain.dtype
    assert np.array_equal(fast, plain)
    assert np.median(np.abs(fast / columns["pt_raw"] - 1)) > 0.01  # the correction does something


def test_flat_columns_equal_flatten(shared_data):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    path = shared_data / "cms" / "pfnano.root"
    for start, stop in ((0, None), (7, 40)):
        events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="virtual",
                                             entry_start=start, entry_stop=stop).events()
        fields = ("pt", "eta", "genJetIdx", "hadronFlavour", "no_such_field")
        fast = flat_columns(events.Jet, fields)
        assert set(fast) == {"pt", "eta", "genJetIdx", "hadronFlavour"}
        for f, v in fast.items():
            assert np.array_equal(v, ak.to_numpy(ak.flatten(events.Jet[f])))
        sliced = events.Jet[events.Jet.pt > 30]  # not a plain record content: the flatten path
        assert np.array_equal(flat_columns(sliced, ("pt",))["pt"], ak.to_numpy(ak.flatten(sliced.pt)))


def test_branch_filter_and_memory_map_change_no_histogram(shared_data):
    from execution.runner import read_options, run_processor
    from processors.jets import JetResponseProcessor

    class EveryBranch(JetResponseProcessor):
        def branch_patterns(self):
            return ["*"]

    files = {str(shared_data / "cms" / n): "Events" for n in ("nano_tt_v12.root", "pfnano.root")}
    fileset = {"mc": {"files": files, "metadata": {}}}
    jec = JECConfig.from_yaml(ROOT / "processors/configs/jec_summer22_puppi.yaml")
    options = read_options(fileset, JetResponseProcessor(jec=jec))
    assert "Jet_*" in options["iteritems_options"]["filter_name"]
    assert options["uproot_options"]["handler"].__name__ == "MemmapSource"
    assert "uproot_options" not in read_options({"d": {"files": {"root://host//f.root": "Events"}}}, object())
    a = run_processor(fileset, JetResponseProcessor(jec=jec), executor="iterative", status=False, chunksize=80)
    b = run_processor(fileset, EveryBranch(jec=jec), executor="iterative", status=False, chunksize=80)
    assert a["response"].sum(flow=True) > 100
    for key in ("response", "reco_pt"):
        assert a[key] == b[key]
    assert a["cutflow"] == b["cutflow"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_outside_equals_any_along_rows(dtype):
    from models.domain import _float32_bounds, _rows_outside

    rng = np.random.default_rng(11)
    values = rng.normal(size=(3000, 7)).astype(dtype)
    values[5, 2], values[9, 0], values[11, 6] = np.nan, np.inf, -np.inf
    lo, hi = np.full(7, -3.0), np.full(7, 3.0)
    lo[3], hi[4] = -np.inf, np.inf
    blo, bhi = _float32_bounds(lo, hi) if dtype == np.float32 else (lo, hi)
    expected = np.any((values < blo) | (values > bhi), axis=1)
    assert 5 < expected.sum() < 100
    assert np.array_equal(_rows_outside(values, lo, hi), expected)
    assert not _rows_outside(np.zeros((0, 7), dtype), lo, hi).size


def test_iterative_run_without_status_prints_nothing_and_sums_like_with_it(shared_data, capfd):
    from execution.runner import run_processor
    from processors.jets import JetResponseProcessor

    fileset = {"tt": {"files": {str(shared_data / "cms" / "nano_tt_v12.root"): "Events"}, "metadata": {}}}
    quiet = run_processor(fileset, JetResponseProcessor(), executor="iterative", status=False, chunksize=70)
    assert capfd.readouterr().out.strip() == ""  # coffea's rich display is not started at all
    loud = run_processor(fileset, JetResponseProcessor(), executor="iterative", status=True, chunksize=70)
    assert quiet["cutflow"]["tt"]["events"] > 70  # several chunks accumulated
    assert quiet["cutflow"] == loud["cutflow"] and quiet["reco_pt"] == loud["reco_pt"]


def test_take_rows_equals_fancy_indexing():
    from models.data import take_rows

    rng = np.random.default_rng(5)
    content = rng.normal(size=(500, 23)).astype(np.float32)
    content[3, 4] = np.nan
    index = rng.integers(0, 500, 800)
    for c in (content, content[:, ::2], np.asfortranarray(content)):  # contiguous or not
        got = take_rows(c, index)
        assert got.dtype == c.dtype and got.shape == (800, c.shape[1])
        assert np.array_equal(got, c[index], equal_nan=True)
    assert take_rows(content, index[:0]).shape == (0, 23)
