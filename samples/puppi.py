"""PUPPI-like weights from reconstructed candidates (GeV, rad), vectorised over a chunk.

alpha_i = log sum_j (pT_j / dR_ij)^2 over 0.01 < dR_ij < R: in the tracker (|eta| < 2.5)
over charged candidates associated to the primary vertex, beyond it over all candidates.
Per event, the pileup reference is the median and RMS of alpha of charged candidates not
associated to the PV (tracker) or of all neutral candidates (forward);
w = F_chi2(1)((alpha - median)^2 / RMS^2) above the median, 0 below, 0 if w pT is below a
cut (CMS: 0.2 GeV + 0.015 GeV per reconstructed vertex). Charged: 1 when counted as from the PV
(see ``samples.reconstruction.charged_from_pv``), else 0. Events with fewer than 5 pileup charged
candidates (no pileup) keep neutral weights of 1.
"""
from __future__ import annotations

import numpy as np

from samples.eta_phi import eta_phi_tree

TRACKER_ETA = 2.5


def _alpha(event, eta, phi, pt, ref, r, rmin, n_events, query=None):
    alpha = np.full(len(eta), -np.inf)
    if not ref.any() or len(eta) == 0:
        return alpha
    ridx = np.nonzero(ref)[0]
    qidx = np.arange(len(eta)) if query is None else np.nonzero(query)[0]
    if len(qidx) == 0:
        return alpha
    t_q = eta_phi_tree(event[qidx], eta[qidx], phi[qidx], n_events)
    t_ref = eta_phi_tree(event[ridx], eta[ridx], phi[ridx], n_events)
    pairs = t_q.sparse_distance_matrix(t_ref, r, output_type="ndarray")
    ok = pairs["v"] > rmin
    i, j, d = qidx[pairs["i"][ok]], ridx[pairs["j"][ok]], pairs["v"][ok]
    s = np.bincount(i, (pt[j] / d) ** 2, len(eta))
    return np.where(s > 0, np.log(np.where(s > 0, s, 1.0)), -np.inf)


def _median_rms(event, alpha, mask, n_events):
    """Per event median and RMS (about the median) of finite alpha over ``mask``; counts."""
    m = mask & np.isfinite(alpha)
    ev, a = event[m], alpha[m]
    order = np.lexsort((a, ev))
    ev, a = ev[order], a[order]
    cnt = np.bincount(ev, minlength=n_events)
    off = np.concatenate([[0], np.cumsum(cnt)])
    med = np.where(cnt > 0, a[np.minimum(off[:-1] + (cnt - 1) // 2, max(len(a) - 1, 0))] if len(a) else 0.0, 0.0)
    rms = np.sqrt(np.bincount(ev, (a - med[ev]) ** 2, n_events) / np.maximum(cnt, 1))
    return med, np.maximum(rms, 1e-3), cnt


def puppi_weights(event: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, charge: np.ndarray,
                  pv_assoc: np.ndarray, n_events: int, r: float = 0.4, rmin: float = 0.01,
                  ptmin: float | np.ndarray = 0.1) -> np.ndarray:
    """PUPPI weight of every candidate; ``pv_assoc``: charged candidate counted as from the PV;
    ``ptmin`` (GeV, scalar or per candidate): neutrals with w pT below it get 0."""
    from scipy.stats import chi2

    charged = charge != 0
    central = np.abs(eta) < TRACKER_ETA
    a_c = _alpha(event, eta, phi, pt, charged & pv_assoc, r, rmin, n_events, query=central)
    a_f = _alpha(event, eta, phi, pt, np.ones(len(pt), bool), r, rmin, n_events, query=~central)
    alpha = np.where(central, a_c, a_f)
    med_c, rms_c, n_c = _median_rms(event, a_c, charged & ~pv_assoc & central, n_events)
    med_f, rms_f, _ = _median_rms(event, a_f, ~charged & ~central, n_events)
    med = np.where(central, med_c[event], med_f[event])
    rms = np.where(central, rms_c[event], rms_f[event])
    x2 = np.where(alpha > med, (alpha - med) ** 2 / rms ** 2, 0.0)
    w = np.where(np.isfinite(alpha), chi2.cdf(x2, 1), 0.0)
    w = np.where(w * pt < ptmin, 0.0, w)
    no_pu = n_c[event] < 5
    w = np.where(no_pu, 1.0, w)
    return np.where(charged, pv_assoc.astype(float), w)


__all__ = ["puppi_weights"]
