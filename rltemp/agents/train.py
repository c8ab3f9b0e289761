"""Train a factorised temperature policy (:mod:`rltemp.kd.policy`) with stable-baselines3; online mode.

``train_policy`` writes ``runs/train-policy-<name>-<ts>/``:

- ``config.yaml`` + ``agent.yaml``, ``command.txt``;
- ``checkpoints/last.pt`` — every ``agent.checkpoint_every`` rollouts: the stage, SB3's parameter
  *and optimiser* state dicts (``model.get_parameters()``), counters, wall time and the per-episode
  history; tensors and plain values only, loaded weights-only by ``--resume``;
- ``schedule/policy.{pt,json}`` after stage 1 (the frozen base of stage 2), and at the end
  ``policy.pt`` + ``policy.json`` (the transferable policy), ``schedule.zip`` / ``modulator.zip``
  (SB3's own files, for SB3 users; rltemp never unpickles them);
- ``results.json`` (last) and the TensorBoard event file (reference curves of ``env.reward_reference``
  are cached once for all trainings in ``$RLTEMP_CACHE/references``).

Stage 1 (schedule): PPO/A2C/SAC on ``rltemp/KDSchedule-v0`` (or, with ``agent.decision: run``,
``rltemp/KDRunSchedule-v0``: one or two decisions per run), one student per worker process
(``jobs``; SB3's ``SubprocVecEnv``), each rollout ``episodes_per_rollout`` whole episodes per
worker, so rollouts end on episode boundaries and γ = 1 telescopes each episode's rewards.
Stage 2 (modulator, optional): the same algorithm on ``rltemp/KDTemperature-v0`` (the B instances of
a batch as B VecEnv slots) or, with ``agent.modulator.cadence: epoch``, on ``rltemp/KDInstanceEpoch-v0``
(the N training instances as N slots, one step per epoch), with ``env.base_policy`` = the stage-1
schedule (:class:`~rltemp.agents.vec_env.InstanceVecEnv`) and per-instance credit from ``env.calibration``.
Online mode (:func:`run_online`) is stage 2 at epoch cadence within one student's run.

Logging has one path: rltemp owns the run's ``SummaryWriter`` (one event file in the run folder);
SB3's logger is pointed at it through :class:`WriterOutput`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure, HParam, KVWriter, Logger
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor, VecNormalize

from rltemp.agents.config import (
    ON_POLICY,
    SCHEDULABLE,
    AgentConfig,
    PolicyNetConfig,
    algo_class,
    linear_start,
    load_agent,
)
from rltemp.agents.export import export_policy
from rltemp.agents.vec_env import InstanceVecEnv
from rltemp.config import Config, config_from_dict, dump_yaml, load_config
from rltemp.envs.kd_env import KDTemperatureEnv
from rltemp.envs.schedule_env import KDScheduleEnv
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.policy import ACTIVATIONS, temperature_to_action
from rltemp.kd.tblog import (
    Decisions,
    decision_figure,
    log_decisions,
    schedule_figure,
    sensitivity_figure,
    write_hparams,
)
from rltemp.paths import atomic_write_bytes
from rltemp.runs import RunDir

log = logging.getLogger(__name__)


class WriterOutput(KVWriter):
    """An SB3 logger output that writes into rltemp's run writer (scalars, histograms, figures, hparams)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...] | None], step: int = 0) -> None:
        for key, value in key_values.items():
            excluded = key_excluded.get(key)
            if excluded is not None and "tensorboard" in excluded:
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), step)
            elif isinstance(value, torch.Tensor | np.ndarray):
                self.writer.add_histogram(key, value, step)
            elif isinstance(value, Figure):
                self.writer.add_figure(key, value.figure, step, close=value.close)
            elif isinstance(value, HParam):
                write_hparams(self.writer, value.hparam_dict, value.metric_dict)
        self.writer.flush()

    def close(self) -> None:  # the writer belongs to the run, which closes it
        pass


def build_model(algo: str, net: PolicyNetConfig, hyperparams: dict[str, Any], venv: VecEnv, seed: int, writer: Any,
                device: str, t_range: tuple[float, float], n_steps: int | None = None,
                episode_length: int | None = None, actor_dims: int | None = None):  # noqa: ANN201
    """An SB3 model with an ``MlpPolicy`` of ``net``'s shape on ``venv``, logging into ``writer``.

    ``n_steps`` (on-policy algorithms) is set by rltemp so that rollouts hold whole episodes; with
    generalised state-dependent exploration (``use_sde``, Raffin et al. 2022) the exploration
    matrix is drawn once per episode of ``episode_length`` decisions unless ``sde_sample_freq`` says
    otherwise, so each episode explores one coherent schedule instead of per-epoch jitter.
    ``actor_dims`` below the observation's width: the actor reads only the first ``actor_dims``
    columns, the critic all of them; ``net.tanh_mean``: the Gaussian's mean is bounded by ``tanh``
    (both: :class:`~rltemp.agents.policies.ScheduleActorCriticPolicy`)."""
    cls = algo_class(algo)
    act = ACTIVATIONS[net.activation]
    arch = list(net.net_arch)
    kwargs = {"net_arch": {"pi": arch, "qf": arch} if algo == "sac" else {"pi": arch, "vf": arch},
              "activation_fn": act, "log_std_init": net.log_std_init}
    hyperparams = dict(hyperparams)
    for key in SCHEDULABLE:  # "lin_<start>": SB3's own linear schedule, from start (progress 0) to 0 (the end)
        start = linear_start(hyperparams.get(key))
        if start is not None:
            hyperparams[key] = LinearSchedule(start, 0.0, 1.0)
    if n_steps is not None and algo in ON_POLICY:
        hyperparams["n_steps"] = n_steps
    if episode_length is not None and hyperparams.get("use_sde") and "sde_sample_freq" not in hyperparams:
        hyperparams["sde_sample_freq"] = episode_length  # one exploration draw per episode: a coherent schedule
    rollout = hyperparams.get("n_steps", 0) * venv.num_envs
    if algo == "ppo" and rollout and hyperparams.get("batch_size", 64) > rollout:
        hyperparams["batch_size"] = rollout  # a minibatch cannot exceed the rollout (short budgets)
    if algo == "ppo" and rollout == 1 and hyperparams.get("normalize_advantage", True):
        raise ConfigError("a PPO rollout of a single decision cannot normalise its advantages: raise "
                          "agent.episodes_per_rollout or --jobs (one decision per episode here)")
    policy: Any = "MlpPolicy"
    asymmetric = actor_dims is not None and actor_dims < venv.observation_space.shape[0]
    if asymmetric or net.tanh_mean:
        if algo not in ON_POLICY:
            what = "env.critic_features need" if asymmetric else "agent.policy.tanh_mean needs"
            raise ConfigError(f"{what} an actor-critic algorithm ({', '.join(ON_POLICY)}), not {algo}")
        from rltemp.agents.policies import ScheduleActorCriticPolicy

        policy = ScheduleActorCriticPolicy
        kwargs.update(actor_dims=actor_dims if asymmetric else None, tanh_mean=net.tanh_mean)
    model = cls(policy, venv, policy_kwargs=kwargs, seed=seed, device=device, verbose=0, **hyperparams)
    model.set_logger(Logger(folder=None, output_formats=[WriterOutput(writer)] if writer is not None else []))
    if net.init_temperature is not None:
        init_mean_action(model, algo, net.init_temperature, *t_range, tanh=algo == "sac" or net.tanh_mean)
    return model


def init_mean_action(model: Any, algo: str, temperature: float | list[float], t_min: float, t_max: float,
                     tanh: bool = False) -> None:
    """Shrink the action head's weights and set its bias so that the mean action maps to
    ``temperature`` everywhere (one per output when a list; the exploration noise stays as
    configured); ``tanh``: the head's output passes through tanh (SAC, ``tanh_mean``)."""
    head = model.policy.actor.mu if algo == "sac" else model.policy.action_net
    temps = [float(t) for t in temperature] if isinstance(temperature, list) else [float(temperature)] * head.bias.numel()
    if len(temps) != head.bias.numel():
        raise ConfigError(f"agent.policy.init_temperature has {len(temps)} values; this policy's head has "
                          f"{head.bias.numel()} output(s): give one number, or one per output")
    for t in temps:
        if not t_min <= t <= t_max:
            raise RltempError(f"agent.policy.init_temperature={t} lies outside [t_min, t_max] = [{t_min}, {t_max}]")
    a = np.array([temperature_to_action(t, t_min, t_max) for t in temps])
    with torch.no_grad():
        head.weight.mul_(0.01)
        head.bias.copy_(torch.as_tensor(np.arctanh(np.clip(a, -0.999, 0.999)) if tanh else a, dtype=head.bias.dtype))


# --------------------------------------------------------------------------- environments


def _schedule_env_factory(cfg_dict: dict[str, Any], seeds: list[int], worker: bool = False,
                          decision: str = "epoch") -> Callable[[], Any]:
    def make() -> KDScheduleEnv:
        if worker:  # a worker process: one core per student (in-process envs run under train_policy's setting)
            torch.set_num_threads(1)
        raw = {**cfg_dict, "env": {**cfg_dict["env"], "seeds": seeds}}
        if decision == "run":
            from rltemp.envs.run_env import KDRunScheduleEnv

            return KDRunScheduleEnv(config_from_dict(raw))
        return KDScheduleEnv(config_from_dict(raw))

    return make


def seed_slices(cfg: Config, workers: int) -> list[list[int]]:
    """Each worker's share of ``env.seeds`` (seeds[i::workers]); empty lists without a pool (each
    worker then draws fresh seeds from its own seeded RNG)."""
    pool = list(cfg.env.seeds)
    if pool and len(pool) < workers:
        raise ConfigError(f"env.seeds has {len(pool)} seeds for {workers} workers; give at least one per worker")
    return [pool[i::workers] if pool else [] for i in range(workers)]


def schedule_vec_env(cfg: Config, jobs: int, decision: str = "epoch") -> VecEnv:
    """``jobs`` schedule envs (one student each, seeds split by :func:`seed_slices`), in worker
    processes when ``jobs`` > 1; ``decision``: per epoch or per run (``agent.decision``)."""
    raw = cfg.to_dict()
    fns = [_schedule_env_factory(raw, seeds, worker=jobs > 1, decision=decision) for seeds in seed_slices(cfg, jobs)]
    venv = SubprocVecEnv(fns, start_method="spawn") if jobs > 1 else DummyVecEnv(fns)
    return VecMonitor(venv)


# --------------------------------------------------------------------------- callbacks


class ScheduleHistory(BaseCallback):
    """Per finished episode (any worker): the sampled schedule, the deterministic one the policy
    would choose on the same observations, the return and the final validation accuracy; logged under
    ``train_schedule/`` with the episode number as the step, and kept for ``results.json``."""

    def __init__(self, writer: Any, history: list[dict[str, Any]] | None = None, figure_every: int = 10) -> None:
        super().__init__()
        self.writer, self.figure_every = writer, figure_every
        self.episodes: list[dict[str, Any]] = list(history or [])
        self._open: dict[int, dict[str, list]] = {}

    def _on_step(self) -> bool:
        acted_on = self.model._last_obs  # noqa: SLF001 - SB3 updates it after the callbacks of a step
        for i, info in enumerate(self.locals["infos"]):
            ep = self._open.setdefault(i, {"obs": [], "t": [], "r": []})
            ep["t"].extend(float(t) for t in info.get("temperatures", [info["temperature"]]))
            ep["r"].append(float(self.locals["rewards"][i]))
            ep["obs"].append(np.asarray(acted_on[i], np.float32))
            if self.locals["dones"][i]:
                self._close(i, info)
        return True

    def _close(self, i: int, info: dict[str, Any]) -> None:
        ep = self._open.pop(i)
        det, _ = self.model.predict(np.stack(ep["obs"]), deterministic=True)
        from rltemp.kd.policy import action_to_temperature

        env = self.training_env.get_attr("ecfg", [i])[0]
        if np.shape(det)[-1] == 2:  # a run-level decision (rltemp/KDRunSchedule-v0)
            from rltemp.envs.run_env import run_schedule

            t_det = run_schedule(det, len(ep["t"]), env.t_min, env.t_max, env.run_first_temperature, env.run_probe > 0)
        else:
            t_det = action_to_temperature(torch.as_tensor(det).reshape(-1), env.t_min, env.t_max).tolist()
        rec = {"episode": len(self.episodes) + 1, "student_seed": info["student_seed"],
               "student_index": info["student_index"], "return": sum(ep["r"]),
               "final_val_acc": info["val_acc"], "temperature": ep["t"], "temperature_deterministic": t_det}
        if "decision_features" in info:  # what the run-level decision read after the first epoch
            rec["decision_features"] = info["decision_features"]
        self.episodes.append(rec)
        if self.writer is not None:
            n = rec["episode"]
            if n % self.figure_every == 0:  # the last episodes' schedules: sampled (thin) and deterministic (bold)
                self.writer.add_figure("train_schedule/schedules",
                                       schedule_figure(self.episodes[-self.figure_every:], f"episodes up to {n}",
                                                       (env.t_min, env.t_max)), n)
            self.writer.add_scalar("train_schedule/episode_return", rec["return"], n)
            self.writer.add_scalar("train_schedule/episode_final_val_acc", rec["final_val_acc"], n)
            for q, name in ((0, "first"), (len(t_det) // 2, "middle"), (len(t_det) - 1, "last")):
                self.writer.add_scalar(f"train_schedule/T_{name}_epoch_deterministic", t_det[q], n)
                self.writer.add_scalar(f"train_schedule/T_{name}_epoch_sampled", ep["t"][q], n)
            if "decision_features" in rec:  # a run-level decision: what it read and chose, per kind of student
                k = rec["student_index"]
                for name, value in rec["decision_features"].items():
                    self.writer.add_scalar(f"train_schedule/student_{k}/{name}", value, n)
                self.writer.add_scalar(f"train_schedule/student_{k}/T_first_epoch_deterministic", t_det[0], n)
                self.writer.add_scalar(f"train_schedule/student_{k}/T_second_epoch_deterministic", t_det[1], n)
                self.writer.add_scalar(f"train_schedule/student_{k}/T_last_epoch_deterministic", t_det[-1], n)
                self.writer.add_scalar(f"train_schedule/student_{k}/episode_return", rec["return"], n)


class PerStudentAdvantages(BaseCallback):
    """``agent.per_student_advantages``: after each rollout's advantages are computed (and before the
    update), divide those of student i (``env.students[i]``) by the running RMS of all of student i's
    advantages so far. One kind of student whose temperature matters more (larger gains and losses)
    then weighs as much in the update as any other, instead of setting the direction of the shared
    schedule alone; the critic's targets (the returns) are untouched. ``state``: {i: [count, sum of
    squares]}, kept in the checkpoint so a resumed training scales as the uninterrupted one."""

    def __init__(self, state: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.state = {str(k): [float(c), float(q)] for k, (c, q) in (state or {}).items()}
        self._kinds: list[list[int]] = []

    def _on_rollout_start(self) -> None:
        self._kinds = []

    def _on_step(self) -> bool:  # one call per rollout-buffer row, in order
        self._kinds.append([int(info["student_index"]) for info in self.locals["infos"]])
        return True

    def _on_rollout_end(self) -> None:
        adv = self.model.rollout_buffer.advantages
        kinds = np.asarray(self._kinds)
        if kinds.shape != adv.shape:
            raise RuntimeError(f"per-student advantages: {kinds.shape} student labels for advantages of shape {adv.shape}")
        for k in np.unique(kinds):
            rows = kinds == k
            c, q = self.state.get(str(k), [0.0, 0.0])
            c, q = c + float(rows.sum()), q + float(np.square(adv[rows]).sum())
            self.state[str(k)] = [c, q]
            rms = float(np.sqrt(q / c))
            adv[rows] /= max(rms, 1e-8)
            if self.logger is not None:
                self.logger.record(f"train_schedule/advantage_rms_student_{k}", rms)


class Checkpoint(BaseCallback):
    """Saves SB3's parameters and optimiser state plus counters to ``checkpoints/last.pt``
    (atomically; loadable weights-only) every ``every`` rollouts — on-policy algorithms, after the
    update, so a checkpoint never holds half a rollout — or finished episodes — SAC; also drives the
    progress bar. The budget is ``learn``'s ``total_timesteps`` (rollouts end on episode boundaries)."""

    def __init__(self, path: Path, stage: str, every: int, total: int, done: int, progress: bool,
                 prior_wall_s: float, state: Callable[[], dict[str, Any]], per_episode: int) -> None:
        super().__init__()
        self.path, self.stage, self.every, self.total = path, stage, every, total
        self.episodes = done  # completed episodes (over all workers)
        self.saved_at = done
        self.per_episode = per_episode  # episodes finished per "dones" event (workers end together)
        self.prior_wall_s, self.t0 = prior_wall_s, time.perf_counter()
        self.state = state  # extra plain values to keep (history)
        self.progress, self.bar, self.rollouts = progress, None, 0

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=self.episodes, desc=f"train-policy ({self.stage})", unit="episode",
                        disable=not self.progress, leave=False)

    def _on_rollout_start(self) -> None:
        if self.model.__class__.__name__.lower() not in ON_POLICY or self.num_timesteps == 0:
            return
        self.rollouts += 1
        if self.rollouts % self.every == 0:
            self.save()

    def _on_step(self) -> bool:
        dones = self.locals["dones"]
        if dones.all() if self.per_episode > 1 else dones[0]:
            self.episodes += self.per_episode
            if self.bar is not None:
                self.bar.update(self.per_episode)
            if self.model.__class__.__name__.lower() not in ON_POLICY and self.episodes % self.every == 0:
                self.save()
        return True

    def save(self) -> None:
        buf = io.BytesIO()
        torch.save({"stage": self.stage, "params": self.model.get_parameters(),
                    "num_timesteps": int(self.model.num_timesteps), "episodes": self.episodes,
                    "wall_time_s": self.wall_time_s(), "history": self.state()}, buf)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buf.getvalue())
        self.saved_at = self.episodes

    def wall_time_s(self) -> float:
        return self.prior_wall_s + time.perf_counter() - self.t0

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def restore(model: Any, state: dict[str, Any], device: str) -> None:
    """Load a checkpoint's parameters and optimiser state into ``model`` (and its step counter)."""
    model.set_parameters(state["params"], exact_match=True, device=device)
    model.num_timesteps = int(state["num_timesteps"])


# --------------------------------------------------------------------------- training


def _threads_one() -> Callable[[], None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # numbers independent of --jobs: every env computes on one thread
    return lambda: torch.set_num_threads(n)


def policy_meta(cfg: Config, agent: AgentConfig, modulator: bool, extra: dict[str, Any]) -> dict[str, Any]:
    import gymnasium
    import stable_baselines3

    import rltemp
    from rltemp.kd.policy import describe_head

    env = cfg.env
    return {
        "t_min": env.t_min, "t_max": env.t_max,
        "action_mapping": "T = exp(log t_min + (a+1)/2 (log t_max - log t_min))",
        "schedule": describe_head(agent.algo, env.run_features if agent.decision == "run" else env.schedule_features,
                                  agent.policy.net_arch, agent.policy.activation,
                                  **({"tanh_mean": True} if agent.policy.tanh_mean else {}),
                                  decision=agent.decision, reward=env.reward, reward_reference=env.reward_reference,
                                  **({"first_temperature": env.run_first_temperature}
                                     if agent.decision == "run" and env.run_first_temperature else {}),
                                  **({"probe": {"epochs": env.run_probe, "temperature": env.run_probe_temperature}}
                                     if agent.decision == "run" and env.run_probe else {}),
                                  **({"critic_features": list(env.critic_features)} if env.critic_features else {})),
        "modulator": describe_head(agent.algo, env.features, agent.modulator.policy.net_arch,
                                   agent.modulator.policy.activation, max_multiplier=env.max_multiplier,
                                   decision=f"instance and {'epoch' if agent.modulator.cadence == 'epoch' else 'KD step'}",
                                   calibration=env.calibration, credit_scale=env.credit_scale) if modulator else None,
        "trained_on": {"dataset": cfg.data.name, "teacher": cfg.teacher.model,
                       "students": [s.model if s.lr is None else f"{s.model} (lr {s.lr:g})" for s in env.students]
                       or [cfg.student.model],
                       "epochs": cfg.distill.epochs, **extra},
        "versions": {"rltemp": rltemp.__version__, "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__},
    }


def _train_schedule(cfg: Config, agent: AgentConfig, run: RunDir, writer: Any, jobs: int, progress: bool,
                    ckpt: dict[str, Any] | None, backend: str = "process",
                    address: str | None = None) -> tuple[Any, dict[str, Any]]:
    epochs = cfg.distill.epochs
    shutdown = None
    if backend == "ray":
        from rltemp.agents.ray_backend import ray_schedule_vec_env

        ray_venv, shutdown = ray_schedule_vec_env(cfg, jobs, address, agent.decision)
        venv = VecMonitor(ray_venv)
    else:
        venv = schedule_vec_env(cfg, jobs, agent.decision)
    steps = venv.get_attr("steps", [0])[0] if agent.decision == "run" else epochs  # decisions per episode
    norm = None
    if agent.policy.normalize_obs:  # running mean / std of every column; no clipping, so export can fold it exactly
        norm = venv = VecNormalize(venv, norm_obs=True, norm_reward=False, clip_obs=float("inf"))
        saved = (ckpt or {}).get("history", {}).get("obs_rms")
        if saved:
            norm.obs_rms.mean, norm.obs_rms.var = np.array(saved["mean"]), np.array(saved["var"])
            norm.obs_rms.count = float(saved["count"])
    try:
        model = build_model(agent.algo, agent.policy, agent.hyperparams, venv, cfg.seed, writer, "cpu",
                            (cfg.env.t_min, cfg.env.t_max), n_steps=agent.episodes_per_rollout * steps,
                            episode_length=steps, actor_dims=venv.observation_space.shape[0] - len(cfg.env.critic_features))
        done = 0
        history = (ckpt or {}).get("history", {}).get("schedule", [])
        if ckpt is not None:
            restore(model, ckpt, "cpu")
            done = int(ckpt["episodes"])
            log.info("resuming the schedule stage after %d episodes", done)
        venv.seed(cfg.seed + 7919 * done)  # fresh students for the episodes still to run
        hist = ScheduleHistory(writer, history)
        scale = [PerStudentAdvantages((ckpt or {}).get("history", {}).get("advantage_rms"))] \
            if agent.per_student_advantages else []

        def state() -> dict[str, Any]:
            out: dict[str, Any] = {"schedule": hist.episodes}
            if scale:
                out["advantage_rms"] = scale[0].state
            if norm is not None:
                rms = norm.obs_rms
                out["obs_rms"] = {"mean": rms.mean.tolist(), "var": rms.var.tolist(), "count": float(rms.count)}
            return out

        cb = Checkpoint(run.path / "checkpoints" / "last.pt", "schedule", agent.checkpoint_every, agent.episodes,
                        done, progress, float((ckpt or {}).get("wall_time_s", 0.0)), state, per_episode=venv.num_envs)
        remaining = agent.episodes - done
        if remaining > 0:
            model.learn(total_timesteps=remaining * steps, callback=[hist, *scale, cb],
                        reset_num_timesteps=ckpt is None)
    finally:
        venv.close()
        if shutdown is not None:
            shutdown()
    # the statistics the head was trained on, as policy.json lists them (schedule.zip, SB3's file, expects (x - mean) / std)
    obs_norm = None if norm is None else {"mean": norm.obs_rms.mean.tolist(),
                                          "std": np.sqrt(norm.obs_rms.var + norm.epsilon).tolist(),
                                          "observations": float(norm.obs_rms.count), "folded": "into policy.pt's first layer"}
    return model, {"episodes": hist.episodes, "wall_time_s": cb.wall_time_s(), "timesteps": int(model.num_timesteps),
                   "obs_norm": obs_norm}


def _train_modulator(cfg: Config, agent: AgentConfig, run: RunDir, writer: Any, progress: bool,
                     ckpt: dict[str, Any] | None, prior: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    mcfg = cfg.replace(env=dataclasses.replace(cfg.env, base_policy=str(run.path / "schedule")))
    if agent.modulator.cadence == "epoch":
        from rltemp.envs.instance_epoch_env import KDInstanceEpochEnv

        env: Any = KDInstanceEpochEnv(mcfg)
    else:
        env = KDTemperatureEnv(mcfg)
    venv = InstanceVecEnv(env)
    mod = agent.modulator
    model = build_model(agent.algo, mod.policy, mod.hyperparams, venv, cfg.seed + 1, writer, "cpu",
                        (cfg.env.t_min, cfg.env.t_max))
    done, returns, prior_wall = 0, [], 0.0
    if ckpt is not None:  # resuming the modulator stage
        restore(model, ckpt, "cpu")
        done, prior_wall = int(ckpt["episodes"]), float(ckpt.get("wall_time_s", 0.0))
        returns = list(ckpt.get("history", {}).get("modulator", []))
    venv.seed(cfg.seed + 104729 + 7919 * done)
    logger = DecisionLogger(writer, history=returns, title=f"{cfg.name} / modulator training",
                            t_range=(cfg.env.t_min, cfg.env.t_max))
    cb = Checkpoint(run.path / "checkpoints" / "last.pt", "modulator", 1, mod.episodes, done, progress, prior_wall,
                    lambda: {**prior, "modulator": logger.episode_returns}, per_episode=1)
    remaining = mod.episodes - done
    if remaining > 0:
        model.learn(total_timesteps=remaining * env.steps_per_episode() * venv.num_envs, callback=[logger, cb],
                    reset_num_timesteps=ckpt is None)
    venv.close()
    return model, {"episode_returns": logger.episode_returns, "wall_time_s": cb.wall_time_s()}


def train_policy(cfg: Config, agent: AgentConfig, out: str | Path | None = None, resume: str | Path | None = None,
                 progress: bool = True, runs_root: str | Path = "runs", jobs: int = 2, backend: str = "process",
                 address: str | None = None) -> dict[str, Any]:
    """Train ``agent`` on episodes of fresh students of ``cfg``; returns ``results.json``'s content.

    ``jobs``: students trained at once (worker processes, or Ray actors with ``backend="ray"``)."""
    if backend not in ("process", "ray"):
        raise ConfigError(f"unknown backend {backend!r}; valid: process, ray")
    if backend == "ray":
        from rltemp.agents.ray_backend import require_ray

        require_ray()
    from torch.utils.tensorboard import SummaryWriter

    from rltemp.kd.pipeline import get_teacher, prepare

    if cfg.env.pair:
        raise ConfigError("env.pair is not supported by train-policy: a policy sets one temperature per instance")
    if agent.decision == "run" and cfg.env.critic_features:
        raise ConfigError("env.critic_features: the run-level schedule env (agent.decision: run) has no critic-only columns")
    data, device, _ = prepare(cfg.with_temperature("ce"))
    get_teacher(cfg, data, device, progress)  # once, before worker processes read the cache
    ckpt = None
    if resume is not None:
        run = RunDir(Path(resume))
        ck = run.path / "checkpoints" / "last.pt"
        if ck.exists():
            ckpt = torch.load(ck, map_location="cpu", weights_only=True)
    else:
        run = RunDir.create("train-policy", cfg.name, out, cfg.to_dict(), runs_root)
        atomic_write_bytes(run.path / "agent.yaml", dump_yaml(agent.to_dict()).encode())
    restore_threads = _threads_one()
    writer = SummaryWriter(str(run.tb))
    try:
        stage2 = agent.modulator.episodes > 0
        sched_done = ckpt is not None and ckpt.get("stage") == "modulator"
        # schedule episodes trained in this run (none when the schedule comes from another policy)
        sched_episodes = 0 if agent.modulator.schedule_from else agent.episodes
        if agent.modulator.schedule_from and not sched_done:  # stage 2 only, on a schedule trained before
            if not stage2:
                raise ConfigError("agent.modulator.schedule_from needs agent.modulator.episodes > 0")
            from rltemp.kd.policy import resolve_policy

            src = resolve_policy(agent.modulator.schedule_from)
            (run.path / "schedule").mkdir(parents=True, exist_ok=True)
            for name in ("policy.json", "policy.pt"):
                shutil.copyfile(src.with_name(name), run.path / "schedule" / name)
            sched_meta = json.loads(src.read_text())
            sched = {"episodes": [], "wall_time_s": float(sched_meta.get("trained_on", {}).get("wall_time_s", 0.0))}
            sched_done = True
        elif sched_done:
            sched = {"episodes": ckpt["history"].get("schedule", []), "wall_time_s": float(ckpt["history"].get("schedule_wall_s", 0.0))}
        else:
            model, sched = _train_schedule(cfg, agent, run, writer, jobs, progress, ckpt, backend, address)
            meta = policy_meta(cfg, agent, False, {"episodes": agent.episodes, "wall_time_s": sched["wall_time_s"],
                                                   "command": _command(run)})
            norm = sched["obs_norm"]
            if norm is not None:
                meta["schedule"]["normalize_obs"] = norm
            export_policy(model, None, meta, run.path / "schedule" if stage2 else run.path,
                          schedule_obs_norm=None if norm is None else (norm["mean"], norm["std"]))
        mod_model, mod, obs_rows = None, None, None
        if stage2:
            prior = {"schedule": sched["episodes"], "schedule_wall_s": sched["wall_time_s"]}
            mod_model, mod = _train_modulator(cfg, agent, run, writer, progress, ckpt if sched_done else None, prior)
            buf = getattr(mod_model, "rollout_buffer", None) or getattr(mod_model, "replay_buffer", None)
            if buf is not None:  # observed feature rows, for the sensitivity figure's medians
                obs_rows = torch.as_tensor(buf.observations.reshape(-1, buf.observations.shape[-1])[-4096:])
            from rltemp.kd.policy import load_policy

            base = load_policy(run.path / "schedule")
            meta = policy_meta(cfg, agent, True, {"episodes": sched_episodes, "modulator_episodes": agent.modulator.episodes,
                                                  "wall_time_s": sched["wall_time_s"] + mod["wall_time_s"],
                                                  "schedule_from": agent.modulator.schedule_from or None,
                                                  "command": _command(run)})
            meta["schedule"] = base.meta["schedule"]
            export_policy(None, mod_model, meta, run.path, schedule_state=base.schedule.state_dict())
            if (run.path / "schedule" / "schedule.zip").exists():
                shutil.copyfile(run.path / "schedule" / "schedule.zip", run.path / "schedule.zip")
        wall = sched["wall_time_s"] + (mod["wall_time_s"] if mod else 0.0)
        kd_steps = (sched_episodes + agent.modulator.episodes) * (len(data.train) // cfg.distill.batch_size) * cfg.distill.epochs
        episodes = sched["episodes"]
        results = {
            "algo": agent.algo, "episodes": sched_episodes, "modulator_episodes": agent.modulator.episodes,
            "jobs": jobs, "backend": backend, "kd_steps": kd_steps, "wall_time_s": wall,
            "resumed": ckpt is not None,
            "episode_returns": [e["return"] for e in episodes],
            "episode_final_val_acc": [e["final_val_acc"] for e in episodes],
            "schedule_episodes": episodes,
            "modulator_episode_returns": mod["episode_returns"] if mod else [],
        }
        from rltemp.agents.export import write_fingerprint
        from rltemp.kd.policy import load_policy

        write_fingerprint(run.path)
        # once per trained policy: how its temperature moves across each feature's range
        writer.add_figure("policy/sensitivity", sensitivity_figure(load_policy(run.path), obs_rows,
                                                                   f"{cfg.name}: trained policy"), agent.episodes)
    finally:
        writer.close()
        restore_threads()
    run.write_results(results)
    return {**results, "run_dir": str(run.path)}


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


# --------------------------------------------------------------------------- per-instance logging / online


class DecisionLogger(BaseCallback):
    """Instance-slot training (the modulator; online mode): per student epoch, the temperatures the
    policy set, teacher confidence, the student's true-class probability and correctness
    (:func:`rltemp.kd.tblog.log_decisions`, and a decision figure every ``figure_every`` epochs, or
    only after epoch ``figure_at`` when it is given); per episode the summed slot reward."""

    def __init__(self, writer: Any, figure_every: int = 10, history: list[float] | None = None,
                 title: str = "", t_range: tuple[float, float] = (1.0, 10.0), figure_at: int | None = None) -> None:
        super().__init__()
        self.writer, self.figure_every, self.title, self.t_range = writer, figure_every, title, t_range
        self.figure_at = figure_at
        self._rows: list[tuple[np.ndarray, ...]] = []
        self._ep_reward = 0.0
        self.epochs_logged = 0
        self.episode_returns: list[float] = list(history or [])
        self.spreads: list[dict[str, float]] = []
        self.all_t: list[np.ndarray] = []

    def _on_step(self) -> bool:
        info = self.locals["infos"][0].get("kd", {})
        if not info:
            return True
        t = info["temperature"]
        t = t[:, 1] if t.ndim == 2 else t
        self._rows.append((t, info["teacher_confidence"], info["student_p_true"], info["student_correct"]))
        self.all_t.append(t)
        self._ep_reward += float(self.locals["rewards"].mean())
        w = self.writer
        if "val_acc" in info and w is not None:
            w.add_scalar("env/val_acc", info["val_acc"], self.num_timesteps)
        if "epoch_val_acc" in info:
            d = Decisions(*(torch.from_numpy(np.concatenate(x)) for x in zip(*self._rows)))
            if w is not None:
                self.spreads.append(log_decisions(w, self.epochs_logged, d))
                if (self.epochs_logged == self.figure_at if self.figure_at is not None
                        else self.epochs_logged % self.figure_every == 0):
                    w.add_figure("decisions/temperature_vs_confidence_and_progress",
                                 decision_figure(d, f"{self.title} — epoch {self.epochs_logged}", self.t_range,
                                                 self.spreads), self.epochs_logged)
                w.add_scalar("eval/val_acc", info["epoch_val_acc"], self.epochs_logged)
            self._rows = []
            self.epochs_logged += 1
        if self.locals["dones"][0]:
            self.episode_returns.append(self._ep_reward)
            if w is not None:
                w.add_scalar("env/episode_reward", self._ep_reward, len(self.episode_returns))
            self._ep_reward = 0.0
        return True


def run_online(cfg: Config, agent: AgentConfig, out: str | Path | None = None, progress: bool = True,
               runs_root: str | Path = "runs") -> dict[str, Any]:
    """RLKD's setting: a policy that learns *during* this one distillation (the run is the episode).

    The schedule comes from ``agent.online.schedule`` (a trained policy, by default the shipped
    one); the per-instance modulator is learned by RL during the run on top of it (the
    ``agent.modulator`` network and hyperparameters, ``agent.online.hyperparams`` over them), on
    ``rltemp/KDInstanceEpoch-v0``: at the start of every epoch one decision for every training
    instance, from what the instance looked like when the student last saw it, credited per
    instance (``agent.online.calibration``) from the validation pass every run makes anyway. The
    optimiser steps run as in a plain epoch; SB3 acts and learns between epochs (a minibatch is one
    epoch's decisions unless ``batch_size`` is given). A schedule cannot be learned from scratch
    within one run: it gets one decision per epoch. The student is the config's student with seed
    ``cfg.seed``; the result is reported like any distill run (last-epoch test accuracy; wall time
    = the training epochs with their validation, as for every run), and the learned policy is
    saved beside it for transfer.
    """
    from torch.utils.tensorboard import SummaryWriter

    from rltemp.envs.instance_epoch_env import KDInstanceEpochEnv
    from rltemp.kd.pipeline import temperature_summary
    from rltemp.kd.policy import load_schedule_base, resolve_policy
    from rltemp.kd.trainer import evaluate
    from rltemp.models import save_checkpoint

    base_dir = resolve_policy(agent.online.schedule).parent
    base = load_schedule_base(base_dir, "agent.online.schedule")
    ocfg = cfg.replace(env=dataclasses.replace(cfg.env, base_policy=str(base_dir), calibration=agent.online.calibration,
                                               credit_rank=agent.online.credit_rank,
                                               features=list(agent.online.features or cfg.env.features)))
    env = KDInstanceEpochEnv(ocfg, progress=progress)
    env.fill_teacher_cache()  # before the clock starts, as a distill run builds its Distiller (and cache) first
    run = RunDir.create("distill", cfg.name, out, {**cfg.to_dict(), "agent": agent.to_dict()}, runs_root)
    finished: dict[str, Any] = {}

    def on_end(e: KDInstanceEpochEnv) -> None:
        finished["wall"] = time.perf_counter() - t0
        d = e.distiller
        acc, loss = evaluate(d.student, e.data.test, e.data)
        val, _ = evaluate(d.student, e.data.val, e.data)
        finished.update(test_acc=acc, test_loss=loss, val_acc=val, best_val_acc=d.best_val_acc,
                        best_val_epoch=d.best_epoch, epochs=d.epoch, kd_steps=d.step_count)
        save_checkpoint(run.path / "last.pt", d.student, {"arch": e.student_arch, "epoch": d.epoch})

    venv = InstanceVecEnv(env, on_episode_end=on_end, auto_reset=False)
    venv.set_options([{"student_seed": cfg.seed, "student": 0}] + [{}] * (venv.num_envs - 1))
    writer = SummaryWriter(str(run.tb))
    mod = agent.modulator
    hyper = {**mod.hyperparams, **agent.online.hyperparams}
    if agent.algo == "ppo" and "batch_size" not in agent.online.hyperparams:
        hyper["batch_size"] = venv.num_envs  # a minibatch is one epoch's decisions
    # the modulator this run trains (and exports): at epoch cadence, with the online network's settings if given
    mod = dataclasses.replace(mod, cadence="epoch", policy=agent.online.net(mod.policy))
    agent = dataclasses.replace(agent, modulator=mod)
    model = build_model(agent.algo, mod.policy, hyper, venv, cfg.seed,
                        writer, "cuda" if env.device.type == "cuda" else "cpu", (cfg.env.t_min, cfg.env.t_max))
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
    meta = policy_meta(ocfg, agent, True, {"episodes": 1, "mode": "online", "schedule_from": str(base_dir)})
    meta["schedule"] = base.meta["schedule"]
    export_policy(None, model, meta, run.path, schedule_state=base.schedule.state_dict())
    wall = finished.pop("wall")
    results = {**finished, "wall_time_s": wall, "method": cfg.distill.temperature, "seed": cfg.seed,
               "student": cfg.student.model, "teacher": cfg.teacher.model, "dataset": cfg.data.name,
               "test_acc_at_best_val": None, "device": str(env.device),
               "temperature": temperature_summary([torch.from_numpy(t) for t in logger_cb.all_t])}
    run.write_results(results)
    venv.close()
    return {**results, "run_dir": str(run.path)}


class StopAfterEpisodes(BaseCallback):
    """Stop learning as soon as ``n`` episodes are done (the online mode's one run)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.done = n, 0

    def _on_step(self) -> bool:
        if self.locals["dones"][0]:
            self.done += 1
        return self.done < self.n
