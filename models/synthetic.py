"""Random but realistic-looking jets in the shared feature layout, and shards in the exact `collect` format.

For tests of the training pipeline and for benchmarks without collected shards. The target
is learnable only from the constituents and globals:
``y = 0.3 * f_neutral + 0.04 * log(100 GeV / pt_raw) + 0.1 * has_sv + N(0, 0.03)``,
with ``f_neutral`` the neutral share of the constituent pT. Seeded, reproducible.
"""
from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np

from physics.features import FEATURE_NAMES

COLLECTIONS = ("charged", "neutral", "sv")


def _constituents(rng: np.random.Generator, counts: np.ndarray, coll: str, jet_pt: np.ndarray,
                  jet_eta: np.ndarray, jet_phi: np.ndarray, share: np.ndarray) -> tuple[ak.Array, np.ndarray]:
    """(n_jets, var, F) float32 candidates carrying ``share`` of the jet pT; returns them and their dpt sums."""
    names = FEATURE_NAMES[coll]
    total = int(counts.sum())
    jet = np.repeat(np.arange(len(counts)), counts)
    x = rng.normal(size=(total, len(names))).astype(np.float32)
    w = rng.exponential(size=total)
    wsum = np.bincount(jet, weights=w, minlength=len(counts))
    dpt = w / np.where(wsum[jet] > 0, wsum[jet], 1.0) * share[jet]
    deta = rng.normal(0.0, 0.08, total) / np.sqrt(1.0 + 5.0 * dpt)
    dphi = rng.normal(0.0, 0.08, total) / np.sqrt(1.0 + 5.0 * dpt)
    col = {n: i for i, n in enumerate(names)}
    x[:, col["dpt"]] = dpt
    x[:, col["pt"]] = dpt * jet_pt[jet]
    x[:, col["deta"]] = deta
    x[:, col["dphi"]] = dphi
    x[:, col["eta"]] = jet_eta[jet] + np.sign(jet_eta[jet] + 1e-9) * deta
    x[:, col["phi"]] = (jet_phi[jet] + dphi + np.pi) % (2 * np.pi) - np.pi
    onehot = [i for i, n in enumerate(names) if n.startswith(("is_", "pv_assoc_"))]
    if coll != "sv" and onehot:
        groups = [[i for i in onehot if names[i].startswith("is_")], [i for i in onehot if names[i].startswith("pv_assoc_")]]
        for g in groups:
            if g:
                x[:, g] = 0.0
                x[np.arange(total), np.asarray(g)[rng.integers(0, len(g), total)]] = 1.0
    return ak.unflatten(x, counts), np.bincount(jet, weights=dpt, minlength=len(counts))


def random_jets(n_jets: int, seed: int = 1) -> tuple[dict[str, ak.Array | np.ndarray], np.ndarray, np.ndarray]:
    """(features in the ``jet_features`` layout, target y (n,), pt_raw (n,)) for ``n_jets`` random jets."""
    rng = np.random.default_rng(seed)
    pt_raw = 20.0 * (1.0 - rng.random(n_jets)) ** (-1.0 / 2.0)       # falling spectrum, >= 20 GeV
    pt_raw = np.minimum(pt_raw, 3000.0)
    eta = rng.uniform(-2.5, 2.5, n_jets)
    phi = rng.uniform(-np.pi, np.pi, n_jets)
    lam = 4.0 + 3.0 * np.log(pt_raw / 20.0)
    n_ch = rng.poisson(1.6 * lam)
    n_ne = rng.poisson(lam)
    n_sv = rng.poisson(0.4, n_jets)
    f_neutral = np.clip(rng.beta(2.0, 4.0, n_jets), 0.02, 0.95)
    f_neutral = np.where(n_ne == 0, 0.0, np.where(n_ch == 0, 1.0, f_neutral))
    charged, ch_sum = _constituents(rng, n_ch, "charged", pt_raw, eta, phi, 1.0 - f_neutral)
    neutral, ne_sum = _constituents(rng, n_ne, "neutral", pt_raw, eta, phi, f_neutral)
    sv, _ = _constituents(rng, n_sv, "sv", pt_raw, eta, phi, np.full(n_jets, 0.3))
    g = np.zeros((n_jets, len(FEATURE_NAMES["globals"])), dtype=np.float32)
    col = {n: i for i, n in enumerate(FEATURE_NAMES["globals"])}
    values = {"pt_raw": pt_raw, "log_pt_raw": np.log(pt_raw), "eta": eta, "phi": phi,
              "mass_raw": pt_raw * rng.uniform(0.05, 0.2, n_jets), "area": rng.normal(0.5, 0.03, n_jets),
              "rho": rng.gamma(4.0, 5.0, n_jets), "n_pv": rng.poisson(30, n_jets), "multiplicity": n_ch + n_ne,
              "pt_d": rng.uniform(0.2, 0.9, n_jets), "sigma2": rng.uniform(0.01, 0.1, n_jets)}
    for name, v in values.items():
        g[:, col[name]] = v
    measured_neutral = ne_sum / np.maximum(ch_sum + ne_sum, 1e-9)
    y = (0.3 * measured_neutral + 0.04 * np.log(100.0 / pt_raw) + 0.1 * (n_sv > 0)
         + rng.normal(0.0, 0.03, n_jets)).astype(np.float32)
    return {"globals": g, "charged": charged, "neutral": neutral, "sv": sv}, y, pt_raw.astype(np.float32)


def write_synthetic_shards(out_dir: str | Path, n_jets: int, seed: int = 1, jets_per_shard: int = 5000,
                           features: dict[str, list[str]] | None = None) -> dict:
    """Shards of random jets in the exact ``runner.py collect`` format (parquet + manifest.json); returns the manifest.

    ``features`` overrides the manifest's feature names (to test a mismatch).
    """
    from inputs.shards import event_split, norm_from_sums

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards, stats = [], {c: [0.0, 0.0, 0] for c in ("globals",) + COLLECTIONS}
    n_split = {"train": 0, "validation": 0, "test": 0}
    max_cons = {c: 0 for c in COLLECTIONS}
    for i, begin in enumerate(range(0, n_jets, jets_per_shard)):
        n = min(jets_per_shard, n_jets - begin)
        feats, y, pt_raw = random_jets(n, seed=seed * 100003 + i)
        event = np.arange(begin, begin + n, dtype=np.int64)
        run = np.ones(n, dtype=np.int64)
        lumi = np.full(n, 1, dtype=np.int64) + event // 1000
        split = event_split(run, lumi, event)
        pt_gen = (pt_raw * np.exp(y)).astype(np.float32)
        g = feats["globals"]
        record = ak.zip({
            "target": y, "pt_raw": pt_raw, "pt_gen": pt_gen, "eta": g[:, 2].copy(), "eta_gen": g[:, 2].copy(),
            "phi": g[:, 3].copy(), "flavour": np.ones(n, np.int32), "weight_flat": np.ones(n, np.float32),
            "weight_natural": np.ones(n, np.float32), "split": split, "event": event, "run": run,
            "luminosityBlock": lumi, "globals": ak.Array(g), "charged": feats["charged"],
            "neutral": feats["neutral"], "sv": feats["sv"]}, depth_limit=1)
        name = f"synthetic_{i:04d}.parquet"
        ak.to_parquet(record, out_dir / name)
        shards.append(name)
        train = split == 0
        for c in ("globals",) + COLLECTIONS:
            v = feats[c][train]
            flat = np.asarray(v if c == "globals" else ak.to_numpy(ak.flatten(v, axis=None)), np.float64)
            flat = flat.reshape(-1, len(FEATURE_NAMES[c]))
            stats[c][0] += flat.sum(axis=0)
            stats[c][1] += (flat ** 2).sum(axis=0)
            stats[c][2] += len(flat)
        for code, key in enumerate(n_split):
            n_split[key] += int(np.sum(split == code))
        for c in COLLECTIONS:
            max_cons[c] = max(max_cons[c], int(ak.max(ak.num(feats[c], axis=1), initial=0)))
    norm = {}
    for c, (s, s2, cnt) in stats.items():
        mean, std = norm_from_sums(np.atleast_1d(s), np.atleast_1d(s2), cnt)
        norm[c] = {"mean": mean, "std": std}
    manifest = {"version": 1, "features": features or {c: list(v) for c, v in FEATURE_NAMES.items()}, "norm": norm,
                "shards": shards, "n_jets": n_split,
                "split": {"method": "processors.collect.event_split", "fractions": [0.6, 0.2, 0.2]},
                "target": "log(pt_gen/pt_raw)", "max_constituents": max_cons}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
