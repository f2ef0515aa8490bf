"""Electron energy regression: Deep Sets over nearby PF candidates, FiLM-modulated by the scalar features.

The network predicts ``y = log(E_true / E_reco)``; the corrected energy is
``E_reco * exp(y_hat)``.

Architecture (DESIGN section 5):
- condition ``c``: MLP on the normalised scalar electron features (+ an ``is_data``
  flag when the model is trained on data, so that it can learn how the data detector
  differs from the simulated one while sharing everything else);
- per-candidate MLP; after each hidden layer FiLM: ``h <- h * (1 + gamma_l(c)) + beta_l(c)``;
- masked sum over candidates (padding has mask 0 and does not enter);
- head MLP on [pooled, c] -> y_hat.

TensorFlow/Keras are imported inside functions so that importing this module is cheap.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from physics.electrons import CAND_FEATURES, MAX_CANDS, SCALAR_FEATURES


@dataclass
class ElectronModelConfig:
    """Model and training settings (YAML keys of the same names)."""

    cand_layers: list[int] = field(default_factory=lambda: [64, 64])
    cond_layers: list[int] = field(default_factory=lambda: [64])
    head_layers: list[int] = field(default_factory=lambda: [128, 64])
    max_cands: int = MAX_CANDS
    use_kind: bool = True  # feed an is_data flag into the FiLM condition
    loss: str = "huber"  # huber or mae
    huber_delta: float = 0.02
    learning_rate: float = 2e-3
    batch_size: int = 512
    epochs: int = 12
    label_rounds: int = 3  # data labels recomputed with the corrected partner this many times
    data_window: list[float] = field(default_factory=lambda: [86.0, 97.0])  # corrected m_ee window of data labels (GeV)
    # in-window median of the generator-level m_ee that data labels are steered to (GeV); null: from the
    # true energies of the MC shards when given, else M_Z (the Z line shape with FSR sits below M_Z)
    label_reference_mass: float | None = None
    w_mc: float = 1.0
    w_data: float = 1.0
    max_abs_target: float = 1.0  # MC electrons with |log(E_true/E_reco)| above this are not used
    seed: int = 1
    # fair protocol (issue 16): every mode gets max_epochs x steps_per_epoch optimiser steps at most, batches
    # drawn with probability w_kind / N_kind; early stopping on the validation split (patience epochs) once
    # the data labels have converged; label rounds every epochs_per_round epochs until the scale moves less
    # than label_tol in every E_T bin (or max_label_rounds, then reported as not converged);
    # steps_per_epoch 0: the legacy epoch loop of models/train_electrons.py (single reference mass)
    steps_per_epoch: int = 50
    max_epochs: int = 36
    patience: int = 2
    epochs_per_round: int = 2
    max_label_rounds: int = 14
    label_tol: float = 1e-3
    lr_decay: float = 0.9  # fair protocol: peak learning rate x lr_decay per epoch, the same schedule in every mode
    lr_floor: float = 0.05  # fair protocol: each cosine cycle (one label round) ends at lr_floor x its peak
    # fair protocol: Adam keeps an exponential moving average of the weights (this momentum per step) and
    # the model takes it at the end of every epoch; null: off
    ema_momentum: float | None = 0.98
    # generator-level E_T-binned label reference (JSON); null: models/configs/zee_label_reference.json
    label_reference: str | None = None

    @classmethod
    def from_yaml(cls, path: str | Path | None) -> "ElectronModelConfig":
        from core.errors import BadInputError

        if path is None:
            return cls()
        path = Path(path)
        if not path.exists():
            raise BadInputError(f"{path}: electron model config does not exist")
        import yaml

        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise BadInputError(f"{path}: not valid YAML ({err})") from None
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise BadInputError(f"{path}: unknown electron config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**raw)

    def as_dict(self) -> dict:
        return asdict(self)


def _register():
    """Custom layers, registered once (keras imported lazily)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="caliber")
    class FiLM(keras.layers.Layer):
        """h * (1 + gamma) + beta with gamma, beta (batch, features) broadcast over candidates."""

        def call(self, inputs):
            h, gamma, beta = inputs
            return h * (1.0 + ops.expand_dims(gamma, 1)) + ops.expand_dims(beta, 1)

    @keras.saving.register_keras_serializable(package="caliber")
    class MaskedSum(keras.layers.Layer):
        """Sum over candidates of h * mask; also returns nothing for padding."""

        def call(self, inputs):
            h, mask = inputs
            return ops.sum(h * ops.expand_dims(mask, -1), axis=1)

    return FiLM, MaskedSum


_LAYERS = None


def custom_layers():
    global _LAYERS
    if _LAYERS is None:
        _LAYERS = _register()
    return _LAYERS


def build_model(cfg: ElectronModelConfig, scalar_norm: tuple[np.ndarray, np.ndarray],
                cand_norm: tuple[np.ndarray, np.ndarray]):
    """The Keras model: inputs scalars (B, S), cands (B, N, F), mask (B, N), is_data (B, 1)."""
    import keras

    FiLM, MaskedSum = custom_layers()
    keras.utils.set_random_seed(cfg.seed)
    n_s, n_c = len(SCALAR_FEATURES), len(CAND_FEATURES)
    scalars = keras.Input((n_s,), name="scalars")
    cands = keras.Input((cfg.max_cands, n_c), name="cands")
    mask = keras.Input((cfg.max_cands,), name="mask")
    is_data = keras.Input((1,), name="is_data")
    s = keras.layers.Normalization(mean=scalar_norm[0], variance=scalar_norm[1] ** 2, name="scalar_norm")(scalars)
    c = keras.layers.Normalization(mean=cand_norm[0], variance=cand_norm[1] ** 2, name="cand_norm")(cands)
    cond = keras.layers.Concatenate()([s, is_data]) if cfg.use_kind else s
    for i, n in enumerate(cfg.cond_layers):
        cond = keras.layers.Dense(n, activation="gelu", name=f"cond_{i}")(cond)
    h = c
    for i, n in enumerate(cfg.cand_layers):
        h = keras.layers.Dense(n, activation="gelu", name=f"cand_{i}")(h)
        gamma = keras.layers.Dense(n, kernel_initializer="zeros", name=f"film_gamma_{i}")(cond)
        beta = keras.layers.Dense(n, kernel_initializer="zeros", name=f"film_beta_{i}")(cond)
        h = FiLM(name=f"film_{i}")([h, gamma, beta])
    pooled = MaskedSum(name="masked_sum")([h, mask])
    x = keras.layers.Concatenate()([pooled, cond, s])
    for i, n in enumerate(cfg.head_layers):
        x = keras.layers.Dense(n, activation="gelu", name=f"head_{i}")(x)
    y = keras.layers.Dense(1, name="log_correction")(x)
    return keras.Model({"scalars": scalars, "cands": cands, "mask": mask, "is_data": is_data}, y,
                       name="electron_film_deepsets")


def load_model(path: str | Path):
    """Load a saved electron model (safe mode)."""
    import keras

    from core.errors import BadInputError

    custom_layers()
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: electron model file does not exist")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # keras raises many kinds for damaged files
        raise BadInputError(f"{path}: cannot be loaded as a Keras model ({type(err).__name__}: {str(err)[:160]})") from None


def predict_log_correction(model, scalars: np.ndarray, cands: np.ndarray, mask: np.ndarray, is_data: np.ndarray,
                           batch_size: int = 4096) -> np.ndarray:
    """y_hat = log(E_true/E_reco) per electron."""
    inputs = {"scalars": scalars.astype(np.float32), "cands": cands.astype(np.float32),
              "mask": mask.astype(np.float32), "is_data": is_data.reshape(-1, 1).astype(np.float32)}
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0)).reshape(-1)


@dataclass
class ElectronModelSpec:
    """A trained electron model as a correction row of ``ZeeProcessor``.

    ``trained_on_data``: whether the is_data flag was seen as 1 in training (else the
    model is applied with is_data = 0 everywhere).
    """

    name: str
    path: str
    trained_on_data: bool = True
    _model: object = None

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None) -> "ElectronModelSpec":
        """A spec from a saved .keras model (and its .json sidecar written by training)."""
        import json

        from core.errors import BadInputError

        path = Path(path)
        if not path.exists():
            raise BadInputError(f"{path}: electron model file does not exist")
        info_path = path.with_suffix(".json")
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return cls(name=name or path.stem, path=str(path), trained_on_data=bool(info.get("trained_on_data", False)))

    def correction(self, scalars: dict, cands, kind: str) -> np.ndarray:
        """exp(y_hat) for (n_pairs, 2) electrons."""
        if self._model is None:
            self._model = load_model(self.path)
        n = len(next(iter(scalars.values())))
        if n == 0:
            return np.ones((0, 2))
        s = np.stack([scalars[k].reshape(-1) for k in SCALAR_FEATURES], axis=1)
        import awkward as ak

        c, m = pad_candidates(ak.flatten(cands, axis=1), MAX_CANDS)
        flag = np.full(2 * n, 1.0 if (kind == "data" and self.trained_on_data) else 0.0)
        return np.exp(predict_log_correction(self._model, s, c, m, flag)).reshape(n, 2)


def pad_candidates(cands, max_cands: int) -> tuple[np.ndarray, np.ndarray]:
    """Jagged candidate records (per electron) -> (n, max_cands, F) float32 array and (n, max_cands) mask."""
    import awkward as ak

    n = len(cands)
    out = np.zeros((n, max_cands, len(CAND_FEATURES)), dtype=np.float32)
    if n == 0:
        return out, np.zeros((0, max_cands), np.float32)
    cands = cands[:, :max_cands]
    counts = ak.to_numpy(ak.num(cands)).astype(np.int64)
    mask = (np.arange(max_cands)[None, :] < counts[:, None]).astype(np.float32)
    fields = ak.fields(cands)
    for j, name in enumerate(CAND_FEATURES):
        if name not in fields:
            continue
        flat = ak.to_numpy(ak.flatten(cands[name])).astype(np.float32)
        out[:, :, j][mask.astype(bool)] = flat
    return out, mask
