"""Train a temperature policy's schedule head with stable-baselines3 (``rltemp train-policy``).

``train_policy`` writes ``runs/train-policy-<name>-<ts>/``:

- ``config.yaml`` + ``agent.yaml``, ``command.txt``;
- ``checkpoints/last.pt`` — every ``agent.checkpoint_every`` rollouts: SB3's parameter *and
  optimiser* state dicts (``model.get_parameters()``), counters, wall time and the per-episode
  history; tensors and plain values only, loaded weights-only by ``--resume``;
- ``policy.pt`` + ``policy.json`` (the transferable policy), ``schedule.zip`` (SB3's own file, for
  SB3 users; rltemp never unpickles it);
- ``results.json`` (last) and the TensorBoard event file (reference curves of ``env.reward_reference``
  are cached once for all trainings in ``$RLTEMP_CACHE/references``).

PPO or A2C on ``rltemp/KDRunSchedule-v0`` (one decision per student run, from a probe: a
contextual bandit), one student per worker (``jobs``: SB3's ``SubprocVecEnv``, or Ray actors), each
rollout ``episodes_per_rollout`` whole episodes per worker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from rltemp.agents.callbacks import Checkpoint, HeldOutSelection, PerPairAdvantages, ScheduleHistory
from rltemp.agents.config import AgentConfig, load_agent
from rltemp.agents.export import export_policy, policy_meta, schedule_head, write_fingerprint
from rltemp.agents.factories import schedule_vec_env
from rltemp.agents.sb3 import make_model, restore
from rltemp.config import Config, dump_yaml, load_config, pool_configs
from rltemp.envs.run_env import KDRunScheduleEnv
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.forms import Support, schedule_form
from rltemp.paths import atomic_write_bytes
from rltemp.runs import RunDir

log = logging.getLogger(__name__)
BACKENDS = ("process", "ray")


def _threads_one() -> Callable[[], None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # numbers independent of --jobs: every env computes on one thread
    return lambda: torch.set_num_threads(n)


def _vec_env(cfg: Config, agent: AgentConfig, jobs: int, backend: str, address: str | None,
             ckpt: dict[str, Any] | None) -> tuple[VecEnv, VecNormalize | None, Callable[[], None]]:
    """The training VecEnv (worker processes or Ray actors), wrapped in ``VecNormalize`` when
    ``agent.policy.normalize_obs`` (its statistics restored from ``ckpt``), and a shutdown function."""
    shutdown: Callable[[], None] = lambda: None  # noqa: E731
    if backend == "ray":
        from rltemp.agents.ray_envs import ray_schedule_vec_env

        ray_venv, shutdown = ray_schedule_vec_env(cfg, jobs, address)
        venv: VecEnv = VecMonitor(ray_venv)
    else:
        venv = schedule_vec_env(cfg, jobs)
    norm = None
    if agent.policy.normalize_obs:  # running mean / std of every column; no clipping, so export can fold it exactly
        norm = venv = VecNormalize(venv, norm_obs=True, norm_reward=False, clip_obs=float("inf"))
        saved = (ckpt or {}).get("history", {}).get("obs_rms")
        if saved:
            norm.obs_rms.mean, norm.obs_rms.var = np.array(saved["mean"]), np.array(saved["var"])
            norm.obs_rms.count = float(saved["count"])
    return venv, norm, shutdown


def _obs_norm(norm: VecNormalize | None) -> dict[str, Any] | None:
    """The statistics the head is trained on now, as policy.json lists them (schedule.zip, SB3's file,
    expects (x - mean) / std)."""
    if norm is None:
        return None
    return {"mean": norm.obs_rms.mean.tolist(), "std": np.sqrt(norm.obs_rms.var + norm.epsilon).tolist(),
            "observations": float(norm.obs_rms.count), "folded": "into policy.pt's first layer"}


def export_schedule(cfg: Config, agent: AgentConfig, model: Any, norm: VecNormalize | None, out_dir: Path,
                    trained_on: dict[str, Any], support: Support | None = None) -> None:
    """Export ``model``'s schedule head as a policy (``policy.pt`` + ``policy.json``) into ``out_dir``,
    the current observation statistics folded into its first layer, with its training ``support``."""
    obs_norm = _obs_norm(norm)
    head = dataclasses.replace(schedule_head(cfg, agent), normalize_obs=obs_norm, support=support)
    export_policy(policy_meta(cfg, head, None, trained_on), out_dir, schedule_model=model,
                  schedule_obs_norm=None if obs_norm is None else (obs_norm["mean"], obs_norm["std"]))


def _selection(cfg: Config, agent: AgentConfig, jobs: int, model_norm: Callable[[], tuple[Any, Any]], run: RunDir,
               writer: Any, history: list[dict[str, Any]],
               support: Support | None) -> tuple[HeldOutSelection | None, Callable[[], None]]:
    """The held-out selection callback (``agent.eval_every`` > 0, ``env.eval_seeds``) and its closer."""
    if not agent.eval_every:
        return None, lambda: None
    if not cfg.env.eval_seeds:
        raise ConfigError("agent.eval_every needs env.eval_seeds: the held-out training students to select on")
    eval_cfg = cfg.replace(env=dataclasses.replace(cfg.env, seeds=list(cfg.env.eval_seeds), eval_seeds=[]))
    venv = schedule_vec_env(eval_cfg, min(jobs, len(cfg.env.eval_seeds)))
    students = [(i, s) for i in range(len(pool_configs(cfg))) for s in cfg.env.eval_seeds]

    def on_best() -> None:
        model, norm = model_norm()
        export_schedule(cfg, agent, model, norm, run.path / "best",
                        {"timesteps": int(model.num_timesteps), "selected_on": "held-out training students"}, support)

    def normalize(obs: np.ndarray) -> np.ndarray:
        norm = model_norm()[1]
        return norm.normalize_obs(obs) if norm is not None else obs

    return HeldOutSelection(venv, students, agent.eval_every, on_best, writer, normalize, history), venv.close


def train_schedule(cfg: Config, agent: AgentConfig, run: RunDir, writer: Any, jobs: int, progress: bool,
                   ckpt: dict[str, Any] | None, backend: str = "process", address: str | None = None,
                   support: Support | None = None) -> tuple[Any, dict[str, Any]]:
    """Train the schedule head (resuming from ``ckpt``); returns the SB3 model and what it did. With
    held-out selection, ``best/`` holds the policy that scored best on the held-out training students.
    (Longer than 60 lines: it wires the environment, the model, four callbacks and their saved state.)"""
    form = schedule_form(schedule_head(cfg, agent), cfg.env.t_min, cfg.env.t_max, "agent")
    venv, norm, shutdown = _vec_env(cfg, agent, jobs, backend, address, ckpt)
    history = (ckpt or {}).get("history", {})
    close_eval: Callable[[], None] = lambda: None  # noqa: E731
    try:
        steps = KDRunScheduleEnv.steps  # decisions per episode
        model = make_model(agent.algo, agent.policy, agent.hyperparams, venv, cfg.seed, writer, "cpu",
                           (cfg.env.t_min, cfg.env.t_max), n_steps=agent.episodes_per_rollout * steps)
        done = 0
        if ckpt is not None:
            restore(model, ckpt, "cpu")
            done = int(ckpt["episodes"])
            log.info("resuming the schedule training after %d episodes", done)
        venv.seed(cfg.seed + 7919 * done)  # fresh students for the episodes still to run
        hist = ScheduleHistory(writer, form, history.get("schedule", []))
        scale = [PerPairAdvantages(history.get("advantage_rms"))] if agent.per_pair_advantages else []
        select, close_eval = _selection(cfg, agent, jobs, lambda: (model, norm), run, writer,
                                        history.get("selection", []), support)
        if select is not None:
            select.rollouts = int(history.get("rollouts", 0))

        def state() -> dict[str, Any]:
            out: dict[str, Any] = {"schedule": hist.episodes}
            if scale:
                out["advantage_rms"] = scale[0].state
            if select is not None:
                out["selection"], out["rollouts"] = select.history, select.rollouts
            if norm is not None:
                rms = norm.obs_rms
                out["obs_rms"] = {"mean": rms.mean.tolist(), "var": rms.var.tolist(), "count": float(rms.count)}
            return out

        cb = Checkpoint(run.path / "checkpoints" / "last.pt", "schedule", agent.checkpoint_every, agent.episodes,
                        done, progress, float((ckpt or {}).get("wall_time_s", 0.0)), state, per_episode=venv.num_envs)
        remaining = agent.episodes - done
        callbacks = [hist, *scale, *([select] if select is not None else []), cb]
        if remaining > 0:
            model.learn(total_timesteps=remaining * steps, callback=callbacks, reset_num_timesteps=ckpt is None)
    finally:
        venv.close()
        close_eval()
        shutdown()
    return model, {"episodes": hist.episodes, "wall_time_s": cb.wall_time_s(), "timesteps": int(model.num_timesteps),
                   "norm": norm, "selection": select.history if select is not None else None}


def _open_run(cfg: Config, agent: AgentConfig, out: str | Path | None, resume: str | Path | None,
              runs_root: str | Path) -> tuple[RunDir, dict[str, Any] | None]:
    """The run folder (new, or the one to resume) and its checkpoint, if any."""
    if resume is not None:
        run = RunDir(Path(resume))
        ck = run.path / "checkpoints" / "last.pt"
        return run, torch.load(ck, map_location="cpu", weights_only=True) if ck.exists() else None
    run = RunDir.create("train-policy", cfg.name, out, cfg.to_dict(), runs_root)
    atomic_write_bytes(run.path / "agent.yaml", dump_yaml(agent.to_dict()).encode())
    return run, None


def train_policy(cfg: Config, agent: AgentConfig, out: str | Path | None = None, resume: str | Path | None = None,
                 progress: bool = True, runs_root: str | Path = "runs", jobs: int = 2, backend: str = "process",
                 address: str | None = None) -> dict[str, Any]:
    """Train ``agent`` on episodes of fresh students of ``cfg``; returns ``results.json``'s content.

    ``jobs``: students trained at once (worker processes, or Ray actors with ``backend="ray"``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "ray":
        from rltemp.agents.ray_cluster import require_ray

        require_ray()
    from torch.utils.tensorboard import SummaryWriter

    env = KDRunScheduleEnv(cfg, progress=progress)  # every teacher once, before worker processes read the cache
    run, ckpt = _open_run(cfg, agent, out, resume, runs_root)
    restore_threads = _threads_one()
    writer = SummaryWriter(str(run.tb))
    try:
        support = training_support(env)  # on one thread, as the workers probe
        del env
        model, sched = train_schedule(cfg, agent, run, writer, jobs, progress, ckpt, backend, address, support)
        trained_on = {"episodes": agent.episodes, "wall_time_s": sched["wall_time_s"], "command": _command(run)}
        selection = sched["selection"]
        if selection is None:  # the final policy
            export_schedule(cfg, agent, model, sched["norm"], run.path, trained_on, support)
        else:  # the final one in last/, the one chosen on the held-out training students at the top
            export_schedule(cfg, agent, model, sched["norm"], run.path / "last", trained_on, support)
            best = max(selection, key=lambda h: h["mean_return"])
            meta = json.loads((run.path / "best" / "policy.json").read_text())
            meta["trained_on"] = {**trained_on, "selected": {"at_timesteps": best["timesteps"],
                                                             "held_out_mean_return": best["mean_return"],
                                                             "evaluations": len(selection)}}
            for name in ("policy.pt", "schedule.zip"):
                shutil.copyfile(run.path / "best" / name, run.path / name)
            atomic_write_bytes(run.path / "policy.json", (json.dumps(meta, indent=2) + "\n").encode())
        episodes = sched["episodes"]
        results = {
            "algo": agent.algo, "episodes": agent.episodes, "jobs": jobs, "backend": backend,
            "kd_steps": sum(e["kd_steps"] for e in episodes), "wall_time_s": sched["wall_time_s"],
            "resumed": ckpt is not None,
            "episode_returns": [e["return"] for e in episodes],
            "episode_final_val_acc": [e["final_val_acc"] for e in episodes],
            "schedule_episodes": episodes, "selection": selection,
        }
        write_fingerprint(run.path)
    finally:
        writer.close()
        restore_threads()
    run.write_results(results)
    return {**results, "run_dir": str(run.path)}


def training_support(env: KDRunScheduleEnv) -> Support | None:
    """The policy's training support (:class:`~rltemp.kd.forms.Support`): the range of each probe
    feature over the pool's training students (every pair × ``env.seeds``, probed as the policy
    probes), and ``env.support_fallback``; ``None`` without fixed training seeds."""
    if not env.ecfg.seeds:
        return None
    log.info("support: probing %d training students", len(env.pairs) * len(env.ecfg.seeds))
    return env.support(env.ecfg.support_fallback)


def _command(run: RunDir) -> str:
    p = run.path / "command.txt"
    return p.read_text().strip() if p.exists() else ""


def resume_policy(run_dir: str | Path, progress: bool = True, jobs: int = 2, backend: str = "process",
                  address: str | None = None) -> dict[str, Any]:
    p = Path(run_dir)
    if not (p / "config.yaml").exists() or not (p / "agent.yaml").exists():
        raise RltempError(f"{p} is not a train-policy run folder (config.yaml and agent.yaml expected)")
    if (p / "results.json").exists():
        raise RltempError(f"{p} is already complete (results.json exists)")
    return train_policy(load_config(p / "config.yaml"), load_agent(p / "agent.yaml"), resume=p, progress=progress,
                        jobs=jobs, backend=backend, address=address)
