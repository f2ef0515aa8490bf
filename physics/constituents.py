"""Grouping of jet constituents through NanoAOD association tables (JetPFCands, JetSVs).

Pure numpy/awkward helpers of ``physics.features.jet_features``: flat indices of each jet's
PF candidates or secondary vertices, jet after jet, whatever the storage order of the table.
"""
from __future__ import annotations

import awkward as ak
import numpy as np


def _flat(x) -> np.ndarray:
    return ak.to_numpy(ak.flatten(x, axis=None))


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def selected_jet_index(events, jets) -> np.ndarray:
    """Index (within its event's ``events.Jet``) of each jet of ``jets``, flat in ak.flatten order.

    Jets are identified by their exact (eta, phi), which corrections never change.
    """
    if len(jets) != len(events):
        raise ValueError(f"jets ({len(jets)} events) and events ({len(events)}) are not aligned")
    all_jets = ak.zip({"eta": events.Jet.eta, "phi": events.Jet.phi, "idx": ak.local_index(events.Jet.eta)},
                      with_name=None)
    sel = ak.zip({"eta": jets.eta, "phi": jets.phi}, with_name=None)
    pairs = ak.cartesian({"s": sel, "a": all_jets}, axis=1, nested=True)
    same = (pairs.s.eta == pairs.a.eta) & (pairs.s.phi == pairs.a.phi)
    idx = ak.firsts(pairs.a.idx[same], axis=2)
    flat = ak.flatten(idx)
    if ak.any(ak.is_none(flat)):
        raise ValueError("some selected jets are not in events.Jet (jets must be a selection of events.Jet)")
    return ak.to_numpy(flat).astype(np.int64)


def _group(jet_global: np.ndarray, keep: np.ndarray, n_jets_total: int, wanted: np.ndarray):
    """For association rows with global jet index ``jet_global`` (rows with ``keep``),
    the row indices of the ``wanted`` global jets, jet after jet, and their counts."""
    rows = np.nonzero(keep)[0]
    g = jet_global[rows]
    order = np.argsort(g, kind="stable")
    rows, g = rows[order], g[order]
    counts_all = np.bincount(g, minlength=n_jets_total)
    starts_all = _offsets(counts_all)[:-1]
    counts = counts_all[wanted]
    starts = starts_all[wanted]
    # concatenated ranges [start, start + count) per wanted jet
    within = np.arange(int(counts.sum())) - np.repeat(_offsets(counts)[:-1], counts)
    take = np.repeat(starts, counts) + within
    return rows[take], counts


def _associated(targets, assoc, target_field: str, n_jets_event: np.ndarray,
                wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices into ``targets`` (PFCands, SV) of each wanted jet's entries in the association
    table ``assoc`` (JetPFCands, JetSVs: ``jetIdx`` + ``target_field``), and their counts per jet.

    Rows pointing outside the event's jets or targets are dropped; ``wanted`` are global jet indices.
    """
    jet_off = _offsets(n_jets_event)
    target_off = _offsets(ak.to_numpy(ak.num(targets)))
    a_counts = ak.to_numpy(ak.num(assoc))
    a_event = np.repeat(np.arange(len(a_counts)), a_counts)
    a_jet, a_target = _flat(assoc.jetIdx).astype(np.int64), _flat(assoc[target_field]).astype(np.int64)
    ok = ((a_jet >= 0) & (a_jet < n_jets_event[a_event]) & (a_target >= 0)
          & (a_target < np.diff(target_off)[a_event]))
    jet_global = np.where(ok, jet_off[a_event] + a_jet, 0)
    rows, counts = _group(jet_global, ok, int(jet_off[-1]), wanted)
    return target_off[a_event[rows]] + a_target[rows], counts
