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
from rltemp.kd.forms import temperature_to_action

# the env on its own (no base schedule: the action is the temperature), with features the tests read
ALONE = [*TINY, "env.base_policy=", "env.features=[p_s_top1, p_t_top1, margin_s]"]


def make(extra=()):
    return KDInstanceEpochEnv(load_config("envs/mnist1d.yaml", ALONE + list(extra)))


def rollout(env, seed=0, action=None):
    obs, info0 = env.reset(seed=seed, options={"student_seed": 3})
    env.initial_acc = info0["val_acc"]
    rng = np.random.default_rng(0)
    out, done = [], False
    while not done:
        a = action if action is not None else rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, r, done, trunc, info = env.step(a)
        assert not trunc
        out.append((obs, r, info))
    return out


def test_make_and_spaces():
    env = gymnasium.make("rltemp/KDInstanceEpoch-v0", config=load_config("envs/mnist1d.yaml", ALONE)).unwrapped
    n = len(env.data.train)
    assert env.observation_space.shape == (n, len(env.features)) and env.action_space.shape == (n,)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (n, len(env.features)) and obs.dtype == np.float32 and env.observation_space.contains(obs)


def test_rewards_telescope_and_instance_rewards_sum_to_each_epochs_reward():
    env = make()
    steps = rollout(env)
    assert len(steps) == env.cfg.distill.epochs
    assert sum(r for _, r, _ in steps) == pytest.approx(100 * (steps[-1][2]["val_acc"] - env.initial_acc), abs=1e-9)
    seen = env.distiller.steps_per_epoch * env.cfg.distill.batch_size
    for _, r, info in steps:
        inst = info["instance_rewards"]
        assert inst.shape == (env.n,) and inst.sum() == pytest.approx(r, abs=1e-9)
        assert len(info["temperature"]) == seen  # drop_last: the instances the epoch's steps saw
        assert np.count_nonzero(inst) == seen  # the unseen rest of the split gets nothing
    assert np.std(steps[0][2]["instance_rewards"][steps[0][2]["instance_rewards"] != 0]) > 0  # credit spreads it


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
    seen = info["instances"]
    assert len(seen) == len(set(seen.tolist())) == d.steps_per_epoch * env.cfg.distill.batch_size
    unseen = np.setdiff1d(np.arange(env.n), seen)
    p_s = env.features.index("p_s_top1")
    assert not np.array_equal(obs0[seen, p_s], obs1[seen, p_s])  # seen: what the student made of them
    assert np.array_equal(obs0[unseen, p_s], obs1[unseen, p_s])  # unseen (drop_last): as before


def test_nan_actions_are_neutral_and_counted():
    env = make()
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, np.float32)
    a[:] = np.nan
    _, _, _, _, info = env.step(a)
    assert info["nan_actions"] == env.n and np.allclose(info["temperature"], 10**0.5, atol=1e-5)


def test_on_the_shipped_schedule_the_action_modulates_it():
    """The default env.base_policy: the epoch's temperature is the shipped policy's, spread per instance
    by the action within [T / max_multiplier, T · max_multiplier], centred in log space."""
    from rltemp.kd.policy import load_policy

    env = KDInstanceEpochEnv(load_config("envs/mnist1d.yaml", TINY))
    env.reset(seed=0, options={"student_seed": 3})
    policy = load_policy("default")  # it decides once, from a probe of the fresh student
    probe = policy.form.probe
    t_sched = policy.form.temperature(policy.act(env.distiller.probe(probe.epochs, probe.temperature)), 0.0)
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert info["schedule_temperature"] == pytest.approx(t_sched) and np.allclose(info["temperature"], t_sched)
    a = np.linspace(-1, 1, env.n).astype(np.float32)
    _, _, _, _, info = env.step(a)
    t, ts = info["temperature"], info["schedule_temperature"]
    assert t.max() > ts and t.max() / t.min() <= 4.0 + 1e-4 and t.std() > 0
    # within [T / 2, 2 T] (max_multiplier 2), clipped to [t_min, t_max]
    assert (t >= max(ts / 2, env.ecfg.t_min) - 1e-4).all() and (t <= min(2 * ts, env.ecfg.t_max) + 1e-4).all()


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
    assert obs.any() and obs.std(0).min() > 0  # a real observation: per-instance values, not a zero reset
    assert infos[0]["terminal_observation"].shape == (len(env.features),) and not infos[0]["TimeLimit.truncated"]
