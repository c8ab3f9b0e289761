"""The N training instances of one shared KD trainer are the N slots of an SB3 VecEnv: online mode's
modulator learns this way on ``rltemp/KDInstanceEpoch-v0`` — any env whose observation is (N, F)
and whose info carries ``instance_rewards`` (N,).

Why this design: a stock SB3 policy (``MlpPolicy``) then acts on one instance's feature row at a
time, so its weights are shared across the instances, its decisions are equivariant to their order
and independent of their number *by construction*, and PPO / A2C work unchanged — no custom
distribution or policy class to maintain. Each slot gets its own calibrated reward
(:mod:`rltemp.envs.rewards`), which is what per-instance credit assignment needs; a single
N-dimensional action would feed PPO one scalar reward.

Slot rewards: slot i receives N · ``info["instance_rewards"][i]``, the reward the environment
delivers to that instance's decision at this step (scaled by N so that a slot sees the epoch's
reward plus its own credit). Every slot's episode ends together when the student's epoch budget is
spent: that is a real termination (progress is observed), so SB3 gets ``TimeLimit.truncated =
False``, does not bootstrap, and keeps the real terminal observation; the vec env then starts a
fresh student (or stops, ``auto_reset=False``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from rltemp.envs.base import StudentRunsEnv


class InstanceVecEnv(VecEnv):
    def __init__(self, env: StudentRunsEnv, on_episode_end: Callable[[StudentRunsEnv], None] | None = None,
                 auto_reset: bool = True) -> None:
        self.env = env
        b, f = env.observation_space.shape
        self.render_mode = None
        super().__init__(b, spaces.Box(0.0, 1.0, (f,), np.float32), spaces.Box(-1.0, 1.0, (1,), np.float32))
        self.on_episode_end = on_episode_end
        self.auto_reset = auto_reset
        self._actions: np.ndarray | None = None
        self._ep_return = np.zeros(self.num_envs, np.float64)
        self._ep_len = 0
        self._t0 = time.perf_counter()
        self.episodes_done = 0
        self.last_info: dict[str, Any] = {}

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        options = self._options[0] or None
        obs, info = self.env.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info] + [{} for _ in range(self.num_envs - 1)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32)

    def step_wait(self):  # noqa: ANN201
        assert self._actions is not None
        a = self._actions.reshape(self.env.action_space.shape)
        obs, _, terminated, truncated, info = self.env.step(a)
        self.last_info = info
        rewards = (self.num_envs * info["instance_rewards"]).astype(np.float32)
        done = terminated or truncated
        dones = np.full(self.num_envs, done)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        infos[0]["kd"] = info
        self._ep_return += rewards
        self._ep_len += 1
        if done:
            elapsed = round(time.perf_counter() - self._t0, 6)
            for i in range(self.num_envs):
                infos[i]["terminal_observation"] = obs[i]
                infos[i]["TimeLimit.truncated"] = truncated and not terminated
                # what SB3's Monitor would report, so rollout/ep_rew_mean and ep_len_mean are logged
                infos[i]["episode"] = {"r": float(self._ep_return[i]), "l": self._ep_len, "t": elapsed}
            self._ep_return[:] = 0.0
            self._ep_len = 0
            self.episodes_done += 1
            if self.on_episode_end is not None:
                self.on_episode_end(self.env)
            if self.auto_reset:
                obs = self.reset()
        return obs, rewards, dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*args, **kwargs)] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs
