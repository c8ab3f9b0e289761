"""What every registered environment promises: both environment checkers pass, the test split is
never read, the episode's end is a termination with a real final observation, and bad settings name
their field. (Each environment's own behaviour: test_schedule_env, test_run_policy,
test_instance_epoch_env.)"""

import gymnasium
import numpy as np
import pytest
import torch
from conftest import TINY

import rltemp.envs
from rltemp.config import load_config
from rltemp.data.base import Split
from rltemp.errors import ConfigError
from rltemp.kd.forms import action_to_temperature, temperature_to_action

# every registered environment, on a seconds-long config (the instance env on its own, without a base schedule)
SETTINGS = {
    "rltemp/KDRunSchedule-v0": [*TINY, "distill.epochs=3", "env.reward_reference=", "env.run_probe=0.5"],
    "rltemp/KDInstanceEpoch-v0": [*TINY, "env.base_policy="],
}


def make(env_id, extra=()):
    return gymnasium.make(env_id, config=load_config("envs/mnist1d.yaml", [*SETTINGS[env_id], *extra])).unwrapped


def test_every_registered_environment_is_covered():
    assert set(SETTINGS) == set(rltemp.envs.ENTRY_POINTS)
    assert all(e in gymnasium.registry for e in SETTINGS)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(SETTINGS))
def test_gymnasium_and_sb3_env_checkers(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(make(env_id), skip_render_check=True)
    sb3_check_env(make(env_id), warn=True)


class CountingSplit(Split):
    """A split that counts every read of its batches: the environments must never read the test split."""

    reads = 0

    def batches(self, *args, **kwargs):
        CountingSplit.reads += 1
        return super().batches(*args, **kwargs)


@pytest.mark.parametrize("env_id", sorted(SETTINGS))
def test_a_whole_episode_never_reads_the_test_split_and_ends_in_a_termination(env_id):
    env = make(env_id)
    test = CountingSplit(env.data.test.x, env.data.test.y)
    env.data.test = test
    CountingSplit.reads = 0
    obs, info = env.reset(seed=0, options={"student_seed": 3})
    assert 0.0 <= info["val_acc"] <= 1.0  # what the rewards count from
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.float32))
        assert not truncated  # the epoch budget is part of the task: its end is a termination
        done = terminated
    assert env.observation_space.contains(obs) and obs.any()  # a real final observation
    assert env.distiller.done
    assert CountingSplit.reads == 0
    # the split is readable (the counter works): a plain evaluation reads it once
    from rltemp.kd.trainer import evaluate

    evaluate(env.distiller.student, env.data.test, env.data)
    assert CountingSplit.reads == 1


def test_action_mapping_is_log_scale_and_clipped():
    a = torch.tensor([-1.0, 0.0, 1.0, 5.0, -7.0])
    t = action_to_temperature(a, 1.0, 10.0)
    assert torch.allclose(t, torch.tensor([1.0, 10**0.5, 10.0, 10.0, 1.0]))
    assert action_to_temperature(torch.tensor([temperature_to_action(4.0, 1, 10)]), 1, 10).item() == pytest.approx(4.0)


@pytest.mark.parametrize("override, message", [
    ("env.t_min=12", "env.t_min / t_max must satisfy"),
    ("env.credit_rank=-2", "env.credit_rank must be >= 0"),
    ("env.run_probe=0", r"env.run_probe must be a fraction of one epoch in \(0, 1\]"),
    ("env.run_probe_temperature=20", r"env.run_probe_temperature must lie in \[t_min, t_max\]"),
    ("env.max_multiplier=0.5", "env.max_multiplier must be a finite number >= 1"),
    ("env.reward_scale=0", "env.reward_scale must be a finite number > 0"),
    ("env.pair=true", "unknown config key 'env.pair'"),  # retired knobs are unknown keys
])
def test_bad_env_config_names_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("envs/mnist1d.yaml", [*TINY, override])


@pytest.mark.parametrize("env_id, extra, message", [
    ("rltemp/KDRunSchedule-v0", ["env.run_features=[p_t_true]"], "env.run_features: unknown feature 'p_t_true'"),
    ("rltemp/KDInstanceEpoch-v0", ["env.features=[p_s_tru]"], "env.features: unknown feature 'p_s_tru'"),
    ("rltemp/KDInstanceEpoch-v0", ["env.base_policy=nope"], "env.base_policy: policy 'nope' not found"),
])
def test_bad_feature_sets_and_base_policies_name_the_field(env_id, extra, message):
    with pytest.raises(ConfigError, match=message):
        make(env_id, extra)


@pytest.mark.slow
def test_schedule_env_on_an_augmented_cifar_preset(tmp_path):
    """On augmented data there is no teacher-logit cache: the teacher runs on each augmented batch."""
    from conftest import write_fake_cifar

    from rltemp.models import build_model

    root = write_fake_cifar(tmp_path / "data", n_train=400, n_test=16)
    ckpt = tmp_path / "t.pth"
    torch.save({"model": build_model("resnet56", (3, 32, 32), 100).state_dict()}, ckpt)
    cfg = load_config("envs/cifar100/resnet56-resnet20.yaml", [
        f"data.root={root}", f"teacher.checkpoint={ckpt}", "distill.epochs=2", "device=cpu", "env.reward_reference=",
        "env.run_probe=0.2"])
    env = gymnasium.make("rltemp/KDRunSchedule-v0", config=cfg).unwrapped
    env.reset(seed=0)
    assert env.distiller.teacher_cache is None
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert terminated and np.isfinite(reward) and info["temperatures"] == pytest.approx([10**0.5] * 2)
