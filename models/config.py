"""Model configuration: a small dataclass read from YAML (``models/configs/*.yaml``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from core.errors import BadInputError

ARCHITECTURES = ("deepsets", "particlenet")


@dataclass
class ModelConfig:
    """Architecture and training settings of one jet model.

    Deep Sets uses ``phi_layers`` (shared per-constituent MLP, one per collection) and
    ``head_layers``. ParticleNet uses ``edge_blocks`` (each a list of EdgeConv MLP widths;
    the first block finds neighbours in (deta, dphi), later ones in feature space), ``k``
    neighbours, ``sv_layers`` for the Deep Sets-style SV branch and ``head_layers``.
    ``max_constituents`` caps the padded length per collection (the highest-pT ones are kept).
    """

    architecture: str = "deepsets"
    name: str = "deepsets"
    phi_layers: list[int] = field(default_factory=lambda: [64, 64, 64])
    head_layers: list[int] = field(default_factory=lambda: [128, 64])
    edge_blocks: list[list[int]] = field(default_factory=lambda: [[64, 64, 64], [128, 128, 128]])
    k: int = 16
    sv_layers: list[int] = field(default_factory=lambda: [32, 32])
    activation: str = "relu"
    dropout: float = 0.0
    batch_size: int = 256
    learning_rate: float = 1e-3
    epochs: int = 30
    patience: int = 5            # early stopping (epochs without a better validation loss)
    lr_patience: int = 2         # ReduceLROnPlateau patience (epochs)
    lr_factor: float = 0.3
    min_learning_rate: float = 1e-6
    max_abs_target: float = 1.0  # loss uses jets with |y| < this
    max_constituents: dict[str, int] = field(default_factory=lambda: {"charged": 64, "neutral": 64, "sv": 8})
    seed: int = 1

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise BadInputError(f"model config: architecture '{self.architecture}' is not one of {ARCHITECTURES}")
        for coll in ("charged", "neutral", "sv"):
            if int(self.max_constituents.get(coll, 0)) < 1:
                raise BadInputError(f"model config: max_constituents.{coll} must be >= 1")
        if self.architecture == "particlenet" and self.k < 1:
            raise BadInputError("model config: k must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path: str | Path) -> ModelConfig:
    """Read a YAML model config; BadInputError naming the file on a missing file or an unknown key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise BadInputError(f"{path}: model config file does not exist") from None
    except yaml.YAMLError as err:
        raise BadInputError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise BadInputError(f"{path}: a model config must be a mapping of settings")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BadInputError(f"{path}: unknown model config keys {unknown} (known: {sorted(known)})")
    try:
        return ModelConfig(**raw)
    except BadInputError as err:
        raise BadInputError(f"{path}: {err}") from None


def save_config(config: ModelConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
