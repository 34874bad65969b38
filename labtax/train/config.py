"""Training configuration: packaged defaults (the LAB recipe), then `.labtax.yaml`'s `train:`
section, then the `--config` YAML file, then flags.

Each phase gets its own `PhaseConfig`. Precedence, lowest first: `defaults.yaml` `common:` block,
its phase block, `.labtax.yaml`'s `train:` values (every phase), the `--config` YAML's `common:`
block, its phase block, command-line flags (every phase that runs). The one rule of every labtax
setting: flag > --config file > .labtax.yaml > default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labtax.errors import ConfigError

PHASES: tuple[str, ...] = ("knowledge", "skills")
SCHEDULES = ("cosine", "constant")
CHECKPOINTING = ("none", "mlp", "layers")


@dataclass(frozen=True)
class PhaseConfig:
    """Every knob of one training phase."""

    name: str
    lr: float
    epochs: int
    effective_batch: int
    max_seq_len: int
    max_tokens_per_batch: int
    warmup_steps: int
    schedule: str
    weight_decay: float
    betas: tuple[float, float]
    grad_clip: float
    max_steps: int
    save_every: int
    # Whether each checkpoint also writes the resumable training state (optimizer moments, RNG,
    # data position: three times the model's size). Off, a killed run starts its phase over; the
    # demo turns it off to train its 135M student without writing GBs per checkpoint.
    save_state: bool = True
    fit_schedule: bool = True  # scale batch and warm-up down to small data (labtax/train/schedule.py)
    # 0: the batch is fitted only to data too small to reach the peak rate (a tenth of the samples).
    # N: this many samples a step until an epoch passes 100 steps (labtax/train/schedule.py), so each
    # row gets the same share of the updates whatever else the set holds (docs/train.md, *A fixed
    # batch for phase 1*: tried in session 10, not a default).
    fitted_batch: int = 0
    # Which activations are recomputed in the backward instead of kept (labtax/train/parallel.py):
    # none (fastest), mlp (the MLP blocks: ~60% of the activation memory for ~15% more compute),
    # layers (every decoder layer, as TRL and Trainer's gradient_checkpointing: least memory).
    activation_checkpointing: str = "none"
    # Epochs fitted to the data (labtax/train/schedule.py fit_epochs): train until each fact (the
    # rows sharing `metadata.fact`) has been seen about this many times; 0, data without fact ids, or
    # `epochs` given by the user: `epochs` as configured.
    exposures: int = 0
    # The peak learning rate of a student under SMALL_MODEL_PARAMS parameters when `lr` was not given
    # (0: `lr` for every size). The LAB rates (2e-5, 6e-6) are for 7B students and thousands of steps;
    # a 135M student stores facts at 1e-4 in a hundred (docs/train.md, bench/learning_bench.py).
    small_model_lr: float = 0.0
    # The phase's selected checkpoint pulled back toward the phase's start model: start + interpolate
    # x (trained - start), weight-space interpolation (labtax/train/interpolate.py); 1: as trained.
    interpolate: float = 1.0
    # Phase 1's anchor (labtax/train/anchor.py): each step adds `anchor` x the KL from the start
    # model's stored predictions on `anchor_rows` skill rows of the phase-2 set (0: off). The
    # skills phase trains on those rows, so it never anchors.
    anchor: float = 0.0
    anchor_rows: int = 4

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    seed: int
    phases: dict[str, PhaseConfig] = field(default_factory=dict)
    # Per phase, the options the user chose (a flag, `.labtax.yaml train:`, or the --config YAML), as
    # opposed to packaged defaults: the fitted schedule may only change what the user left to labtax.
    explicit: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainOverrides:
    """The training settings one layer above the `--config` file or below it sets: the flags of
    `labtax train`, or `.labtax.yaml`'s `train:` section (the command line tells the two apart).
    None: that layer leaves the setting to the ones below. Every phase that runs gets them."""

    lr: float | None = None
    epochs: int | None = None
    exposures: int | None = None
    interpolate: float | None = None
    anchor: float | None = None
    effective_batch: int | None = None
    max_steps: int | None = None
    max_seq_len: int | None = None
    max_tokens_per_batch: int | None = None
    warmup_steps: int | None = None
    schedule: str | None = None
    save_every: int | None = None
    activation_checkpointing: str | None = None
    seed: int | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def given(self) -> dict[str, Any]:
        """The settings this layer sets, by name (what `load_config` merges)."""
        return {name: value for name in self.names() if (value := getattr(self, name)) is not None}


_FIELDS = {f.name for f in dataclasses.fields(PhaseConfig)} - {"name"}
_INTS = {"epochs", "effective_batch", "max_seq_len", "max_tokens_per_batch", "warmup_steps", "max_steps",
         "save_every", "exposures", "anchor_rows", "fitted_batch"}
_FLOATS = {"lr", "weight_decay", "grad_clip", "small_model_lr", "interpolate", "anchor"}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config must be a mapping")
    return data


def _block(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    block = data.get(key) or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{source}: `{key}` must be a mapping")
    unknown = set(block) - _FIELDS
    if unknown:
        raise ConfigError(f"{source}: unknown training option(s) in `{key}`: {', '.join(sorted(unknown))}")
    return block


def _coerce(name: str, key: str, value: Any) -> Any:
    """Type-check one option; YAML gives '2e-5' as a string, so floats are parsed leniently."""
    try:
        if key in _INTS:
            if isinstance(value, bool) or int(value) != float(value):
                raise ValueError
            value = int(value)
            if value < 0 or (key in {"epochs", "effective_batch", "max_seq_len", "max_tokens_per_batch", "anchor_rows"}
                             and value == 0):
                raise ValueError
        elif key in _FLOATS:
            value = float(value)
            if value < 0 or (key == "interpolate" and not 0 < value <= 1):
                raise ValueError
        elif key == "fit_schedule":
            if not isinstance(value, bool):
                raise ValueError
        elif key == "schedule":
            if value not in SCHEDULES:
                raise ValueError
        elif key == "activation_checkpointing":
            if value not in CHECKPOINTING:
                raise ValueError
        elif key == "save_state":
            if not isinstance(value, bool):
                raise ValueError
        elif key == "betas":
            value = tuple(float(b) for b in value)
            if len(value) != 2:
                raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: bad value for {key}: {value!r}") from None
    return value


def load_config(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None,
                project: Mapping[str, Any] | None = None) -> TrainConfig:
    """Merge, lowest first: the packaged defaults, `project` (the training options `.labtax.yaml`'s
    `train:` section sets), the `--config` YAML file and `overrides` (the flags). None values are
    ignored."""
    defaults = _read_yaml(Path(__file__).with_name("defaults.yaml"))
    user = _read_yaml(config_file) if config_file is not None else {}
    unknown = set(user) - {"seed", "common", *PHASES}
    if unknown:
        raise ConfigError(f"{config_file}: unknown key(s): {', '.join(sorted(unknown))}")
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    from_file = {k: v for k, v in (project or {}).items() if v is not None}
    seed = flags.pop("seed", user.get("seed", from_file.pop("seed", defaults["seed"])))
    for layer in (flags, from_file):
        if set(layer) - _FIELDS:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(set(layer) - _FIELDS))}")
    phases: dict[str, PhaseConfig] = {}
    explicit: dict[str, frozenset[str]] = {}
    for phase in PHASES:
        merged: dict[str, Any] = {**_block(defaults, "common", "defaults.yaml"),
                                  **_block(defaults, phase, "defaults.yaml"), **from_file,
                                  **_block(user, "common", str(config_file)), **_block(user, phase, str(config_file)),
                                  **flags}
        values = {key: _coerce(phase, key, merged[key]) for key in _FIELDS}
        phases[phase] = PhaseConfig(name=phase, **values)
        explicit[phase] = frozenset(flags) | frozenset(from_file) \
            | frozenset(_block(user, "common", str(config_file))) | frozenset(_block(user, phase, str(config_file)))
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise ConfigError(f"bad seed: {seed!r}") from None
    return TrainConfig(seed=seed, phases=phases, explicit=explicit)
