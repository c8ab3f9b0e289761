"""Train a temperature policy across episodes of fresh students; online mode; resume.

``train_policy`` writes ``runs/train-policy-<name>-<ts>/``: ``config.yaml`` + ``agent.yaml``,
``command.txt``, ``checkpoints/last.pt`` (every ``agent.checkpoint_every`` episodes: SB3's
parameter and optimiser state dicts plus counters, all tensors/plain values, loaded weights-only on
``--resume``), ``policy.pt`` / ``policy.json`` / ``policy.zip`` (see :mod:`rltemp.agents.export`),
``results.json`` (last) and ``tb/``.

Logging has one path: rltemp owns the run's ``SummaryWriter`` (one event file in ``tb/``); SB3's
logger is pointed at it through :class:`WriterOutput`, so SB3's ``rollout/`` and ``train/`` scalars,
the temperature views of :mod:`rltemp.kd.tblog` and the ``env/`` reward curves land side by side.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure, HParam, KVWriter, Logger

from rltemp.agents.config import AgentConfig, algo_class, load_agent
from rltemp.agents.export import export_policy
from rltemp.agents.vec_env import InstanceVecEnv
from rltemp.config import Config, dump_yaml, load_config
from rltemp.envs.kd_env import KDTemperatureEnv
from rltemp.errors import RltempError
from rltemp.kd.tblog import log_decisions
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
                self.writer.add_hparams(value.hparam_dict, value.metric_dict, run_name=".")
        self.writer.flush()

    def close(self) -> None:  # the writer belongs to the run, which closes it
        pass


def build_model(agent: AgentConfig, venv: InstanceVecEnv, seed: int, writer: Any, device: str):  # noqa: ANN201
    """The SB3 model for ``agent`` on ``venv``, logging into ``writer`` (a SummaryWriter, or None)."""
    cls = algo_class(agent.algo)
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[agent.policy.activation]
    arch = list(agent.policy.net_arch)
    net_arch = {"pi": arch, "qf": arch} if agent.algo == "sac" else {"pi": arch, "vf": arch}
    kwargs = {"net_arch": net_arch, "activation_fn": act, "log_std_init": agent.policy.log_std_init}
    model = cls("MlpPolicy", venv, policy_kwargs=kwargs, seed=seed, device=device, verbose=0, **agent.hyperparams)
    model.set_logger(Logger(folder=None, output_formats=[WriterOutput(writer)] if writer is not None else []))
    if agent.policy.init_temperature is not None:
        init_mean_temperature(model, agent, venv.env.ecfg.t_min, venv.env.ecfg.t_max)
    return model


def init_mean_temperature(model: Any, agent: AgentConfig, t_min: float, t_max: float) -> None:
    """Shrink the action head's weights and set its bias so that every instance starts at
    ``agent.policy.init_temperature`` (the exploration noise stays as configured)."""
    from rltemp.envs.kd_env import temperature_to_action

    t = float(agent.policy.init_temperature)
    if not t_min <= t <= t_max:
        raise RltempError(f"agent.policy.init_temperature={t} lies outside [t_min, t_max] = [{t_min}, {t_max}]")
    a = temperature_to_action(t, t_min, t_max)
    head = model.policy.actor.mu if agent.algo == "sac" else model.policy.action_net
    with torch.no_grad():
        head.weight.mul_(0.01)
        head.bias.fill_(float(np.arctanh(np.clip(a, -0.999, 0.999))) if agent.algo == "sac" else a)


def steps_per_episode(env: KDTemperatureEnv) -> int:
    return (len(env.data.train) // env.batch_size) * env.cfg.distill.epochs


class DecisionLogger(BaseCallback):
    """Collects the env's per-instance temperatures, teacher confidence and correctness; logs them
    per student epoch (histograms, correct/wrong split, figure every ``figure_every`` epochs) and
    the validation reward curve (``env/``)."""

    def __init__(self, writer: Any, figure_every: int = 10, history: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.writer = writer
        self.figure_every = figure_every
        self._t: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._ok: list[np.ndarray] = []
        self._ep_reward = 0.0
        self.epochs_logged = 0
        history = history or {}  # episodes before a resume
        self.episode_rewards: list[float] = list(history.get("episode_rewards", []))
        self.episode_val_acc: list[float] = list(history.get("episode_final_val_acc", []))
        self.all_t: list[np.ndarray] = []  # every temperature, for the run summary

    def history(self) -> dict[str, list[float]]:
        return {"episode_rewards": list(self.episode_rewards), "episode_final_val_acc": list(self.episode_val_acc)}

    def _on_step(self) -> bool:
        info = self.locals["infos"][0].get("kd", {})
        if not info:
            return True
        t = info["temperature"]
        self._t.append(t[:, 1] if t.ndim == 2 else t)
        self.all_t.append(self._t[-1])
        self._conf.append(info["teacher_confidence"])
        self._ok.append(info["student_correct"])
        w = self.writer
        if "val_acc" in info:
            r = float(self.locals["rewards"].mean())
            self._ep_reward += r
            if w is not None:
                w.add_scalar("env/val_acc", info["val_acc"], self.num_timesteps)
                w.add_scalar("env/slot_reward_mean", r, self.num_timesteps)
        if "epoch_val_acc" in info:
            if w is not None:
                log_decisions(w, self.epochs_logged, torch.from_numpy(np.concatenate(self._t)),
                              torch.from_numpy(np.concatenate(self._conf)), torch.from_numpy(np.concatenate(self._ok)),
                              figure=self.epochs_logged % self.figure_every == 0)
                w.add_scalar("eval/epoch_val_acc", info["epoch_val_acc"], self.epochs_logged)
            self._t, self._conf, self._ok = [], [], []
            self.epochs_logged += 1
        if self.locals["dones"][0]:
            self.episode_rewards.append(self._ep_reward)
            self.episode_val_acc.append(float(info.get("val_acc", float("nan"))))
            if w is not None:
                w.add_scalar("env/episode_reward", self._ep_reward, len(self.episode_rewards))
                w.add_scalar("env/episode_final_val_acc", self.episode_val_acc[-1], len(self.episode_rewards))
            self._ep_reward = 0.0
        return True


class EpisodeCheckpoint(BaseCallback):
    """Every ``every`` finished episodes: save SB3's state dicts and counters to ``checkpoints/last.pt``
    (atomically; loadable weights-only). Also drives the episode progress bar."""

    def __init__(self, path: Path, every: int, total_episodes: int, start_episodes: int, progress: bool,
                 prior_wall_s: float = 0.0, history: Any = None) -> None:
        super().__init__()
        self.path, self.every = path, every
        self.history = history  # () -> per-episode lists to keep across a resume
        self.episodes = start_episodes
        self.prior_wall_s = prior_wall_s  # training time spent before a resume
        self.t0 = time.perf_counter()
        self.total = total_episodes
        self.progress = progress
        self.bar = None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=self.episodes, desc="train-policy", unit="episode",
                        disable=not self.progress, leave=False)

    def _on_step(self) -> bool:
        if self.locals["dones"][0]:
            self.episodes += 1
            if self.bar is not None:
                info = self.locals["infos"][0].get("kd", {})
                self.bar.set_postfix(val_acc=f"{info.get('val_acc', float('nan')):.4f}")
                self.bar.update(1)
            if self.episodes % self.every == 0 or self.episodes >= self.total:
                self.save()
        return True

    def save(self) -> None:
        buf = io.BytesIO()
        torch.save({"params": self.model.get_parameters(), "num_timesteps": int(self.model.num_timesteps),
                    "episodes": self.episodes, "wall_time_s": self.wall_time_s(),
                    "history": self.history() if self.history is not None else {}}, buf)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buf.getvalue())

    def wall_time_s(self) -> float:
        return self.prior_wall_s + time.perf_counter() - self.t0

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StopAfterEpisodes(BaseCallback):
    """Stop learning as soon as ``n`` episodes are done (the online mode's one run)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.done = n, 0

    def _on_step(self) -> bool:
        if self.locals["dones"][0]:
            self.done += 1
        return self.done < self.n


def policy_meta(cfg: Config, agent: AgentConfig, extra: dict[str, Any]) -> dict[str, Any]:
    import gymnasium
    import stable_baselines3

    import rltemp

    return {
        "algo": agent.algo, "features": list(cfg.env.features), "t_min": cfg.env.t_min, "t_max": cfg.env.t_max,
        "pair": cfg.env.pair, "action_mapping": "T = exp(log t_min + (a+1)/2 (log t_max - log t_min))",
        "net_arch": list(agent.policy.net_arch), "activation": agent.policy.activation,
        "trained_on": {"dataset": cfg.data.name, "teacher": cfg.teacher.model,
                       "students": [s.model for s in cfg.env.students] or [cfg.student.model], **extra},
        "versions": {"rltemp": rltemp.__version__, "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__},
    }


def train_policy(cfg: Config, agent: AgentConfig, out: str | Path | None = None, resume: str | Path | None = None,
                 progress: bool = True, runs_root: str | Path = "runs") -> dict[str, Any]:
    """Train ``agent`` on episodes of fresh students of ``cfg``; returns ``results.json``'s content."""
    ckpt_state = None
    if resume is not None:
        run = RunDir(Path(resume))
        ck = run.path / "checkpoints" / "last.pt"
        if ck.exists():
            ckpt_state = torch.load(ck, map_location="cpu", weights_only=True)
    env = KDTemperatureEnv(cfg, progress=progress)
    if resume is None:
        run = RunDir.create("train-policy", cfg.name, out, cfg.to_dict(), runs_root)
        atomic_write_bytes(run.path / "agent.yaml", dump_yaml(agent.to_dict()).encode())
    venv = InstanceVecEnv(env)
    per_episode = steps_per_episode(env)
    total = agent.episodes * per_episode * venv.num_envs
    device = "cuda" if env.device.type == "cuda" else "cpu"
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run.tb))
    model = build_model(agent, venv, cfg.seed, writer, device)
    done_eps = 0
    if ckpt_state is not None:
        model.set_parameters(ckpt_state["params"], exact_match=True, device=device)
        model.num_timesteps = int(ckpt_state["num_timesteps"])
        done_eps = int(ckpt_state["episodes"])
        log.info("resuming %s after %d episodes (%d timesteps)", run.path, done_eps, model.num_timesteps)
    # fresh students for the episodes still to run (distinct from those before an interruption)
    venv.seed(cfg.seed + 7919 * done_eps)
    logger_cb = DecisionLogger(writer, history=ckpt_state.get("history") if ckpt_state is not None else None)
    prior_wall = float(ckpt_state.get("wall_time_s", 0.0)) if ckpt_state is not None else 0.0
    ckpt_cb = EpisodeCheckpoint(run.path / "checkpoints" / "last.pt", agent.checkpoint_every, agent.episodes,
                                done_eps, progress, prior_wall, history=logger_cb.history)
    remaining = agent.episodes - done_eps
    if remaining > 0:
        model.learn(total_timesteps=remaining * per_episode * venv.num_envs,
                    callback=[logger_cb, ckpt_cb, StopAfterEpisodes(remaining)],
                    reset_num_timesteps=ckpt_state is None)
    results = {
        "algo": agent.algo, "episodes": agent.episodes, "timesteps": int(model.num_timesteps),
        "kd_steps": agent.episodes * per_episode, "wall_time_s": ckpt_cb.wall_time_s(),
        "resumed_from_episode": done_eps if ckpt_state is not None else None,
        "episode_rewards": logger_cb.episode_rewards, "episode_final_val_acc": logger_cb.episode_val_acc,
        "total_timesteps_planned": total,
    }
    export_policy(model, policy_meta(cfg, agent, {"episodes": agent.episodes, "kd_steps": results["kd_steps"],
                                                  "wall_time_s": results["wall_time_s"]}), run.path)
    writer.add_hparams({"algo": agent.algo, "episodes": agent.episodes, "seed": cfg.seed},
                       {"hparam/final_val_acc": logger_cb.episode_val_acc[-1] if logger_cb.episode_val_acc else 0.0,
                        "hparam/wall_time_s": results["wall_time_s"]}, run_name=".")
    writer.close()
    venv.close()
    run.write_results(results)
    return {**results, "run_dir": str(run.path)}


def resume_policy(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    p = Path(run_dir)
    if not (p / "config.yaml").exists() or not (p / "agent.yaml").exists():
        raise RltempError(f"{p} is not a train-policy run folder (config.yaml and agent.yaml expected)")
    if (p / "results.json").exists():
        raise RltempError(f"{p} is already complete (results.json exists)")
    return train_policy(load_config(p / "config.yaml"), load_agent(p / "agent.yaml"), resume=p, progress=progress)


def run_online(cfg: Config, agent: AgentConfig, out: str | Path | None = None, progress: bool = True,
               runs_root: str | Path = "runs") -> dict[str, Any]:
    """RLKD's setting: the policy learns *during* this one distillation (the run is the episode).

    The student is the config's student with seed ``cfg.seed``; the result is reported like any
    distill run (last-epoch test accuracy), and the learned policy is saved beside it for transfer.
    """
    from rltemp.kd.pipeline import temperature_summary
    from rltemp.kd.trainer import evaluate
    from rltemp.models import save_checkpoint

    env = KDTemperatureEnv(cfg, progress=progress)
    run = RunDir.create("distill", cfg.name, out, {**cfg.to_dict(), "agent": agent.to_dict()}, runs_root)
    finished: dict[str, Any] = {}

    def on_end(e: KDTemperatureEnv) -> None:
        d = e.distiller
        acc, loss = evaluate(d.student, e.data.test, e.data)
        val, _ = evaluate(d.student, e.data.val, e.data)
        finished.update(test_acc=acc, test_loss=loss, val_acc=val, best_val_acc=d.best_val_acc,
                        best_val_epoch=d.best_epoch, epochs=d.epoch, kd_steps=d.step_count)
        save_checkpoint(run.path / "last.pt", d.student, {"arch": e.student_arch, "epoch": d.epoch})

    venv = InstanceVecEnv(env, on_episode_end=on_end, auto_reset=False)
    venv.set_options([{"student_seed": cfg.seed, "student": 0}] + [{}] * (venv.num_envs - 1))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run.tb))
    model = build_model(agent, venv, cfg.seed, writer, "cuda" if env.device.type == "cuda" else "cpu")
    logger_cb = DecisionLogger(writer, figure_every=5)
    t0 = time.perf_counter()
    try:
        model.learn(total_timesteps=steps_per_episode(env) * venv.num_envs + 1,
                    callback=[logger_cb, StopAfterEpisodes(1)])
    finally:
        writer.close()
    wall = time.perf_counter() - t0
    export_policy(model, policy_meta(cfg, agent, {"episodes": 1, "mode": "online"}), run.path)
    results = {**finished, "wall_time_s": wall, "method": cfg.distill.temperature, "seed": cfg.seed,
               "student": cfg.student.model, "teacher": cfg.teacher.model, "dataset": cfg.data.name,
               "test_acc_at_best_val": None, "device": str(env.device),
               "temperature": temperature_summary([torch.from_numpy(t) for t in logger_cb.all_t])}
    run.write_results(results)
    venv.close()
    return {**results, "run_dir": str(run.path)}
