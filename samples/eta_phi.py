"""Neighbour searches in (eta, phi) over a whole chunk of events at once (rad)."""
from __future__ import annotations

import numpy as np

EVENT_SPACING = 30.0  # events side by side in eta, this far apart: no pair across two events is ever close


def eta_phi_tree(event: np.ndarray, eta: np.ndarray, phi: np.ndarray, n_events: int):
    """A scipy ``cKDTree`` of the points (eta, phi) of a chunk (``event`` < ``n_events``): phi periodic, events
    apart, so a distance below a few units is the dR of two particles of the same event."""
    from scipy.spatial import cKDTree

    box = np.array([EVENT_SPACING * (n_events + 1), 2 * np.pi])
    pts = np.stack([eta + 10.0 + EVENT_SPACING * event, np.mod(phi, 2 * np.pi)], axis=1)
    pts[:, 1] = np.minimum(pts[:, 1], np.nextafter(2 * np.pi, 0))
    return cKDTree(pts, boxsize=box)


__all__ = ["eta_phi_tree", "EVENT_SPACING"]
