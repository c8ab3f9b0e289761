"""SB3 callbacks of policy training and online mode: the schedule history and its TensorBoard
views, per-student advantage scaling, resumable checkpoints, per-instance decision logging, and a stop
after n episodes."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from rltemp.kd.forms import Form
from rltemp.kd.tblog import Decisions, decision_figure, log_decisions, schedule_figure
from rltemp.paths import atomic_write_bytes


class ScheduleHistory(BaseCallback):
    """Per finished episode (any worker): the sampled schedule, the deterministic one the policy
    would choose on the same observations, the return and the final validation accuracy; logged under
    ``train_schedule/`` with the episode number as the step, and kept for ``results.json``."""

    def __init__(self, writer: Any, form: Form, history: list[dict[str, Any]] | None = None,
                 figure_every: int = 10) -> None:
        super().__init__()
        self.writer, self.form, self.figure_every = writer, form, figure_every
        self.episodes: list[dict[str, Any]] = list(history or [])
        self._open: dict[int, dict[str, list]] = {}

    def _on_step(self) -> bool:
        acted_on = self.model._last_obs  # noqa: SLF001 - SB3 updates it after the callbacks of a step
        for i, info in enumerate(self.locals["infos"]):
            ep = self._open.setdefault(i, {"obs": [], "t": [], "r": []})
            ep["t"].extend(float(t) for t in info["temperatures"])
            ep["r"].append(float(self.locals["rewards"][i]))
            ep["obs"].append(np.asarray(acted_on[i], np.float32))
            if self.locals["dones"][i]:
                self._close(i, info)
        return True

    def _close(self, i: int, info: dict[str, Any]) -> None:
        ep = self._open.pop(i)
        det, _ = self.model.predict(np.stack(ep["obs"]), deterministic=True)
        t_det = self.form.schedule(det, len(ep["t"]))
        rec = {"episode": len(self.episodes) + 1, "student_seed": info["student_seed"],
               "pair": info["pair"], "pair_index": info["pair_index"], "return": sum(ep["r"]),
               "final_val_acc": info["val_acc"], "kd_steps": info["kd_steps"], "temperature": ep["t"],
               "temperature_deterministic": t_det, "decision_features": info["decision_features"]}  # what it read
        self.episodes.append(rec)
        if self.writer is not None:
            n = rec["episode"]
            if n % self.figure_every == 0:  # the last episodes' schedules: sampled (thin) and deterministic (bold)
                self.writer.add_figure("train_schedule/schedules",
                                       schedule_figure(self.episodes[-self.figure_every:], f"episodes up to {n}",
                                                       (self.form.t_min, self.form.t_max)), n)
            self.writer.add_scalar("train_schedule/episode_return", rec["return"], n)
            self.writer.add_scalar("train_schedule/episode_final_val_acc", rec["final_val_acc"], n)
            for q, name in ((0, "first"), (len(t_det) // 2, "middle"), (len(t_det) - 1, "last")):
                self.writer.add_scalar(f"train_schedule/T_{name}_epoch_deterministic", t_det[q], n)
                self.writer.add_scalar(f"train_schedule/T_{name}_epoch_sampled", ep["t"][q], n)
            k = rec["pair"]  # per pair: what the decision read and chose
            for name, value in rec["decision_features"].items():
                self.writer.add_scalar(f"train_schedule/pair/{k}/{name}", value, n)
            for q, name in ((0, "first"), (len(t_det) - 1, "last")):
                self.writer.add_scalar(f"train_schedule/pair/{k}/T_{name}_epoch_deterministic", t_det[q], n)
            self.writer.add_scalar(f"train_schedule/pair/{k}/episode_return", rec["return"], n)


class HeldOutSelection(BaseCallback):
    """SB3's ``EvalCallback`` pattern, on training-pool students held out from training: every
    ``every`` rollouts (after the update) and at the end, the deterministic policy runs on each of
    ``students`` (pair index, seed: every pair of ``env.pool`` with the seeds ``env.eval_seeds``,
    which training never draws) in ``venv``; the mean return — the gain over each student's reference
    run, on validation — selects the policy to ship: ``on_best()`` is called when it improves. The test
    split is never read; nothing here touches the benchmarks' held-out pairs or seeds."""

    def __init__(self, venv: Any, students: list[tuple[int, int]], every: int, on_best: Callable[[], None],
                 writer: Any, normalize: Callable[[np.ndarray], np.ndarray] | None = None,
                 history: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.venv, self.students, self.every, self.on_best = venv, students, every, on_best
        self.writer, self.normalize = writer, normalize or (lambda obs: obs)
        self.history: list[dict[str, Any]] = list(history or [])
        self.rollouts = 0

    @property
    def best(self) -> dict[str, Any] | None:
        return max(self.history, key=lambda h: h["mean_return"]) if self.history else None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.num_timesteps == 0:
            return
        self.rollouts += 1
        if self.rollouts % self.every == 0:
            self.evaluate()

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.num_timesteps:
            self.evaluate()

    def returns(self) -> list[float]:
        """Each held-out student's return under the deterministic policy, in ``students``' order."""
        n, out = self.venv.num_envs, []
        for start in range(0, len(self.students), n):
            chunk = self.students[start:start + n]
            padded = chunk + [chunk[-1]] * (n - len(chunk))
            self.venv.set_options([{"pair": i, "student_seed": s} for i, s in padded])
            obs, total = self.venv.reset(), np.zeros(n)
            done = np.zeros(n, bool)
            while not done.all():
                action, _ = self.model.predict(self.normalize(obs), deterministic=True)
                obs, rewards, dones, _ = self.venv.step(action)
                total += np.where(done, 0.0, rewards)
                done |= dones
            out.extend(total[: len(chunk)].tolist())
        return out

    def evaluate(self) -> None:
        returns = self.returns()
        mean = float(np.mean(returns))
        best = self.best
        self.history.append({"timesteps": int(self.num_timesteps), "mean_return": mean, "returns": returns})
        if best is None or mean > best["mean_return"]:
            self.on_best()
        if self.writer is not None:
            self.writer.add_scalar("eval/held_out_mean_return", mean, self.num_timesteps)
            self.writer.add_scalar("eval/held_out_best_mean_return", self.best["mean_return"], self.num_timesteps)


class PerPairAdvantages(BaseCallback):
    """``agent.per_pair_advantages``: after each rollout's advantages are computed (and before the
    update), divide those of pair i (``env.pool[i]``) by the running RMS of all of pair i's advantages
    so far. One kind of student whose temperature matters more (larger gains and losses) then weighs
    as much in the update as any other, instead of setting the direction of the shared schedule alone;
    the critic's targets (the returns) are untouched. ``state``: {i: [count, sum of squares]}, kept in
    the checkpoint so a resumed training scales as the uninterrupted one."""

    def __init__(self, state: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.state = {str(k): [float(c), float(q)] for k, (c, q) in (state or {}).items()}
        self._kinds: list[list[int]] = []

    def _on_rollout_start(self) -> None:
        self._kinds = []

    def _on_step(self) -> bool:  # one call per rollout-buffer row, in order
        self._kinds.append([int(info["pair_index"]) for info in self.locals["infos"]])
        return True

    def _on_rollout_end(self) -> None:
        adv = self.model.rollout_buffer.advantages
        kinds = np.asarray(self._kinds)
        if kinds.shape != adv.shape:
            raise RuntimeError(f"per-pair advantages: {kinds.shape} pair labels for advantages of shape {adv.shape}")
        for k in np.unique(kinds):
            rows = kinds == k
            c, q = self.state.get(str(k), [0.0, 0.0])
            c, q = c + float(rows.sum()), q + float(np.square(adv[rows]).sum())
            self.state[str(k)] = [c, q]
            rms = float(np.sqrt(q / c))
            adv[rows] /= max(rms, 1e-8)
            if self.logger is not None:
                self.logger.record(f"train_schedule/advantage_rms_pair_{k}", rms)


class Checkpoint(BaseCallback):
    """Saves SB3's parameters and optimiser state plus counters to ``checkpoints/last.pt``
    (atomically; loadable weights-only) every ``every`` rollouts, after the update, so a checkpoint
    never holds half a rollout; also drives the progress bar. The budget is ``learn``'s
    ``total_timesteps`` (rollouts end on episode boundaries)."""

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
        if self.num_timesteps == 0:
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


class StopAfterEpisodes(BaseCallback):
    """Stop learning as soon as ``n`` episodes are done (the online mode's one run)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.done = n, 0

    def _on_step(self) -> bool:
        if self.locals["dones"][0]:
            self.done += 1
        return self.done < self.n
