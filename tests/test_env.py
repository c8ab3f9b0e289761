import json

import gymnasium
import numpy as np
import pytest
import torch
from conftest import ENV_TINY

import rltemp.envs  # noqa: F401  (registers the env)
from rltemp.config import load_config
from rltemp.envs.kd_env import KDTemperatureEnv
from rltemp.envs.rewards import CALIBRATIONS
from rltemp.kd.policy import action_to_temperature, temperature_to_action


def make(extra=()):
    return KDTemperatureEnv(load_config("envs/mnist1d.yaml", ENV_TINY + list(extra)))


def test_gymnasium_make_on_default_preset_steps():
    env = gymnasium.make("rltemp/KDTemperature-v0", config=load_config("envs/default.yaml", [
        "data.options.train_per_class=6", "data.options.test_per_class=2", "teacher.train.epochs=1",
        "teacher.options.channels=[8,8,8]", "distill.epochs=1", "device=cpu"]))
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (128, 15) and obs.dtype == np.float32
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and not terminated
    assert info["temperature"].shape == (128,) and ((info["temperature"] >= 1) & (info["temperature"] <= 10)).all()


def test_check_env_gymnasium_and_sb3():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(make(), skip_render_check=True)
    sb3_check_env(make(), warn=True)


def test_action_mapping_is_log_scale_and_clipped():
    a = torch.tensor([-1.0, 0.0, 1.0, 5.0, -7.0])
    t = action_to_temperature(a, 1.0, 10.0)
    assert torch.allclose(t, torch.tensor([1.0, 10**0.5, 10.0, 10.0, 1.0]))
    assert action_to_temperature(torch.tensor([temperature_to_action(4.0, 1, 10)]), 1, 10).item() == pytest.approx(4.0)


def test_nan_actions_replaced_and_counted():
    env = make()
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, np.float32)
    a[:3] = np.nan
    a[3] = np.inf
    _, _, _, _, info = env.step(a)
    assert info["nan_actions"] == 4
    assert np.allclose(info["temperature"][:4], 4.0) and np.isfinite(info["kd_loss"]).all()


def _rollout(env, actions_seed=0, seed=0, constant=None):
    rng = np.random.default_rng(actions_seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rewards, infos = [], []
    done = False
    while not done:
        a = (np.full(env.action_space.shape, constant, np.float32) if constant is not None
             else rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        obs, r, term, trunc, info = env.step(a)
        out.append(obs)
        rewards.append(r)
        infos.append(info)
        done = term or trunc
    return out, rewards, infos


def test_determinism_same_seed_same_actions():
    o1, r1, _ = _rollout(make())
    o2, r2, _ = _rollout(make())
    assert r1 == r2 and all(np.array_equal(a, b) for a, b in zip(o1, o2))
    o3, _, _ = _rollout(make(), seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(o1, o3))


def test_episode_reward_sums_to_scaled_val_gain_and_calibration_sums():
    for calib in ("uniform", "kd_share"):
        env = make([f"env.calibration={calib}", "env.reward=val_acc"])
        _, rewards, infos = _rollout(env)
        assert infos[-1]["epoch"] == 2
        final_acc = infos[-1]["val_acc"]
        assert sum(rewards) == pytest.approx(100 * (final_acc - env.initial_signal), abs=1e-9)
        for r, info in zip(rewards, infos):
            if "interval_instance_rewards" in info:
                assert info["interval_instance_rewards"].sum() == pytest.approx(r, abs=1e-9)
                # delivered to this step's decisions: each slot's share of the interval
                assert np.allclose(info["instance_rewards"], info["interval_instance_rewards"].sum(0))
            else:
                assert r == 0.0 and not info["instance_rewards"].any()


def test_kd_share_weights_by_kd_loss():
    kd = torch.tensor([[1.0, 3.0], [0.0, 4.0]])
    r = CALIBRATIONS.get("kd_share")(2.0, kd)
    assert torch.allclose(r, torch.tensor([[0.25, 0.75], [0.0, 1.0]], dtype=torch.float64))


def test_episode_end_is_a_termination_with_a_real_final_observation():
    env = make()
    obs, rewards, infos = _rollout(env)
    final = obs[-1]
    assert final.shape == env.observation_space.shape and final.any()
    assert np.allclose(final[:, env.features.index("progress")], 1.0)
    assert env.observation_space.contains(final)


def test_val_loss_reward_and_pair_actions():
    env = make(["env.reward=val_loss", "env.pair=true"])
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (32, 2)
    _, rewards, infos = _rollout(env)
    assert sum(rewards) == pytest.approx(100 * (-infos[-1]["val_loss"] - env.initial_signal), abs=1e-6)
    assert infos[0]["temperature"].shape == (32, 2)


def test_parity_with_distill_fixed_T(tmp_path):
    from rltemp.cli import main

    T = 4.0
    out = tmp_path / "d"
    overrides = [o for o in ENV_TINY if not o.startswith("env.")] + ["seed=7"]
    assert main(["distill", "envs/mnist1d.yaml", "-T", f"fixed:{T}", "--out", str(out), "--no-progress", *overrides]) == 0
    ref = json.loads((out / "results.json").read_text())
    env = make()
    obs, _ = env.reset(seed=0, options={"student_seed": 7})
    done = False
    while not done:
        _, _, done, trunc, _ = env.step(np.full(env.action_space.shape, temperature_to_action(T, 1.0, 10.0), np.float32))
        assert not trunc  # the epoch budget is part of the task: the end is a termination
    from rltemp.kd.trainer import evaluate

    test_acc, _ = evaluate(env.distiller.student, env.data.test, env.data)
    assert test_acc == pytest.approx(ref["test_acc"], abs=2e-3)
    last = torch.load(out / "last.pt", weights_only=True)["model"]
    for k, v in env.distiller.student.state_dict().items():
        assert torch.allclose(v, last[k], atol=1e-4), k


def test_env_never_touches_test_split(monkeypatch):
    env = make()
    env.reset(seed=0)
    env.data.test.x = None  # any access through evaluate() would crash
    env.data.test.y = None
    _rollout(env)


def test_bad_env_config_names_the_field():
    from rltemp.errors import ConfigError

    with pytest.raises(ConfigError, match="env.features: unknown feature 'p_s_tru'"):
        make(["env.features=[p_s_tru]"])
    with pytest.raises(ConfigError, match="env.t_min"):
        make(["env.t_min=5", "env.t_max=2"])
    with pytest.raises(ConfigError, match="env.credit_rank must be >= 0"):
        make(["env.credit_rank=-2"])


def test_env_on_augmented_cifar_preset(tmp_path):
    """On augmented data there is no teacher-logit cache: the teacher runs on each augmented batch."""
    from conftest import write_fake_cifar

    from rltemp.models import build_model

    root = write_fake_cifar(tmp_path / "data", n_train=400, n_test=16)
    ckpt = tmp_path / "t.pth"
    torch.save({"model": build_model("resnet56", (3, 32, 32), 100).state_dict()}, ckpt)
    env = KDTemperatureEnv(load_config("envs/cifar100/resnet56-resnet20.yaml", [
        f"data.root={root}", f"teacher.checkpoint={ckpt}", "distill.epochs=1", "device=cpu", "env.val_subset=32"]))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 15) and env.distiller.teacher_cache is None
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert info["temperature"].shape == (64,) and np.isfinite(info["kd_loss"]).all()
