"""Derive the PF calibration table from single particles shot through this detector.

``python -m samples.pf_calibration_derive`` re-derives ``samples/pf_hadron_calibration.json``
(needed whenever the detector config changes).
"""
from __future__ import annotations

import numpy as np

from samples.pf_calibration import ETA_EDGES, calibrate, fit_table, identity_table, write_table


def particle_gun(species: tuple[int, ...], n: int, e_range: tuple[float, float], eta_range: tuple[float, float],
                 rng: np.random.Generator) -> dict:
    """``n`` single particles, one per event, log-uniform energy, uniform |eta| and phi."""
    from samples.reconstruction import MASSES

    k = rng.integers(0, len(species), n)
    pid = np.asarray(species)[k]
    m = np.array([MASSES.get(abs(int(x)), 0.0) for x in species])[k]
    e = np.exp(rng.uniform(np.log(e_range[0]), np.log(e_range[1]), n))
    e = np.maximum(e, m + 0.05)
    p = np.sqrt(e ** 2 - m ** 2)
    eta = rng.uniform(*eta_range, n) * rng.choice([-1.0, 1.0], n)
    pt = p / np.cosh(eta)
    phi = rng.uniform(-np.pi, np.pi, n)
    charge = np.where(np.isin(np.abs(pid), (211, 321, 2212, 11, 13)), np.sign(pid), 0).astype(np.int32)
    charge = np.where(np.isin(np.abs(pid), (11, 13)), -np.sign(pid), charge).astype(np.int32)
    z = np.zeros(n)
    return {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "e": e, "pdgId": pid.astype(np.int32),
            "charge": charge, "vx": z, "vy": z, "vz": z, "event": np.arange(n), "vertex": np.zeros(n, dtype=np.int64)}


def gun_sums(parts: dict, seed: int, table: dict | None = None) -> dict:
    """Per event (single particle) raw cluster sums and PF candidate sums of the reconstruction."""
    from samples.reconstruction import reconstruct

    n = len(parts["e"])
    rec = reconstruct(parts, n, np.zeros(n), seed, table or identity_table())
    cl = rec["clusters"]
    out = {k: np.bincount(cl[k]["event"], cl[k]["energy"], n) for k in ("ecal", "hcal", "hf")}
    out["hf_em"] = np.bincount(cl["hf"]["event"], cl["hf"]["em"], n)
    c = rec["cands"]
    for name, codes in (("photon", (22,)), ("neutral", (130,)), ("charged", (211, 11, 13)), ("hf_had", (1,)),
                        ("hf_em_cand", (2,))):
        m = np.isin(np.abs(c["pdgId"]), codes)
        out[name] = np.bincount(c["event"][m], c["energy"][m], n)
    out["linked_raw"] = np.bincount(rec["tracks"]["event"], rec["linked_raw"], n)
    out["tracked"] = np.bincount(rec["tracks"]["event"], minlength=n) > 0
    return out


def derive_hadron_calibration(n_particles: int = 40000, seed: int = 7) -> dict:
    """Derive the PF calibration table from single particles shot through this detector."""
    from samples.particle_flow import HF_EM_FRACTION

    rng = np.random.default_rng(seed)
    table = identity_table()
    # EM: single photons
    g = particle_gun((22,), n_particles // 2, (0.5, 2000.0), (0.0, 5.0), rng)
    s = gun_sums(g, seed + 1, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    raw = np.where(aeta < 3.0, s["ecal"], s["hf"])
    table["em"] = fit_table(raw, e, aeta, ETA_EDGES["em"])
    # neutral hadrons: HCAL clusters, the ECAL part becoming photons with the EM calibration
    g = particle_gun((130, 2112, -2112), n_particles, (1.0, 2000.0), (0.0, 3.0), rng)
    s = gun_sums(g, seed + 2, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    e_vis = np.where(g["pdgId"] == 2112, e - 0.9396, np.where(g["pdgId"] == -2112, e + 0.9396, e))
    photons = calibrate(table, "em", s["ecal"], aeta)
    table["neutral"] = fit_table(s["hcal"], np.maximum(e_vis - photons, 0.0), aeta, ETA_EDGES["neutral"])
    # charged hadrons: linked ECAL + HCAL against the true energy
    g = particle_gun((211, -211, 321, -321), n_particles, (1.0, 2000.0), (0.0, 2.5), rng)
    s = gun_sums(g, seed + 3, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    ok = s["tracked"]
    table["charged"] = fit_table(s["linked_raw"][ok], e[ok], aeta[ok], ETA_EDGES["charged"])
    # HF hadrons
    g = particle_gun((211, -211, 130, 2112, 321), n_particles // 2, (5.0, 3000.0), (3.0, 5.0), rng)
    s = gun_sums(g, seed + 4, table)
    aeta, e = np.abs(np.arcsinh(g["pz"] / np.hypot(g["px"], g["py"]))), g["e"]
    had = (s["hf"] > 0) & (s["hf_em"] < HF_EM_FRACTION * s["hf"])
    table["hf"] = fit_table(s["hf"][had], e[had], aeta[had], ETA_EDGES["hf"])
    table["derived_with"] = {"n_particles": int(n_particles), "seed": int(seed)}
    return table


if __name__ == "__main__":
    print(write_table(derive_hadron_calibration()))
