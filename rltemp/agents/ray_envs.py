"""An SB3 ``VecEnv`` whose schedule environments live in Ray actors (``train-policy --backend ray
--workers N``).

Each actor hosts one schedule environment (one student at a time: the same slot structure as the
worker processes of ``SubprocVecEnv``), is seeded like them and auto-resets like them, so for the
same seeds the two backends give the same episodes (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from rltemp.agents.factories import schedule_env_factory, seed_slices
from rltemp.agents.ray_cluster import install_teachers, start_ray, teacher_files
from rltemp.config import pool_configs


class ScheduleEnvActor:
    """Holds one :class:`~rltemp.envs.run_env.KDRunScheduleEnv` (wrapped by ``ray.remote``)."""

    def __init__(self, cfg_dict: dict[str, Any], seeds: list[int], teachers: dict[str, bytes]) -> None:
        install_teachers(teachers)
        self.env = schedule_env_factory(cfg_dict, seeds, worker=True)()

    def spaces(self) -> tuple[Any, Any]:
        return self.env.observation_space, self.env.action_space

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        return self.env.reset(seed=seed, options=options or {})

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any], dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        reset_info: dict[str, Any] = {}
        if terminated or truncated:  # auto-reset, as SB3's own VecEnvs do
            info["TimeLimit.truncated"] = truncated and not terminated
            info["terminal_observation"] = obs
            obs, reset_info = self.env.reset()
        return obs, reward, terminated or truncated, info, reset_info

    def get_attr(self, name: str) -> Any:
        return getattr(self.env, name)


class RayVecEnv(VecEnv):
    def __init__(self, actors: list[Any]) -> None:
        import ray

        self.ray, self.actors = ray, actors
        obs_space, act_space = ray.get(actors[0].spaces.remote())
        super().__init__(len(actors), obs_space, act_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        results = self.ray.get([a.reset.remote(self._seeds[i], self._options[i]) for i, a in enumerate(self.actors)])
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info for _, info in results]
        return np.stack([obs for obs, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):  # noqa: ANN201
        assert self._actions is not None
        results = self.ray.get([a.step.remote(self._actions[i]) for i, a in enumerate(self.actors)])
        obs = np.stack([r[0] for r in results])
        rewards = np.array([r[1] for r in results], dtype=np.float32)
        dones = np.array([r[2] for r in results])
        infos = [r[3] for r in results]
        for i, r in enumerate(results):
            if r[2]:
                self.reset_infos[i] = r[4]
        return obs, rewards, dones, infos

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return self.ray.get([self.actors[i].get_attr.remote(attr_name) for i in self._get_indices(indices)])

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise NotImplementedError("RayVecEnv does not set attributes on remote environments")

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        raise NotImplementedError("RayVecEnv does not call methods on remote environments")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def ray_schedule_vec_env(cfg: Any, workers: int, address: str | None) -> tuple[RayVecEnv, Any]:
    """``workers`` actors with one schedule env each (seeds split by ``seed_slices``, as for worker processes);
    returns the VecEnv and a function that shuts Ray down if rltemp started it."""
    slices = seed_slices(cfg, workers)  # before Ray starts: a bad pool fails fast
    ray, started = start_ray(address, workers)
    teachers = ray.put(teacher_files([pair for _, pair in pool_configs(cfg)]))
    remote = ray.remote(num_cpus=1)(ScheduleEnvActor)
    raw = cfg.to_dict()
    actors = [remote.remote(raw, seeds, teachers) for seeds in slices]
    return RayVecEnv(actors), (ray.shutdown if started else (lambda: None))
