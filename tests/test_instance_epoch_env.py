"""rltemp/KDInstanceEpoch-v0: one temperature decision per training instance and epoch (online mode's env)."""

import json

import gymnasium
import numpy as np
import pytest
import torch
from conftest import TINY

import rltemp.envs  # noqa: F401  (registers the envs)
from rltemp.config import load_config
from rltemp.envs.instance_epoch_env import KDInstanceEpochEnv
from rltemp.errors import ConfigError
from rltemp.kd.policy import temperature_to_action


def make(extra=()):
    return KDInstanceEpochEnv(load_config("envs/mnist1d.yaml", TINY + list(extra)))


def rollout(env, seed=0, action=None):
    obs, _ = env.reset(seed=seed, options={"student_seed": 3})
    rng = np.random.default_rng(0)
    out, done = [], False
    while not done:
        a = action if action is not None else rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, r, done, trunc, info = env.step(a)
        assert not trunc
        out.append((obs, r, info))
    return out


def test_make_spaces_and_env_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make("rltemp/KDInstanceEpoch-v0", config=load_config("envs/mnist1d.yaml", TINY)).unwrapped
    n = len(env.data.train)
    assert env.observation_space.shape == (n, len(env.features)) and env.action_space.shape == (n,)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (n, len(env.features)) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    check_env(make(), skip_render_check=True)
    sb3_check_env(make(), warn=True)


@pytest.mark.parametrize("calibration", ["uniform", "kd_share", "influence"])
def test_rewards_telescope_and_instance_rewards_sum_to_each_epochs_reward(calibration):
    env = make([f"env.calibration={calibration}"])
    steps = rollout(env)
    assert len(steps) == env.cfg.distill.epochs
    assert sum(r for _, r, _ in steps) == pytest.approx(100 * (steps[-1][2]["val_acc"] - env.initial_signal), abs=1e-9)
    seen = env.distiller.steps_per_epoch * env.cfg.distill.batch_size
    for _, r, info in steps:
        inst = info["instance_rewards"]
        assert inst.shape == (env.n,) and inst.sum() == pytest.approx(r, abs=1e-9)
        assert len(info["temperature"]) == seen  # drop_last: the instances the epoch's steps saw
        if calibration == "uniform":
            assert np.count_nonzero(inst) in (0, seen) and np.allclose(inst[inst != 0], r / seen)
    if calibration == "influence":  # the zero-sum alignment term spreads the reward unevenly
        assert np.std(steps[0][2]["instance_rewards"][steps[0][2]["instance_rewards"] != 0]) > 0


def test_constant_action_reproduces_distill_fixed_T(tmp_path):
    from rltemp.cli import main

    out = tmp_path / "d"
    assert main(["distill", "envs/mnist1d.yaml", "-T", "fixed:4", "--out", str(out), "--no-progress", *TINY,
                 "seed=3"]) == 0
    env = make()
    steps = rollout(env, action=np.full(env.action_space.shape, temperature_to_action(4.0, 1.0, 10.0), np.float32))
    assert np.allclose(steps[0][2]["temperature"], 4.0, atol=1e-5)
    last = torch.load(out / "last.pt", weights_only=True)["model"]
    for k, v in env.distiller.student.state_dict().items():
        assert torch.allclose(v, last[k], atol=1e-5), k
    ref = json.loads((out / "results.json").read_text())
    assert steps[-1][2]["val_acc"] == pytest.approx(ref["val_acc"], abs=2e-3)


def test_observation_is_the_logits_the_steps_saw_and_no_extra_forward_pass(monkeypatch):
    env = make()
    obs0, _ = env.reset(seed=0)
    calls = []
    monkeypatch.setattr(env.distiller.student, "forward",
                        lambda x, f=env.distiller.student.forward: calls.append(len(x)) or f(x))
    obs1, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    d = env.distiller
    val_batches = -(-len(env.data.val) // 1024)
    assert len(calls) == d.steps_per_epoch + val_batches  # the epoch's steps and its validation, nothing else
    progress = env.features.index("progress")
    assert np.allclose(obs0[:, progress], 0.0) and np.allclose(obs1[:, progress], 1 / env.cfg.distill.epochs)
    seen = info["instances"]
    assert len(seen) == len(set(seen.tolist())) == d.steps_per_epoch * env.cfg.distill.batch_size
    unseen = np.setdiff1d(np.arange(env.n), seen)
    p_s = env.features.index("p_s_true")
    assert not np.array_equal(obs0[seen, p_s], obs1[seen, p_s])  # seen: what the student made of them
    assert np.array_equal(obs0[unseen, p_s], obs1[unseen, p_s])  # unseen (drop_last): as before


def test_nan_actions_get_the_default_temperature_and_are_counted():
    env = make()
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, np.float32)
    a[:] = np.nan
    _, _, _, _, info = env.step(a)
    assert info["nan_actions"] == env.n and np.allclose(info["temperature"], 4.0, atol=1e-5)


def test_last_epoch_terminates_with_a_real_observation_and_vecenv_slots():
    from rltemp.agents.vec_env import InstanceVecEnv

    env = make()
    venv = InstanceVecEnv(env, auto_reset=False)
    assert venv.num_envs == env.n
    venv.reset()
    for epoch in range(env.cfg.distill.epochs):
        obs, rewards, dones, infos = venv.step(np.zeros((env.n, 1), np.float32))
        kd = infos[0]["kd"]
        assert np.allclose(rewards, env.n * kd["instance_rewards"].astype(np.float32))
        assert dones.all() == (epoch == env.cfg.distill.epochs - 1)
    assert np.allclose(obs[:, env.features.index("progress")], 1.0) and obs.any()
    assert infos[0]["terminal_observation"].shape == (len(env.features),) and not infos[0]["TimeLimit.truncated"]


def test_pair_is_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="env.pair"):
        make(["env.pair=true"])
