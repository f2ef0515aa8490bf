"""Physical constants shared by the physics, the fits and the sample generator."""
from __future__ import annotations

M_Z = 91.1876  # GeV, PDG Z boson mass
GAMMA_Z = 2.4952  # GeV, PDG Z boson width
