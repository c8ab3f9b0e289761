"""Online mode (``online:AGENT``): a per-instance modulator learned by RL during one student's run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from rltemp.agents.callbacks import DecisionLogger, StopAfterEpisodes
from rltemp.agents.config import AgentConfig
from rltemp.agents.export import export_policy, modulator_head, policy_meta
from rltemp.agents.sb3 import make_model
from rltemp.agents.vec_env import InstanceVecEnv
from rltemp.config import Config
from rltemp.envs.instance_epoch_env import KDInstanceEpochEnv
from rltemp.errors import ConfigError
from rltemp.kd.forms import Head
from rltemp.kd.pipeline import final_metrics, temperature_summary
from rltemp.models import save_checkpoint
from rltemp.runs import RunDir


def run_online(cfg: Config, agent: AgentConfig, out: str | Path | None = None, progress: bool = True,
               runs_root: str | Path = "runs") -> dict[str, Any]:
    """RLKD's setting: a policy that learns *during* this one distillation (the run is the episode).

    The schedule comes from ``env.base_policy`` (a trained policy, by default the shipped one); the
    per-instance modulator (``agent.modulator``: network and hyperparameters) is learned by RL during
    the run on top of it, on ``rltemp/KDInstanceEpoch-v0`` (its settings are ``env.*``: the
    features, the modulation range, the credit's rank): at the start of every epoch one decision for
    every training instance, from what the instance looked like when the student last saw it,
    credited per instance from the validation pass every run makes anyway. The
    optimiser steps run as in a plain epoch; SB3 acts and learns between epochs (a minibatch is one
    epoch's decisions unless ``batch_size`` is given). A schedule cannot be learned from scratch
    within one run: it gets one decision per epoch. The student is the config's student with seed
    ``cfg.seed``; the result is reported like any distill run (last-epoch test accuracy; wall time
    = the training epochs with their validation, as for every run), and the learned policy is
    saved beside it for transfer.
    """
    from torch.utils.tensorboard import SummaryWriter

    if not cfg.env.base_policy:
        raise ConfigError("online mode learns a modulator on top of a schedule: env.base_policy must name a "
                          "trained policy (default: the shipped one)")
    env = KDInstanceEpochEnv(cfg, progress=progress)
    env.fill_teacher_cache()  # before the clock starts, as a distill run builds its Distiller (and cache) first
    run = RunDir.create("distill", cfg.name, out, {**cfg.to_dict(), "agent": agent.to_dict()}, runs_root)
    finished: dict[str, Any] = {}

    def on_end(e: KDInstanceEpochEnv) -> None:
        finished["wall"] = time.perf_counter() - t0
        d = e.distiller
        finished.update(final_metrics(cfg, d.student, e.teacher, e.data, e.device))
        finished.update(best_val_acc=d.best_val_acc, best_val_epoch=d.best_epoch, epochs=d.epoch,
                        kd_steps=d.step_count)
        save_checkpoint(run.path / "last.pt", d.student, {"arch": cfg.student.model, "epoch": d.epoch})

    venv = InstanceVecEnv(env, on_episode_end=on_end, auto_reset=False)
    venv.set_options([{"student_seed": cfg.seed, "pair": 0}] + [{}] * (venv.num_envs - 1))
    writer = SummaryWriter(str(run.tb))
    model = _modulator_model(cfg, agent, venv, writer, env)
    # one decision figure, after the last epoch (each costs a matplotlib render)
    logger_cb = DecisionLogger(writer, figure_at=cfg.distill.epochs - 1, title=f"{cfg.name} / online / seed {cfg.seed}",
                               t_range=(cfg.env.t_min, cfg.env.t_max))
    t0 = time.perf_counter()
    try:
        model.learn(total_timesteps=env.steps_per_episode() * venv.num_envs + 1,
                    callback=[logger_cb, StopAfterEpisodes(1)])
        model.logger.dump(model.num_timesteps)  # the last update's train/ metrics (SB3 writes them at the next rollout)
    finally:
        writer.close()
    _export(cfg, agent, env, model, run.path)
    wall = finished.pop("wall")
    results = {**finished, "wall_time_s": wall, "method": cfg.distill.temperature, "seed": cfg.seed,
               "student": cfg.student.model, "teacher": cfg.teacher.model, "dataset": cfg.data.name,
               "test_acc_at_best_val": None, "device": str(env.device),
               "temperature": temperature_summary([torch.from_numpy(t) for t in logger_cb.all_t])}
    run.write_results(results)
    venv.close()
    return {**results, "run_dir": str(run.path)}


def _modulator_model(cfg: Config, agent: AgentConfig, venv: InstanceVecEnv, writer: Any,
                     env: KDInstanceEpochEnv) -> Any:
    """The SB3 model of the modulator this run learns (a minibatch is one epoch's decisions by default)."""
    hyper = dict(agent.modulator.hyperparams)
    if agent.algo == "ppo" and "batch_size" not in hyper:
        hyper["batch_size"] = venv.num_envs
    return make_model(agent.algo, agent.modulator.policy, hyper, venv, cfg.seed, writer,
                      "cuda" if env.device.type == "cuda" else "cpu", (cfg.env.t_min, cfg.env.t_max))


def _export(cfg: Config, agent: AgentConfig, env: KDInstanceEpochEnv, model: Any, out: Path) -> None:
    """The learned policy, for transfer: the base policy's schedule head and this run's modulator."""
    base = env.base
    meta = policy_meta(cfg, Head.from_dict(base.meta["schedule"], "env.base_policy"),
                       modulator_head(cfg, agent), {"episodes": 1, "mode": "online",
                                                    "schedule_from": cfg.env.base_policy})
    export_policy(meta, out, schedule_state=base.schedule.state_dict(), modulator_model=model)
