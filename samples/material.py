"""Tracker material in front of the ECAL, shared by the jet and the electron detectors.

``tracker_material(eta)``: radiation lengths crossed by a particle from the beam line (CMS-like:
~0.2-0.4 X0 at eta 0, rising to ~1.2 X0 beyond |eta| ~ 1.6). ``conversion_probability(t)``: the
chance that a photon converts to an e+e- pair in ``t`` radiation lengths (7/9 per X0).
"""
from __future__ import annotations

import numpy as np


def tracker_material(eta: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Radiation lengths of tracker material in front of the ECAL at pseudorapidity ``eta``."""
    a = np.abs(np.asarray(eta))
    t = 0.22 + 0.32 * a ** 2 - 0.3 * np.clip(a - 1.6, 0, None) ** 2
    return scale * np.clip(t, 0.2, 1.2)


def conversion_probability(t: np.ndarray) -> np.ndarray:
    """Probability that a photon converts in ``t`` radiation lengths."""
    return 1.0 - np.exp(-7.0 / 9.0 * np.asarray(t))


__all__ = ["tracker_material", "conversion_probability"]
