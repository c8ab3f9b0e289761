"""Export trained SB3 heads as one weights-only policy (format: :mod:`rltemp.kd.policy`,
heads: :class:`rltemp.kd.forms.Head`).

``policy.pt`` is a plain state dict (``schedule.*``, ``modulator.*``; ``torch.load(...,
weights_only=True)``), ``policy.json`` says what the policy needs (feature sets, temperature
range, networks, algorithm, training, versions) and carries a behaviour *fingerprint*
(:func:`write_fingerprint`). SB3's own files are kept beside them for SB3 users
(``schedule.zip``, ``modulator.zip``); rltemp never reads them — SB3's loader unpickles.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from rltemp.agents.config import AgentConfig
from rltemp.config import Config
from rltemp.kd.forms import ACTION_MAPPING, Head, Modulator, Probe, ProbeSchedule
from rltemp.kd.policy import FORMAT, actor_state_from_sb3, load_policy
from rltemp.paths import atomic_write_bytes

# A tiny, seconds-long run on which a policy's decisions are recorded when it is exported; a test
# re-runs it on the shipped policies, so a policy whose behaviour the code no longer reproduces
# (changed features, action mapping, training loop) is caught.
FINGERPRINT_RUN = {
    "config": "envs/mnist1d.yaml",
    "overrides": ["data.options.num_samples=600", "teacher.options.channels=8", "teacher.train.epochs=2",
                  "teacher.train.batch_size=32", "student.options.width=16", "distill.epochs=4",
                  "distill.batch_size=32", "device=cpu", "seed=0"],
}


def schedule_head(cfg: Config, agent: AgentConfig) -> Head:
    """The ``policy.json`` head of the schedule that ``agent`` trains on ``cfg``."""
    env = cfg.env
    return Head(ProbeSchedule.decision, agent.algo, list(env.run_features), list(agent.policy.net_arch),
                agent.policy.activation, reward_reference=env.reward_reference,
                probe=Probe(env.run_probe, env.run_probe_temperature))


def modulator_head(cfg: Config, agent: AgentConfig) -> Head:
    """The ``policy.json`` head of online mode's modulator."""
    net = agent.modulator.policy
    return Head(Modulator.decision, agent.algo, list(cfg.env.features), list(net.net_arch), net.activation,
                max_multiplier=cfg.env.max_multiplier)


def policy_meta(cfg: Config, schedule: Head, modulator: Head | None, trained_on: dict[str, Any]) -> dict[str, Any]:
    """``policy.json`` without its fingerprint: the heads, the temperature range, the training, versions."""
    import gymnasium
    import stable_baselines3

    import rltemp

    env = cfg.env
    pairs = [m.name for m in env.pool] or [cfg.name]
    return {
        "format": FORMAT, "t_min": env.t_min, "t_max": env.t_max,
        "action_mapping": ACTION_MAPPING,
        "schedule": schedule.to_dict(), "modulator": modulator.to_dict() if modulator is not None else None,
        "trained_on": {"dataset": cfg.data.name, "teacher": cfg.teacher.model, "student": cfg.student.model,
                       "pairs": pairs,
                       "epochs": cfg.distill.epochs, **trained_on},
        "versions": {"rltemp": rltemp.__version__, "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__},
    }


def _head_state(model: Any, head: Head, prefix: str,
                obs_norm: tuple[Any, Any] | None = None) -> dict[str, torch.Tensor]:
    state = actor_state_from_sb3(model.policy.state_dict(), len(head.net_arch))
    if obs_norm is not None:  # trained on (x - mean) / std: W ((x - mean) / std) + b = (W / std) x + (b - W mean / std)
        mean, std = (torch.as_tensor(v, dtype=state["net.0.weight"].dtype) for v in obs_norm)
        w = state["net.0.weight"] / std
        state["net.0.bias"] = state["net.0.bias"] - w @ mean
        state["net.0.weight"] = w
    return {f"{prefix}.{k}": v.detach().cpu() for k, v in state.items()}


def export_policy(meta: dict[str, Any], out_dir: Path, schedule_model: Any = None,
                  schedule_state: dict[str, torch.Tensor] | None = None, modulator_model: Any = None,
                  schedule_obs_norm: tuple[Any, Any] | None = None) -> None:
    """Write ``policy.pt`` + ``policy.json`` (+ SB3 zips) into ``out_dir``. The schedule head comes
    from ``schedule_model`` or, when it was trained elsewhere (online mode's base), ``schedule_state``
    (ActorNet keys); ``schedule_obs_norm``: the (mean, std) per observation column that
    ``schedule_model`` was trained on, folded into its first layer so that the exported head reads
    raw features."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if schedule_model is not None:
        head = Head.from_dict(meta["schedule"], "schedule")
        state = _head_state(schedule_model, head, "schedule", schedule_obs_norm)
    else:
        state = {f"schedule.{k}": v.detach().cpu() for k, v in (schedule_state or {}).items()}
    if modulator_model is not None:
        state.update(_head_state(modulator_model, Head.from_dict(meta["modulator"], "modulator"), "modulator"))
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(out_dir / "policy.pt", buf.getvalue())
    atomic_write_bytes(out_dir / "policy.json", (json.dumps(meta, indent=2) + "\n").encode())
    for name, model in (("schedule", schedule_model), ("modulator", modulator_model)):
        if model is not None:
            tmp = out_dir / f".tmp-{name}.zip"
            model.save(tmp)
            tmp.replace(out_dir / f"{name}.zip")
    load_policy(out_dir)  # what was written loads back, weights-only


def fingerprint(policy_dir: str | Path) -> dict[str, Any]:
    """The policy's decisions on :data:`FINGERPRINT_RUN`: what its decision read (the probe's
    statistics), the schedule network's own decision on it (``head_action``, even where the support
    replaces it by the fallback), the schedule temperature of every epoch and the mean / std of the
    per-instance temperatures, plus the run's last-epoch test accuracy."""
    from rltemp.config import load_config
    from rltemp.kd.pipeline import run_distill

    cfg = load_config(FINGERPRINT_RUN["config"], FINGERPRINT_RUN["overrides"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            res = run_distill(cfg.with_temperature(f"policy:{Path(policy_dir).resolve()}"), out=Path(tmp) / "run",
                              progress=False)
    finally:
        torch.set_num_threads(threads)
    policy = load_policy(policy_dir)
    read = torch.tensor([res["observed"][0][f] for f in policy.schedule_features])
    return {**FINGERPRINT_RUN, "observed": res["observed"], "head_action": policy.head_action(read).tolist(),
            "schedule": res["schedule"],
            "temperature": res["temperature"],
            "test_acc": res["test_acc"], "torch": torch.__version__}


def write_fingerprint(policy_dir: str | Path) -> dict[str, Any]:
    path = Path(policy_dir) / "policy.json"
    meta = json.loads(path.read_text())
    meta["fingerprint"] = fingerprint(policy_dir)
    atomic_write_bytes(path, (json.dumps(meta, indent=2) + "\n").encode())
    return meta["fingerprint"]
