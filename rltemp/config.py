"""Typed, frozen run configuration: YAML presets (``yaml.safe_load`` only) plus ``key=value`` overrides.

A preset is a YAML mapping whose layout mirrors :class:`Config`. Overrides use dotted paths
(``distill.epochs=5``, ``student.options.width=128``); values are parsed as YAML scalars/lists with
``safe_load``. Unknown keys and ill-typed values fail with a :class:`ConfigError` that names the field.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rltemp.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, how validation is carved from train, and dataset-specific options."""

    name: str = "glyphs"
    val_fraction: float = 0.1
    split_seed: int = 0
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{path}.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, schedule and budget of one training run."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 3e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "cosine"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    amp: bool = False  # bfloat16 autocast for forward passes (meant for GPUs)
    channels_last: bool = False  # NHWC memory format for 4-D image models (meant for GPUs)

    def validate(self, path: str) -> None:
        if self.epochs < 1:
            raise ConfigError(f"{path}.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"{path}.batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"{path}.lr must be a positive finite number, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"{path}.weight_decay must be >= 0, got {self.weight_decay}")
        for key, valid in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            value = getattr(self, key)
            if value not in valid:
                raise ConfigError(
                    f"{path}.{key}: unknown {key} {value!r}{did_you_mean(value, valid)}; "
                    f"valid: {', '.join(valid)}"
                )


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")


@dataclass(frozen=True)
class DistillConfig(OptimConfig):
    """Student training: the optimiser fields plus the KD loss weights and the temperature SPEC.

    Loss (Hinton et al. 2015): ``L = ce_weight * CE + kd_weight * mean_i T_i^2 KL(p_t || p_s)``.
    """

    ce_weight: float = 0.1
    kd_weight: float = 0.9
    temperature: str = "fixed:4"
    # the distillation loss the temperatures enter: kd (Hinton et al. 2015) or dkd (Decoupled KD,
    # Zhao et al. 2022: ce_weight · CE + min(epoch / warmup, 1) · (dkd_alpha · TCKD + dkd_beta · NCKD),
    # kd_weight unused; warmup in epochs of the reference 240-epoch recipe, scaled by epochs / 240)
    loss: str = "kd"
    dkd_alpha: float = 1.0
    dkd_beta: float = 8.0
    dkd_warmup: float = 20.0

    def validate(self, path: str) -> None:
        super().validate(path)
        for key in ("ce_weight", "kd_weight", "dkd_alpha", "dkd_beta", "dkd_warmup"):
            v = getattr(self, key)
            if not (v >= 0 and math.isfinite(v)):
                raise ConfigError(f"{path}.{key} must be a finite number >= 0, got {v}")
        if self.loss not in LOSSES:
            raise ConfigError(f"{path}.loss: unknown loss {self.loss!r}{did_you_mean(self.loss, LOSSES)}; "
                              f"valid: {', '.join(LOSSES)}")


LOSSES = ("kd", "dkd")


@dataclass(frozen=True)
class ModelConfig:
    """A model from the registry: name, constructor options, optional weights file."""

    model: str = "mlp"
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None


@dataclass(frozen=True)
class TrainingStudentConfig(ModelConfig):
    """One entry of ``env.students``: a model, and optionally its own learning rate (``lr``, default
    ``distill.lr``) — a pool of students that learn at different speeds, so that a schedule learns to
    read how fast *this* student is learning from what it observes."""

    lr: float | None = None


@dataclass(frozen=True)
class TeacherConfig(ModelConfig):
    """The teacher: a model plus how to train it when no checkpoint is given."""

    train: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0  # the cached teacher is shared by all student seeds
    # dataset options for the teacher's own training data, over data.options (e.g. {role: teacher}
    # for a dataset that gives the teacher a larger, disjoint training subset); empty: the student's data
    data_options: dict[str, Any] = field(default_factory=dict)


DEFAULT_ENV_FEATURES = [
    "p_t_true", "p_s_true", "p_t_top1", "p_s_top1", "margin_s", "ent_t", "ent_s", "kl_ts", "agree",
    "s_correct", "t_correct", "ce_s", "progress", "last_val_acc", "recent_loss",
]


DEFAULT_SCHEDULE_FEATURES = ["progress", "last_val_acc"]
# env.critic_features (schedule env, training only): the reference run's validation accuracy after as many
# epochs as this one, and after its last epoch (a constant of the student: how far this student gets)
CRITIC_FEATURES = ("reference_val_acc", "reference_final_val_acc")


@dataclass(frozen=True)
class EnvConfig:
    """The KD environments (see :mod:`rltemp.envs`): the schedule env (one decision per epoch) and
    the instance env (one decision per instance and KD step)."""

    # shared
    t_min: float = 1.0
    t_max: float = 10.0
    reward: str = "val_acc"  # validation signal whose gain is rewarded: val_acc | val_loss
    reward_scale: float = 100.0
    students: list[TrainingStudentConfig] = field(default_factory=list)  # empty: the config's student
    # the training students' seeds (never the benchmarks' held-out 0..999); empty: a fresh seed per episode
    seeds: list[int] = field(default_factory=lambda: list(range(1000, 1016)))
    # for ablations only: report the end of the epoch budget as a time-limit truncation (SB3 then
    # bootstraps the last reward with the value of the final observation); it is a termination
    end_as_truncation: bool = False
    # schedule env (rltemp/KDSchedule-v0)
    schedule_features: list[str] = field(default_factory=lambda: list(DEFAULT_SCHEDULE_FEATURES))
    # run-level schedule env (rltemp/KDRunSchedule-v0, agent.decision: run): what its one schedule decision
    # reads, global features of the state after the first epoch (its validation accuracy: how fast this student learns)
    run_features: list[str] = field(default_factory=lambda: ["last_val_acc"])
    # > 0: the first epoch of a run-level policy runs at this temperature (not a decision); 0: the policy chooses it
    run_first_temperature: float = 0.0
    # > 0: decide the whole schedule once, before the first epoch, from a probe — a throwaway copy of the
    # student distilled for this fraction of an epoch at run_probe_temperature (Distiller.probe); 0: no probe
    run_probe: float = 0.0
    run_probe_temperature: float = 4.0
    # reward the gain over this SPEC's run of the same student (computed once per student, cached); "": raw gain
    reward_reference: str = "fixed:4"
    # observed by the critic only (training-time information the deployed policy never needs):
    # reference_val_acc = the reference run's validation signal after as many epochs (needs reward_reference)
    critic_features: list[str] = field(default_factory=list)
    # instance envs (rltemp/KDTemperature-v0; rltemp/KDInstanceEpoch-v0 uses the features, calibration,
    # credit scale, base policy and multiplier range, and rewards once per epoch on the full validation split)
    features: list[str] = field(default_factory=lambda: list(DEFAULT_ENV_FEATURES))
    pair: bool = False
    default_temperature: float = 4.0
    reward_interval: int = 20
    val_subset: int = 1000
    calibration: str = "uniform"
    credit_scale: float = 1.0  # influence calibration: weight of the per-instance alignment term
    credit_rank: int = 0  # influence calibration: 0 = exact cosine; r > 0 = against the validation gradient's top-r directions
    base_policy: str = ""  # a policy whose schedule sets the base T; the action then modulates it per instance
    max_multiplier: float = 2.0  # modulation range: T_i in [T / max_multiplier, T * max_multiplier]

    def validate(self, path: str) -> None:
        if not (0 < self.t_min < self.t_max and math.isfinite(self.t_max)):
            raise ConfigError(f"{path}.t_min / t_max must satisfy 0 < t_min < t_max, got {self.t_min}, {self.t_max}")
        if not self.t_min <= self.default_temperature <= self.t_max:
            raise ConfigError(f"{path}.default_temperature must lie in [t_min, t_max], got {self.default_temperature}")
        if self.reward_interval < 1:
            raise ConfigError(f"{path}.reward_interval must be >= 1, got {self.reward_interval}")
        if self.val_subset < 1:
            raise ConfigError(f"{path}.val_subset must be >= 1, got {self.val_subset}")
        if not (self.max_multiplier >= 1 and math.isfinite(self.max_multiplier)):
            raise ConfigError(f"{path}.max_multiplier must be a finite number >= 1, got {self.max_multiplier}")
        if not (self.credit_scale >= 0 and math.isfinite(self.credit_scale)):
            raise ConfigError(f"{path}.credit_scale must be a finite number >= 0, got {self.credit_scale}")
        for i, st in enumerate(self.students):
            if st.lr is not None and not (st.lr > 0 and math.isfinite(st.lr)):
                raise ConfigError(f"{path}.students[{i}].lr must be a finite number > 0, got {st.lr}")
        for name in self.critic_features:
            if name not in CRITIC_FEATURES:
                raise ConfigError(f"{path}.critic_features: unknown feature {name!r}{did_you_mean(name, list(CRITIC_FEATURES))}; "
                                  f"valid: {', '.join(CRITIC_FEATURES)}")
        if self.critic_features and not self.reward_reference:
            raise ConfigError(f"{path}.critic_features needs {path}.reward_reference (the reference run it reads)")
        if self.run_first_temperature and not self.t_min <= self.run_first_temperature <= self.t_max:
            raise ConfigError(f"{path}.run_first_temperature must be 0 (chosen by the policy) or lie in [t_min, t_max], "
                              f"got {self.run_first_temperature}")
        if not 0.0 <= self.run_probe <= 1.0:
            raise ConfigError(f"{path}.run_probe must be 0 (no probe) or a fraction of one epoch in (0, 1], got {self.run_probe}")
        if self.run_probe and self.run_first_temperature:
            raise ConfigError(f"{path}.run_probe and {path}.run_first_temperature exclude each other: with a probe the "
                              "policy decides every epoch's temperature, the first included")
        if not self.t_min <= self.run_probe_temperature <= self.t_max:
            raise ConfigError(f"{path}.run_probe_temperature must lie in [t_min, t_max], got {self.run_probe_temperature}")
        if self.credit_rank < 0:
            raise ConfigError(f"{path}.credit_rank must be >= 0 (0: exact), got {self.credit_rank}")
        if self.base_policy and self.pair:
            raise ConfigError(f"{path}.pair cannot be combined with {path}.base_policy (a modulator sets one T per instance)")


@dataclass(frozen=True)
class Config:
    """Everything one run needs. Built by :func:`load_config`; frozen after overrides are merged."""

    name: str = "default"
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    # The built-in defaults are the default pair (envs/default.yaml): glyphs, CNN teacher, MLP-256 student.
    teacher: TeacherConfig = field(
        default_factory=lambda: TeacherConfig(model="cnn2d", options={"channels": [32, 64, 128], "convs_per_stage": 1})
    )
    student: ModelConfig = field(default_factory=lambda: ModelConfig(model="mlp", options={"width": 256, "depth": 1}))
    distill: DistillConfig = field(default_factory=DistillConfig)
    env: EnvConfig = field(default_factory=EnvConfig)

    def validate(self) -> None:
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        self.data.validate("data")
        self.teacher.train.validate("teacher.train")
        self.distill.validate("distill")
        self.env.validate("env")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def with_temperature(self, spec: str, seed: int | None = None) -> Config:
        """This config distilling with temperature SPEC ``spec`` (and, if given, another seed)."""
        changes: dict[str, Any] = {"distill": dataclasses.replace(self.distill, temperature=spec)}
        if seed is not None:
            changes["seed"] = seed
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- parsing


def _check_type(value: Any, tp: Any, path: str) -> Any:
    """Check (and lightly coerce: int -> float) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {type(value).__name__}")
        return build_dataclass(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        if math.isnan(float(value)):
            raise ConfigError(f"{path} must not be NaN")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}")
        return value
    return value


def build_dataclass(cls: type, raw: dict[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in hints:
            raise ConfigError(f"unknown config key {full!r}{did_you_mean(str(key), names)}; valid: {', '.join(names)}")
        kwargs[key] = _check_type(value, hints[key], full)
    return cls(**kwargs)


def parse_value(text: str) -> Any:
    """Parse the right-hand side of ``key=value`` as a YAML scalar or flow collection (safe)."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with dotted ``key=value`` overrides applied."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not p for p in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a mapping")
            node = child
        node[parts[-1]] = parse_value(text)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e.__class__.__name__})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    return data


def config_from_dict(raw: dict[str, Any]) -> Config:
    cfg = build_dataclass(Config, raw, "")
    cfg.validate()
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a preset (or the built-in defaults when ``path`` is None) and apply overrides."""
    raw = read_yaml(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides or []))


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
