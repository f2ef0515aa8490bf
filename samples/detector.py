"""CMS-like detector: configuration and particle-level calorimeter response (GeV, mm, rad).

``DetectorConfig`` holds every parameter of the detector (calorimeter grids, shower model,
tracker, particle flow). ``calo_deposits(parts, rng, cfg)`` turns stable particles into
calorimeter deposits at the calorimeter surfaces (charged particles bend in the 3.8 T field
and curl up below ~0.75 GeV): photons and electrons shower in ECAL; hadrons shower with an
EM fraction sampled per shower (Groom-like energy-dependent mean, beta-distributed spread,
species-dependent scale E0, visible energy E - m for baryons and E + m for antibaryons),
a non-compensating response h/e, about two thirds starting in ECAL, a sampling term and a
longitudinal leakage growing with energy; muons leave MIP deposits; neutrinos nothing. Photons convert
in the tracker material (``photon_conversions``): two bent legs, soft legs lost before the ECAL.
The grids, noise, thresholds and clustering are in ``samples.calorimeter``, the tracker in
``samples.tracking``, particle flow in ``samples.particle_flow``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samples.calorimeter import CaloGrid, eta_edges
from samples.material import conversion_probability, tracker_material

PF_CHARGED, PF_ELECTRON, PF_MUON, PF_PHOTON, PF_NEUTRAL, PF_HF_HAD, PF_HF_EM = 211, 11, 13, 22, 130, 1, 2
PION_MASS = 0.13957
MUON_MASS = 0.10566
ELECTRON_MASS = 0.000511

EB = CaloGrid("EB", eta_edges((-1.479, 1.479, 170)), 360, noise=0.04, threshold=0.08, seed_threshold=0.23,
              miscalibration=0.005, miscal_seed=101, share=0.12, spread=0.2)
EE = CaloGrid("EE", eta_edges((-3.0, -1.479, 52), (1.479, 3.0, 52)), 360, noise=0.15, threshold=0.3,
              seed_threshold=0.6, miscalibration=0.01, miscal_seed=102, share=0.12, spread=0.2, seed_threshold_pt=0.15)
HCAL = CaloGrid("HCAL", eta_edges((-3.0, 3.0, 69)), 72, noise=0.25, threshold=0.8, seed_threshold=1.1,
                miscalibration=0.03, miscal_seed=103, share=0.2, spread=0.3, seed_neighbours=4)
HF = CaloGrid("HF", eta_edges((-5.0, -3.0, 12), (3.0, 5.0, 12)), 36, noise=0.4, threshold=1.2, seed_threshold=2.0,
              miscalibration=0.05, miscal_seed=104, share=0.15, spread=0.3)


# Bumped whenever the detector changes what it writes: cached samples are kept per version.
DETECTOR_VERSION = "pf5"


@dataclass(frozen=True)
class DetectorConfig:
    """Every detector parameter (GeV, m for calorimeter surfaces, cm for the tracker)."""

    # calorimeter geometry
    ecal_barrel: CaloGrid = EB
    ecal_endcap: CaloGrid = EE
    hcal: CaloGrid = HCAL
    hf: CaloGrid = HF
    barrel_eta: float = 1.479
    hcal_eta: float = 3.0
    hf_eta_max: float = 5.0
    b_field: float = 3.8                     # T
    ecal_radius: float = 1.29                # m
    ecal_z: float = 3.15
    hcal_radius: float = 1.9
    hcal_z: float = 3.9
    hf_z: float = 11.15
    tracker_radius: float = 1.1              # m: photons convert in the tracker material (samples.material) ...
    photon_conversions: bool = True          # ... into an e+e- pair bent apart; legs that curl up are lost
    # EM showers
    ecal_stoch: float = 0.03                 # sqrt(GeV)
    ecal_const: float = 0.003
    ecal_scale: float = 0.98
    hf_em_stoch: float = 2.0
    hf_em_channel: float = 0.9               # share of an EM shower read in the HF long-fibre (EM) channel
    # hadron showers
    h_over_e: float = 0.45                   # non-compensating hadronic/EM response
    groom_k: float = 0.82                    # <f_em> = 1 - (E / E0)^(k - 1)
    e0_pion: float = 1.0                     # GeV, Groom scale per species
    e0_kaon: float = 1.3
    e0_baryon: float = 2.6
    fem_concentration: float = 10.0          # beta concentration: sigma(f_em) = sqrt(m(1-m)/(c+1))
    p_start_in_ecal: float = 0.6             # hadrons interacting in ECAL (~1.1 lambda_I)
    ecal_share_mean: float = 0.35            # mean share of an ECAL-starting shower read in ECAL
    ecal_share_concentration: float = 4.0
    hcal_stoch: float = 0.8                  # sampling term (sqrt(GeV))
    hf_had_stoch: float = 1.6
    hf_had_em_share: float = 0.25            # mean share of a hadron shower in the HF EM channel
    leak_ref: float = 30.0                   # GeV: leakage mean = leak_coef * log(E / leak_ref)
    leak_coef: float = 0.012
    mip_ecal: float = 0.3                    # GeV, MIP in ECAL (muons, non-interacting hadrons)
    mip_hcal: float = 2.0
    # tracker (see samples.tracking)
    tracker_eta: float = 2.5
    track_min_pt: float = 0.2                # GeV (iterative tracking reaches ~0.1-0.2 GeV)
    track_eff_plateau: float = 0.95
    track_eff_turnon: float = 0.25           # GeV: ~74% at 0.3 GeV, ~87% at 0.5 GeV
    track_max_radius: float = 60.0           # cm: no track from production beyond
    core_dr: float = 0.02                    # dense jet cores: charged particles closer than this (eta-phi) ...
    core_min_pt: float = 1.0                 # GeV ... and above this merge pixel clusters: efficiency x exp(-core_loss * n)
    core_loss: float = 0.05
    track_res_const: float = 0.008
    track_res_slope: float = 1.2e-4          # per GeV
    d0_res_um: float = 20.0
    d0_ms_um: float = 90.0                   # um * GeV
    dz_res_um: float = 22.0                  # |eta| < 1 prompt tracks with a layer-1 hit: real PFNano dzErr is
    dz_ms_um: float = 70.0                   # um * GeV  ... 89 / 54 / 38 / 23 um at pT 0.75 / 1.5 / 3.5 / 10 GeV
    lost_hit_res_scale: tuple = (1.5, 3.0, 40.0)   # impact resolution x this for lostInnerHits 0 / 1 / 2
    ip_tail_fraction: float = 0.05           # tracks whose impact parameters are measured ...
    ip_tail_scale: float = 5.0               # ... this many times worse than their errors say (tails)
    pixel_l1_radius: float = 2.9             # cm
    pixel_l2_radius: float = 6.8
    pixel_l1_half_length: float = 26.7
    pixel_hit_eff: float = 0.90              # a crossed layer-1 module gives a hit (else one lost inner hit)
    pixel_l1_inactive: float = 0.10          # layer 1 crossed outside an active module: first hit in layer 2, none lost
    seed_from_outer: float = 0.10            # prompt tracks seeded from outer layers only (>= 2 lost inner hits)
    track_details_pt: float = 0.5            # GeV: packed candidates keep track details above
    # vertexing
    vertex_eff: float = 0.92
    vertex_min_tracks: int = 2
    vertex_z_res: float = 0.002              # cm
    fit_dz_sig: float = 3.0                  # tracks used in a vertex fit within this dz significance
    fit_track_eff: float = 0.93              # prompt tracks passing the vertex-fit track selection (plateau)
    fit_track_turnon: float = 0.5            # GeV: soft tracks are down-weighted out of the adaptive fit
    tight_dz_sig: float = 1.5
    compat_dz: float = 0.1                   # cm: CompatibilityDz window to the closest vertex ...
    compat_dz_sig: float = 5.0               # ... within this dz significance ...
    compat_dz_err: float = 0.05              # cm: ... for tracks with a dz error below this
    btag_dz: float = 0.1                     # cm: b-track recovery (pvAssocQuality 4) within this dz ...
    btag_dxy: float = 0.1                    # cm: ... and this dxy of the closest vertex ...
    btag_axis: float = 0.07                  # cm: ... with an impact below this (CMS: distance to the jet axis)
    # particle flow
    pf_excess_nsigma: float = 1.0
    pf_track_link_pt: float = 0.0
    muon_eta: float = 2.4
    muon_min_p: float = 3.0
    muon_eff: float = 0.97
    muon_fake: float = 0.002
    ele_min_pt: float = 2.0
    ele_eff: float = 0.85
    ele_eff_turnon: float = 4.0              # GeV
    ele_fake_eoverp: float = 0.8             # pions with ECAL/p above, HCAL/p below 0.1 can fake
    ele_fake_prob: float = 0.3
    # PUPPI
    puppi_r: float = 0.4
    puppi_rmin: float = 0.01
    puppi_ptmin: float = 0.2                 # GeV: weighted neutral pt below ptmin + slope * nPV -> weight 0
    puppi_ptmin_slope: float = 0.015         # GeV per reconstructed vertex (CMS Run-2 tune)
    puppi_charged_dz: float = 0.3            # cm: charged not in any vertex fit count as PV within this |dz|


NOMINAL = DetectorConfig()


def curl_radius(pt: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Transverse diameter (m) of the helix of a charged particle of ``pt`` GeV."""
    return 2.0 * np.asarray(pt) / (0.3 * cfg.b_field)


def surface_phi(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, charge: np.ndarray, radius: float, z: float,
                cfg: DetectorConfig = NOMINAL) -> tuple[np.ndarray, np.ndarray]:
    """(phi at a calorimeter surface (barrel ``radius``, endcap ``z``, m), reaches it) for a particle
    from the beam line; neutral particles go straight."""
    pt = np.maximum(np.asarray(pt), 1e-6)
    bend, gets_there = helix_bend(pt, transverse_reach(eta, radius, z), cfg)
    q = np.asarray(charge)
    reaches = (q == 0) | gets_there
    dphi = -np.sign(q) * bend
    return np.mod(phi + dphi + np.pi, 2 * np.pi) - np.pi, reaches


def transverse_reach(eta: np.ndarray, radius, z: float) -> np.ndarray:
    """Transverse distance (m) from the beam line at which a straight line of pseudorapidity ``eta`` meets a
    calorimeter surface (barrel ``radius``, endcap ``z``, m)."""
    return np.minimum(radius, z / np.maximum(np.abs(np.sinh(eta)), 1e-9))


def helix_bend(pt: np.ndarray, r: np.ndarray, cfg: DetectorConfig = NOMINAL) -> tuple[np.ndarray, np.ndarray]:
    """(phi turned (rad) by a unit-charge helix of ``pt`` GeV from the beam line out to transverse radius ``r``
    (m), whether it gets that far out)."""
    x = 0.3 * cfg.b_field * r / (2.0 * pt)
    return np.arcsin(np.clip(x, 0.0, 1.0)), x < 1.0


def groom_scale(pid: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Groom E0 (GeV) of the EM fraction per species: pions, kaons, baryons."""
    a = np.abs(pid)
    baryon = (a > 1000) & (a < 10000)
    kaon = np.isin(a, (321, 130, 310))
    return np.where(baryon, cfg.e0_baryon, np.where(kaon, cfg.e0_kaon, cfg.e0_pion))


def visible_energy(e: np.ndarray, pid: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Energy a hadron can deposit (GeV): kinetic for baryons, E + m for antibaryons."""
    a = np.abs(pid)
    baryon = (a > 1000) & (a < 10000)
    return np.where(baryon & (pid > 0), e - mass, np.where(baryon & (pid < 0), e + mass, e))


def mean_em_fraction(e: np.ndarray, pid: np.ndarray, cfg: DetectorConfig = NOMINAL) -> np.ndarray:
    """Mean EM fraction of a hadron shower of visible energy ``e`` (GeV)."""
    e0 = groom_scale(pid, cfg)
    return np.clip(1.0 - np.power(np.maximum(e / e0, 1.0), cfg.groom_k - 1.0), 0.0, 0.95)


def hadron_showers(e: np.ndarray, pid: np.ndarray, mass: np.ndarray, rng: np.random.Generator,
                   cfg: DetectorConfig = NOMINAL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled hadron showers: (ECAL-read GeV, HCAL-read GeV, f_em) before cell noise.

    f_em ~ Beta around ``mean_em_fraction``; response f_em + (1 - f_em) h/e, a sampling term,
    leakage (exponential, mean growing with log E); a share of the shower read in ECAL for
    hadrons interacting there, a MIP otherwise.
    """
    n = len(e)
    ev = np.maximum(visible_energy(e, pid, mass), 0.0)
    m = mean_em_fraction(ev, pid, cfg)
    c = cfg.fem_concentration
    fem = rng.beta(np.maximum(m * c, 1e-3), np.maximum((1.0 - m) * c, 1e-3))
    resp = fem + (1.0 - fem) * cfg.h_over_e
    samp = 1.0 + cfg.hcal_stoch / np.sqrt(np.maximum(ev, 0.1)) * rng.standard_normal(n) * np.sqrt(1.0 - fem)
    leak_mean = cfg.leak_coef * np.log(np.maximum(ev / cfg.leak_ref, 1.0))
    leak = np.minimum(rng.exponential(1.0, n) * leak_mean, 0.9)
    total = ev * resp * np.maximum(samp, 0.0) * (1.0 - leak)
    in_ecal = rng.random(n) < cfg.p_start_in_ecal
    k = cfg.ecal_share_concentration
    share = rng.beta(cfg.ecal_share_mean * k, (1.0 - cfg.ecal_share_mean) * k, n)
    mip = np.minimum(cfg.mip_ecal * (1.0 + 0.3 * rng.standard_normal(n)).clip(0.3), total)
    e_ecal = np.where(in_ecal, share * total, mip)
    return e_ecal, total - e_ecal, fem


def photon_conversions(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, photon: np.ndarray,
                       rng: np.random.Generator, cfg: DetectorConfig = NOMINAL) -> dict:
    """Photons converting in the tracker material (``conversion_probability`` of ``tracker_material``).

    The pair shares the energy (``share``, 1 - ``share``, flat) and converts at a radius flat up to the
    tracker's (or the ECAL endcap's) transverse reach; each leg bends from there to the ECAL surface
    (``phi_a``, ``phi_b``) and reaches it only if its helix gets that far out (``reach_a``, ``reach_b``):
    a soft leg curls up in the tracker and its energy is lost to the ECAL clusters, as in CMS, where
    soft converted photons mostly vanish below the crystal thresholds. Returns per particle ``conv``, ``share``,
    ``reach_a``, ``reach_b``, ``phi_a``, ``phi_b``.
    """
    n = len(pt)
    u = rng.random((3, n))
    conv = photon & (u[0] < conversion_probability(tracker_material(eta))) & cfg.photon_conversions
    r_t = transverse_reach(eta, cfg.ecal_radius, cfg.ecal_z)
    r_c = u[1] * np.minimum(cfg.tracker_radius, r_t)
    share = 0.02 + 0.96 * u[2]
    out = {"conv": conv, "share": share}
    for leg, frac, q in (("a", share, 1.0), ("b", 1.0 - share, -1.0)):
        pt_leg = np.maximum(frac * pt, 1e-6)
        r_curv = pt_leg / (0.3 * cfg.b_field)                     # m
        out[f"reach_{leg}"] = np.hypot(r_c, r_curv) + r_curv > r_t
        bend = helix_bend(pt_leg, r_t, cfg)[0] - helix_bend(pt_leg, r_c, cfg)[0]   # from r_c on to the ECAL
        out[f"phi_{leg}"] = np.mod(phi - q * bend + np.pi, 2 * np.pi) - np.pi
    return out


def em_showers(e: np.ndarray, rng: np.random.Generator, stoch: float, const: float, scale: float) -> np.ndarray:
    """EM shower energies read by a calorimeter (GeV): scale, stochastic and constant terms."""
    rel = np.sqrt(stoch ** 2 / np.maximum(e, 1e-3) + const ** 2)
    return np.maximum(e * scale * (1.0 + rel * rng.standard_normal(len(e))), 0.0)


def calo_deposits(parts: dict, rng: np.random.Generator, cfg: DetectorConfig = NOMINAL) -> dict:
    """Calorimeter deposits of flat particles.

    ``parts``: pt, eta, phi, e, pdgId, charge, mass, event (flat arrays, GeV). Returns, for
    "ecal", "hcal", "hf": dicts of flat deposits ``event, eta, phi, energy, true`` (GeV, the
    true column is the particle energy times the deposit's share of its total signal) and,
    for "hf", ``em`` (the EM-channel part of ``energy``).
    """
    pt, eta, phi, e, pid, q = (parts[k] for k in ("pt", "eta", "phi", "e", "pdgId", "charge"))
    ev = parts["event"]
    a = np.abs(pid)
    aeta = np.abs(eta)
    n = len(pt)
    nu = np.isin(a, (12, 14, 16))
    em = (a == 22) | (a == 11)
    mu = a == 13
    had = ~(nu | em | mu)
    phi_e, reach_e = surface_phi(pt, eta, phi, q, cfg.ecal_radius, cfg.ecal_z, cfg)
    phi_h, reach_h = surface_phi(pt, eta, phi, q, cfg.hcal_radius, cfg.hcal_z, cfg)
    phi_f, reach_f = surface_phi(pt, eta, phi, q, 10.0, cfg.hf_z, cfg)
    central = aeta < cfg.hcal_eta
    forward = (aeta >= cfg.hcal_eta) & (aeta < cfg.hf_eta_max)
    g_em = em_showers(e, rng, cfg.ecal_stoch, cfg.ecal_const, cfg.ecal_scale)
    h_ecal, h_hcal, _ = hadron_showers(e, pid, parts["mass"], rng, cfg)
    mip_e = np.maximum(rng.gumbel(cfg.mip_ecal, 0.05, n), 0.0)
    mip_h = np.maximum(rng.gumbel(cfg.mip_hcal, 0.3, n), 0.0)
    e_ecal = np.where(em, g_em, np.where(had, h_ecal, np.where(mu, mip_e, 0.0)))
    e_hcal = np.where(had, h_hcal, np.where(mu, mip_h, 0.0))
    tot = np.maximum(e_ecal + e_hcal, 1e-12)
    t_ecal, t_hcal = e * e_ecal / tot, e * e_hcal / tot
    # converted photons: leg a takes the photon's row, leg b gets rows of its own (same particle index)
    cv = photon_conversions(pt, eta, phi, (a == 22) & central, rng, cfg)
    conv, share = cv["conv"], cv["share"]
    leg_b = conv & cv["reach_b"]
    e_leg_b, t_leg_b = e_ecal * (1.0 - share), t_ecal * (1.0 - share)
    e_ecal = np.where(conv, np.where(cv["reach_a"], e_ecal * share, 0.0), e_ecal)
    t_ecal = np.where(conv, t_ecal * share, t_ecal)
    phi_e = np.where(conv, cv["phi_a"], phi_e)
    ok_e = central & reach_e & (e_ecal > 0)
    ok_h = central & reach_h & (e_hcal > 0)
    # HF: EM showers mostly in the long (EM) fibres, hadron showers mostly read as hadronic
    hf_em = em_showers(e, rng, cfg.hf_em_stoch, 0.05, cfg.ecal_scale)
    hf_had = h_ecal + h_hcal
    hf_had = hf_had * np.maximum(1.0 + cfg.hf_had_stoch / np.sqrt(np.maximum(e, 0.1)) * rng.standard_normal(n), 0.0)
    share_em = np.where(em, cfg.hf_em_channel,
                        rng.beta(cfg.hf_had_em_share * 4.0, (1.0 - cfg.hf_had_em_share) * 4.0, n))
    e_hf = np.where(em, hf_em, np.where(had, hf_had, np.where(mu, 0.5 * mip_h, 0.0)))
    ok_f = forward & reach_f & (e_hf > 0)

    def pack(mask, phi_s, energy, true, **more):
        d = {"event": ev[mask], "eta": eta[mask], "phi": phi_s[mask], "energy": energy[mask], "true": true[mask],
             "index": np.nonzero(mask)[0]}
        d.update({k: v[mask] for k, v in more.items()})
        return d

    ecal = pack(ok_e, phi_e, e_ecal, t_ecal)
    legs = pack(leg_b & (e_leg_b > 0), cv["phi_b"], e_leg_b, t_leg_b)
    return {"ecal": {k: np.concatenate([ecal[k], legs[k]]) for k in ecal}, "hcal": pack(ok_h, phi_h, e_hcal, t_hcal),
            "hf": pack(ok_f, phi_f, e_hf, e.astype(np.float64), em=e_hf * share_em)}


__all__ = ["DETECTOR_VERSION", "DetectorConfig", "NOMINAL", "EB", "EE", "HCAL", "HF", "calo_deposits", "hadron_showers",
           "photon_conversions", "transverse_reach", "helix_bend",
           "em_showers", "mean_em_fraction", "surface_phi", "visible_energy", "groom_scale"]
