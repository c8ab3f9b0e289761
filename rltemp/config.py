"""Typed, frozen run configuration: YAML presets (``yaml.safe_load`` only) plus ``key=value`` overrides.

A preset is a YAML mapping whose layout mirrors :class:`Config`. Overrides use dotted paths
(``distill.epochs=5``, ``student.options.width=128``); values are parsed as YAML scalars/lists with
``safe_load``. Unknown keys and ill-typed values fail with a :class:`ConfigError` that names the field.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
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
    # kd_weight unused; warmup in epochs of the reference 240-epoch recipe, scaled by epochs / 240), or the
    # language-model divergences rkl (reverse KL, MiniLLM), skl / srkl (skew KL / skew reverse KL, DistiLLM)
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


LOSSES = ("kd", "dkd", "rkl", "skl", "srkl")


@dataclass(frozen=True)
class ModelConfig:
    """A model from the registry: its name and constructor options."""

    model: str = "mlp"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TeacherConfig(ModelConfig):
    """The teacher: a model, a weights file (weights-only, strict) or how to train it when none is given."""

    checkpoint: str | None = None
    train: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0  # the cached teacher is shared by all student seeds
    # dataset options for the teacher's own training data, over data.options (e.g. {role: teacher}
    # for a dataset that gives the teacher a larger, disjoint training subset); empty: the student's data
    data_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolMember:
    """One training pair of ``env.pool``: a name and ``key=value`` overrides of the base config."""

    name: str = ""
    overrides: list[str] = field(default_factory=list)


POOL_SECTIONS = ("data", "teacher", "student", "distill")
# the shipped policy's observation of a probe: scale-free statistics against the teacher (rltemp.kd.features)
DEFAULT_RUN_FEATURES = ["rel_acc", "agreement", "kl_teacher", "student_entropy", "teacher_entropy"]
# online mode's per-instance observation: RLKD's state (student and teacher top-1, student margin)
DEFAULT_INSTANCE_FEATURES = ["p_s_top1", "p_t_top1", "margin_s"]


@dataclass(frozen=True)
class EnvConfig:
    """The KD environments (:mod:`rltemp.envs`): the schedule env (one decision per run, from a probe)
    and the per-instance env of online mode (one decision per training instance and epoch, on top of
    a schedule)."""

    t_min: float = 1.0
    t_max: float = 10.0
    reward_scale: float = 100.0  # reward = scale · Δ validation accuracy (over the reference run's)
    # a pool of training pairs, each this config with its own overrides (data, teacher, student, distill:
    # e.g. a class subset, a weaker teacher, a CNN student, a learning rate); empty: this config's pair alone
    pool: list[PoolMember] = field(default_factory=list)
    # the training students' seeds (never the benchmarks' held-out 0..999); empty: a fresh seed per episode
    seeds: list[int] = field(default_factory=lambda: list(range(1000, 1016)))
    # held-out training students for selecting the policy (agent.eval_every): every pair with these seeds
    eval_seeds: list[int] = field(default_factory=list)
    # reward the gain over the reference run of the same student (rltemp.envs.references, cached): grid
    # (the best constant T of {1, 2, 4, 8} on its validation: only beating a grid earns), a SPEC such as
    # fixed:4, or "" (none)
    reward_reference: str = "grid"
    # the schedule (rltemp/KDRunSchedule-v0): one decision per run, before it, from a probe — a throwaway
    # copy of the student distilled for run_probe (a fraction of one epoch) at run_probe_temperature
    run_features: list[str] = field(default_factory=lambda: list(DEFAULT_RUN_FEATURES))
    run_probe: float = 1.0
    run_probe_temperature: float = 4.0
    # a trained schedule's support: a student whose probe lies outside the range its training students'
    # probes spanned runs at this constant temperature (chosen on glyphs students outside the shipped
    # policy's support: benchmarks/RESULTS.md, "A support guard")
    support_fallback: float = 1.0
    # per-instance env (rltemp/KDInstanceEpoch-v0, online mode): what each instance's row holds, the schedule
    # it modulates ("": none, the action is the temperature), the modulation range and the credit's rank
    features: list[str] = field(default_factory=lambda: list(DEFAULT_INSTANCE_FEATURES))
    base_policy: str = "default"
    max_multiplier: float = 2.0  # T_i in [T / max_multiplier, T * max_multiplier]
    credit_rank: int = 16  # influence credit against the validation gradient's top-r directions; 0 = exact

    def validate(self, path: str) -> None:
        if not (0 < self.t_min < self.t_max and math.isfinite(self.t_max)):
            raise ConfigError(f"{path}.t_min / t_max must satisfy 0 < t_min < t_max, got {self.t_min}, {self.t_max}")
        if not (self.reward_scale > 0 and math.isfinite(self.reward_scale)):
            raise ConfigError(f"{path}.reward_scale must be a finite number > 0, got {self.reward_scale}")
        if not (self.max_multiplier >= 1 and math.isfinite(self.max_multiplier)):
            raise ConfigError(f"{path}.max_multiplier must be a finite number >= 1, got {self.max_multiplier}")
        if set(self.eval_seeds) & set(self.seeds):
            raise ConfigError(f"{path}.eval_seeds must be held out of {path}.seeds, both have "
                              f"{sorted(set(self.eval_seeds) & set(self.seeds))}")
        if any(0 <= s < 1000 for s in [*self.seeds, *self.eval_seeds]):
            raise ConfigError(f"{path}.seeds / eval_seeds: seeds 0..999 are the benchmarks' held-out students")
        names = [m.name for m in self.pool]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"{path}.pool: every pair needs a distinct name")
        for i, m in enumerate(self.pool):
            bad = [o for o in m.overrides if o.split("=", 1)[0].strip().split(".")[0] not in POOL_SECTIONS]
            if bad:
                raise ConfigError(f"{path}.pool[{i}] ({m.name}): override {bad[0]!r} is not of a pair's sections "
                                  f"({', '.join(POOL_SECTIONS)})")
        if not 0.0 < self.run_probe <= 1.0:
            raise ConfigError(f"{path}.run_probe must be a fraction of one epoch in (0, 1], got {self.run_probe}")
        if not self.t_min <= self.run_probe_temperature <= self.t_max:
            raise ConfigError(f"{path}.run_probe_temperature must lie in [t_min, t_max], got "
                              f"{self.run_probe_temperature}")
        if not self.t_min <= self.support_fallback <= self.t_max:
            raise ConfigError(f"{path}.support_fallback must lie in [t_min, t_max], got {self.support_fallback}")
        if self.credit_rank < 0:
            raise ConfigError(f"{path}.credit_rank must be >= 0 (0: exact), got {self.credit_rank}")


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
        seeds = {"seed": [self.seed], "teacher.seed": [self.teacher.seed], "data.split_seed": [self.data.split_seed],
                 "env.seeds": self.env.seeds, "env.eval_seeds": self.env.eval_seeds}
        for name, values in seeds.items():
            bad = [s for s in values if not 0 <= s < SEED_LIMIT]
            if bad:
                raise ConfigError(f"{name} must be in [0, 2^63), got {bad[0]}")
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


SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
SEED_LIMIT = 2**63  # torch's generators take 64-bit seeds


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
        if isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; it is the way a learning rate is written
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
        data = yaml.safe_load(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}); save the preset as UTF-8") from None
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


def pool_configs(cfg: Config) -> list[tuple[str, Config]]:
    """The training pairs of ``cfg.env.pool`` as full configs (each with an empty pool), or
    ``[(cfg.name, cfg)]`` without a pool; a bad override names its pair."""
    if not cfg.env.pool:
        return [(cfg.name, cfg)]
    raw = cfg.to_dict()
    raw["env"]["pool"] = []
    out = []
    for i, member in enumerate(cfg.env.pool):
        try:
            out.append((member.name, config_from_dict(apply_overrides(raw, list(member.overrides)))))
        except ConfigError as e:
            raise ConfigError(f"env.pool[{i}] ({member.name}): {e}") from None
    return out


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
