"""Parametric detector for electrons: tracker material, bremsstrahlung, ECAL response, PF candidates.

Two versions of the detector exist: ``"mc"`` (the nominal simulation) and ``"data"``
(the "real" detector: another ECAL scale and non-linearity, more tracker material and
so more bremsstrahlung, a wider shower, and an extra constant term). The model never
sees which parameters were used; it sees only NanoAOD-like observables.

Physics of one electron (all energies in GeV, angles in rad):

1. Material before the ECAL, ``t(eta)`` radiation lengths, grows with |eta|.
2. Bremsstrahlung (Bethe-Heitler): the fraction of energy the electron keeps,
   ``z``, has ``-ln z ~ Gamma(t / ln 2)``. The radiated energy is split into a few
   photons emitted at random radii ``s`` (fraction of the ECAL radius).
3. The magnetic field bends the electron in phi by ``-q K / pT`` (K = 0.3 B R / 2);
   a photon emitted at radius s flies on the tangent and lands ``q K (1/z - s) / pT``
   away from the electron impact. The supercluster road collects photons closer than
   ``SC_ROAD`` in phi; the others become PF photons (if not converted and above
   threshold) or are lost. Early, hard brem at low pT is thus partly outside the
   cluster: low r9, wide sieie, E/p < 1, PF photons near the electron.
4. ECAL response on the collected energy: scale x (1 + non-linearity) x Gaussian
   resolution (stochastic, noise, constant terms), plus pileup energy in the cluster.
5. Observables as NanoAOD stores them: r9, sieie, hoe, eInvMinusPInv (from a GSF-like
   track momentum), deltaEtaSC (cluster eta seen from the origin minus the track eta
   from the vertex), energyErr, pfRelIso03_all, convVeto, lostHits, cutBased.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from samples.material import conversion_probability, tracker_material

#: bending constant 0.3 * B[T] * R_ECAL[m] / 2 (GeV rad) for B = 3.8 T, R = 1.29 m
BENDING_K = 0.3 * 3.8 * 1.29 / 2
#: half-width in phi of the supercluster road (rad)
SC_ROAD = 0.10
#: 3x3 crystal window half-width in phi (rad), for r9
CORE_ROAD = 0.026
#: ECAL barrel radius and endcap z (cm)
R_BARREL, Z_ENDCAP = 129.0, 317.0
ETA_BARREL = 1.479
#: PF photon threshold (GeV)
PF_PHOTON_MIN_E = 0.3


@dataclass(frozen=True)
class ElectronDetector:
    """Parameters of one detector version (see the module docstring)."""

    name: str = "mc"
    material_scale: float = 1.0  # multiplies t(eta)
    ecal_scale: float = 0.985  # ECAL response to a contained shower
    nonlinearity: float = 0.004  # response x (1 + nonlinearity * ln(E / 45 GeV))
    stochastic: float = 0.03  # a / sqrt(E), barrel
    noise: float = 0.25  # b / E (GeV)
    constant: float = 0.005  # c, barrel
    stochastic_ee: float = 0.05  # a / sqrt(E), endcap
    constant_ee: float = 0.009  # c, endcap
    ecal_scale_ee: float = 0.975  # endcap response to a contained shower
    scale_eta_slope: float = 0.0  # barrel response x (1 + slope * |eta|): module-by-module miscalibration
    core_fraction: float = 0.955  # mean fraction of a shower inside 3x3
    satellite_efficiency: float = 0.97  # fraction of a satellite (non-seed) deposit the clustering keeps ...
    satellite_threshold: float = 0.25  # ... times E / (E + this) (GeV): crystal thresholds eat soft satellites
    track_tail: float = 0.25  # weight of a Student-t (3 d.o.f.) tail in the GSF momentum resolution
    sieie_scale: float = 1.0
    hoe_scale: float = 1.0

    def material(self, eta: np.ndarray) -> np.ndarray:
        """Radiation lengths of tracker material in front of the ECAL at pseudorapidity eta."""
        return tracker_material(eta, self.material_scale)


NOMINAL = ElectronDetector()
#: the "collision data" detector: different scale and non-linearity, 20% more material,
#: wider showers and an extra 0.9% constant term
DATA = replace(NOMINAL, name="data", material_scale=1.20, ecal_scale=1.0, nonlinearity=-0.012,
               constant=float(np.hypot(0.005, 0.009)), stochastic=0.034, core_fraction=0.948,
               constant_ee=float(np.hypot(0.009, 0.014)), stochastic_ee=0.055, ecal_scale_ee=0.995,
               scale_eta_slope=0.008, satellite_efficiency=0.96, satellite_threshold=0.35, track_tail=0.35,
               sieie_scale=1.03, hoe_scale=1.15)
DETECTORS = {"mc": NOMINAL, "data": DATA}


def get_detector(name: str) -> ElectronDetector:
    """The detector version called ``name`` ("mc" or "data")."""
    if name not in DETECTORS:
        raise ValueError(f"unknown electron detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name]


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """phi folded into [-pi, pi)."""
    return (np.asarray(phi) + np.pi) % (2 * np.pi) - np.pi


def brem_fraction_kept(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bethe-Heitler: fraction z of the energy an electron keeps after t radiation lengths."""
    return np.exp(-rng.gamma(t / np.log(2.0)))


def supercluster_eta(eta: np.ndarray, z_vertex: np.ndarray) -> np.ndarray:
    """Pseudorapidity of the ECAL impact seen from the origin (z_vertex in cm)."""
    sinh = np.sinh(eta)
    barrel = np.abs(eta) < ETA_BARREL
    # barrel: impact at R_BARREL; endcap: impact at |z| = Z_ENDCAP
    z_b = z_vertex + R_BARREL * sinh
    eta_b = np.arcsinh(z_b / R_BARREL)
    zsign = np.sign(eta)
    r_e = np.abs((zsign * Z_ENDCAP - z_vertex) / np.where(sinh == 0, 1e-9, sinh))
    eta_e = np.arcsinh(zsign * Z_ENDCAP / np.maximum(r_e, 1e-6))
    return np.where(barrel, eta_b, eta_e)


def resolution(energy: np.ndarray, det: ElectronDetector, eta: np.ndarray | float = 0.0) -> np.ndarray:
    """Relative ECAL resolution sigma_E / E at energy E (GeV) and pseudorapidity eta (endcap terms)."""
    e = np.maximum(energy, 0.1)
    endcap = np.abs(eta) >= ETA_BARREL
    a = np.where(endcap, det.stochastic_ee, det.stochastic)
    c = np.where(endcap, det.constant_ee, det.constant)
    return np.sqrt(a**2 / e + (det.noise / e) ** 2 + c**2)


def ecal_response(energy: np.ndarray, eta: np.ndarray, det: ElectronDetector) -> np.ndarray:
    """Mean ECAL response (measured / deposited) at energy (GeV) and eta: scale, eta map, non-linearity."""
    a = np.abs(eta)
    scale = np.where(a >= ETA_BARREL, det.ecal_scale_ee, det.ecal_scale * (1 + det.scale_eta_slope * a))
    return scale * (1 + det.nonlinearity * np.log(np.maximum(energy, 1.0) / 45.0))


def window_fraction(distance: np.ndarray, half_width: float = CORE_ROAD) -> np.ndarray:
    """Fraction of a shower at ``distance`` (rad) from the seed inside the 3x3 window (Moliere radius ~ 1 crystal)."""
    return np.clip(1.0 - np.maximum(np.abs(distance) - 0.4 * half_width, 0.0) / (1.6 * half_width), 0.0, 1.0)


def simulate_electrons(e_true: np.ndarray, eta: np.ndarray, phi: np.ndarray, charge: np.ndarray,
                       z_vertex: np.ndarray, rho: np.ndarray, extra_photons: list[np.ndarray] | None,
                       det: ElectronDetector, rng: np.random.Generator) -> dict:
    """Reconstruct a flat list of electrons.

    Parameters are per electron: true energy (GeV), eta, phi at the vertex, charge,
    vertex z (cm), event rho (GeV). ``extra_photons`` optionally gives, per electron,
    an (n, 3) array of (E, deta, dphi) of nearby generator photons (FSR) that enter the
    detector like brem photons.

    Returns a dict of flat arrays (the Electron_* observables plus ``pf_photons``: a list
    per electron of (E, eta, phi) PF photons made from brem outside the cluster).
    """
    n = len(e_true)
    e_true = np.asarray(e_true, dtype=np.float64)
    pt_true = e_true / np.cosh(eta)
    t = det.material(eta)
    z = brem_fraction_kept(t, rng)
    e_brem = e_true * (1 - z)
    n_gamma = 1 + rng.poisson(1.5, size=n)
    # photons: per electron, fractions from a Dirichlet, emission radii uniform
    e_kept = e_true * z
    # offsets along the bending direction (rad) from the vertex direction: phi = phi0 - q * offset
    k_over_pt = BENDING_K / np.maximum(pt_true, 1.0)
    max_g = int(n_gamma.max()) if n else 0
    frac = rng.dirichlet(np.ones(max_g), size=n) if max_g > 0 else np.zeros((n, 0))
    valid_g = np.arange(max_g)[None, :] < n_gamma[:, None]
    frac = np.where(valid_g, frac, 0.0)
    frac /= np.maximum(frac.sum(axis=1, keepdims=True), 1e-12)
    s = rng.uniform(0, 1, size=(n, max_g))
    # deposits: column 0 the electron, then brem photons, then generator FSR photons
    dep_deta = [np.zeros((n, 1)), 0.002 * rng.standard_normal((n, max_g))]
    # a brem photon converts in the material left after its emission point (7/9 per X0)
    conv = rng.uniform(size=(n, max_g)) < conversion_probability(t[:, None] * (1 - s))
    # a converted brem photon becomes an e+e- pair sharing its energy (u, 1 - u) that the field opens in phi
    # by K (1 - s) / pT_leg each way: at Z energies the soft legs land outside the supercluster road (seen as
    # nearby PF photons) or curl up before the ECAL (lost) -- brem that leaves the cluster, more so in data
    u = rng.uniform(0.05, 0.95, size=(n, max_g))
    e_g = frac * e_brem[:, None]
    pt_g = e_g / np.cosh(eta)[:, None]
    o_g = k_over_pt[:, None] * s
    leg_a = np.where(conv, u, 1.0) * e_g
    leg_b = np.where(conv, 1 - u, 0.0) * e_g
    bend = BENDING_K * (1 - s)
    dep_e = [e_kept[:, None], leg_a, leg_b]
    dep_o = [(k_over_pt / np.maximum(z, 0.02))[:, None],
             o_g + np.where(conv, bend / np.maximum(u * pt_g, 1e-3), 0.0),
             o_g - bend / np.maximum((1 - u) * pt_g, 1e-3)]
    dep_deta.append(0.002 * rng.standard_normal((n, max_g)))
    dep_conv = [np.zeros((n, 1), bool), np.zeros((n, max_g), bool), np.zeros((n, max_g), bool)]
    # an electron (or conversion leg) left with pT below ~0.8 GeV curls up before the ECAL
    dep_valid = [(pt_true * z > 0.8)[:, None], valid_g & (frac > 0) & (~conv | (u * pt_g > 0.8)),
                 valid_g & conv & ((1 - u) * pt_g > 0.8)]
    if extra_photons is not None:
        m = max((len(p) for p in extra_photons), default=0)
        if m:
            ex = np.zeros((n, m, 3))
            ev = np.zeros((n, m), dtype=bool)
            for i, p in enumerate(extra_photons):
                if len(p):
                    ex[i, :len(p)] = p
                    ev[i, :len(p)] = True
            dep_e.append(ex[:, :, 0])
            dep_o.append(-charge[:, None] * ex[:, :, 2])
            dep_deta.append(ex[:, :, 1])
            dep_conv.append(rng.uniform(size=(n, m)) < 0.05 * t[:, None])
            dep_valid.append(ev)
    d_e = np.concatenate(dep_e, axis=1)
    d_o = np.concatenate(dep_o, axis=1)
    d_deta = np.concatenate(dep_deta, axis=1)
    d_conv = np.concatenate(dep_conv, axis=1)
    d_valid = np.concatenate(dep_valid, axis=1) & (d_e > 0)
    is_ele = np.zeros(d_e.shape, dtype=bool)
    is_ele[:, 0] = True
    # the supercluster: a road in phi around the most energetic deposit
    seed = np.argmax(np.where(d_valid, d_e, -1.0), axis=1)
    o_seed = np.take_along_axis(d_o, seed[:, None], axis=1)
    deta_seed = np.take_along_axis(d_deta, seed[:, None], axis=1)
    in_road = d_valid & (np.abs(d_o - o_seed) < SC_ROAD) & (np.abs(d_deta - deta_seed) < 0.05)
    in_core = d_valid & (np.abs(d_o - o_seed) < CORE_ROAD) & (np.abs(d_deta - deta_seed) < 0.026)
    # deposits away from the seed lose part of their energy to crystal thresholds and clustering
    keep_sat = det.satellite_efficiency * d_e / (d_e + det.satellite_threshold)
    e_cluster_true = np.where(in_core, d_e, 0).sum(axis=1) \
        + np.where(in_road & ~in_core, d_e * keep_sat, 0).sum(axis=1)
    e_cluster_true = np.maximum(e_cluster_true, 0.5)
    core_frac = det.core_fraction * (1 + 0.01 * rng.standard_normal(n))
    # the 3x3 energy: each deposit contributes the part of its shower inside the window around the seed
    e_core = core_frac * np.where(in_road, d_e * window_fraction(d_o - o_seed), 0).sum(axis=1)
    outside = ~in_road & (d_e > 0)
    e_lost = np.where(outside, d_e, 0).sum(axis=1)
    make_pf = outside & d_valid & ~d_conv & ~is_ele & (d_e > PF_PHOTON_MIN_E)
    pf_photons: list[list[tuple[float, float, float]]] = [[] for _ in range(n)]
    for i, j in zip(*np.nonzero(make_pf)):
        e_meas = d_e[i, j] * det.ecal_scale * (1 + 0.15 / np.sqrt(d_e[i, j]) * rng.standard_normal())
        pf_photons[i].append((max(float(e_meas), 0.05), float(eta[i] + d_deta[i, j]),
                              float(wrap_phi(phi[i] - charge[i] * d_o[i, j]))))
    e_lost += np.where(in_road & ~in_core, d_e * (1 - keep_sat), 0).sum(axis=1)
    spread = np.where(in_road & ~in_core, d_e, 0).sum(axis=1) / e_cluster_true  # energy in the cluster outside 3x3

    # ECAL response to the collected energy, with pileup in the cluster
    e_pu = rho * 0.012 * np.cosh(eta) * rng.uniform(0.5, 1.5, size=n)
    response = ecal_response(e_cluster_true, eta, det)
    sigma = resolution(e_cluster_true, det, eta)
    e_sc = e_cluster_true * response * (1 + sigma * rng.standard_normal(n)) + e_pu
    e_sc = np.maximum(e_sc, 0.5)

    # track: GSF-like momentum at the vertex (mode), biased low by hard brem
    sigma_p = 0.012 + 0.012 * np.abs(eta) + 0.0002 * pt_true
    # GSF-like: Gaussian core plus a Student-t (3 d.o.f.) tail from brem inside the tracker
    tail = rng.uniform(size=n) < det.track_tail
    p_track = e_true * z**0.15 * (1 + sigma_p * np.where(tail, 2.0 * rng.standard_t(3, size=n), rng.standard_normal(n)))
    eta_track = eta + 0.0005 * rng.standard_normal(n)
    phi_track = wrap_phi(phi + 0.0005 * rng.standard_normal(n))

    # shower shapes
    r9 = np.clip(e_core * response / np.maximum(e_sc, 1e-3) + 0.01 * rng.standard_normal(n), 0.2, 1.05)
    barrel = np.abs(eta) < ETA_BARREL
    sieie = np.where(barrel, 0.0092, 0.025) * det.sieie_scale * (1 + 0.5 * spread) \
        * (1 + 0.06 * rng.standard_normal(n)) * (1 + 0.3 * rho / 100)
    hoe = det.hoe_scale * (rng.exponential(0.006, size=n) + 0.0004 * rho + 0.02 * (sigma > 0.05))
    eta_sc = supercluster_eta(eta, z_vertex) + (0.0008 + 0.004 * spread) * rng.standard_normal(n)
    delta_eta_sc = eta_sc - eta_track
    energy_err = e_sc * resolution(e_sc, NOMINAL, eta) * (1 + 1.5 * np.clip(1 - r9, 0, 1))
    lost_hits = rng.poisson(0.03 + 0.08 * t)
    conv_veto = rng.uniform(size=n) > 0.01 + 0.02 * t
    return {
        "e_true": e_true, "e_sc": e_sc, "e_lost": e_lost, "z_kept": z,
        "pt": e_sc / np.cosh(eta_track), "eta": eta_track, "phi": phi_track,
        "charge": charge.astype(np.int32), "deltaEtaSC": delta_eta_sc, "eta_sc": eta_sc,
        "r9": r9, "sieie": sieie, "hoe": hoe,
        "eInvMinusPInv": 1.0 / e_sc - 1.0 / np.maximum(p_track, 0.5),
        "energyErr": energy_err, "convVeto": conv_veto, "lostHits": lost_hits.astype(np.uint8),
        "pf_photons": pf_photons,
    }


def cut_based_id(sieie: np.ndarray, hoe: np.ndarray, eop: np.ndarray, iso: np.ndarray, lost_hits: np.ndarray,
                 conv_veto: np.ndarray, abs_eta_sc: np.ndarray) -> np.ndarray:
    """NanoAOD-like cutBased: 0 fail, 1 veto, 2 loose, 3 medium, 4 tight (eop = |1/E - 1/p| in 1/GeV)."""
    barrel = abs_eta_sc < ETA_BARREL
    sieie_cut = np.where(barrel, 1.0, 2.7)  # in units of the barrel width
    s = sieie / 0.0092 / sieie_cut
    # tuned so that loose keeps ~90% of Z electrons in the nominal simulation (CMS Fall17 loose: ~90%)
    levels = [(1.50, 0.15, 0.20, 0.50, 2), (1.40, 0.10, 0.10, 0.30, 1), (1.22, 0.07, 0.05, 0.15, 1),
              (1.15, 0.05, 0.03, 0.10, 1)]
    out = np.zeros(len(sieie), dtype=np.int32)
    for k, (cs, ch, ce, ci, cl) in enumerate(levels, start=1):
        ok = (s < cs) & (hoe < ch) & (eop < ce) & (iso < ci) & (lost_hits <= cl) & (conv_veto | (k == 1))
        out = np.where(ok, k, out)
    return out


def pileup_candidates(eta0: float, phi0: float, rho: float, rng: np.random.Generator,
                      radius: float = 0.4) -> list[tuple[float, float, float, int]]:
    """Soft pileup / underlying-event PF candidates (pt, eta, phi, pdgId) in a cone around (eta0, phi0)."""
    area = np.pi * radius**2
    out = []
    for pdg, frac, mean_pt in ((211, 0.55, 1.0), (22, 0.30, 0.8), (130, 0.15, 1.5)):
        n = rng.poisson(0.3 * max(rho, 0.0) * area * frac / mean_pt)  # charged-hadron-subtracted density
        r = radius * np.sqrt(rng.uniform(size=n))
        a = rng.uniform(0, 2 * np.pi, size=n)
        pts = rng.exponential(mean_pt, size=n) + 0.2
        signs = rng.choice([-1, 1], size=n) if pdg == 211 else np.ones(n, dtype=int)
        for k in range(n):
            out.append((float(pts[k]), float(eta0 + r[k] * np.cos(a[k])),
                        float(wrap_phi(phi0 + r[k] * np.sin(a[k]))), int(pdg * signs[k])))
    return out
