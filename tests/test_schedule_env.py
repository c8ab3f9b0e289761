import json

import gymnasium
import numpy as np
import pytest
import torch
from conftest import TINY

import rltemp.envs  # noqa: F401  (registers the envs)
from rltemp.config import load_config
from rltemp.envs.schedule_env import KDScheduleEnv
from rltemp.kd.forms import temperature_to_action

SCHED_TINY = [*TINY, "distill.epochs=3", "env.reward_reference="]  # raw gains unless a test asks


def make(extra=()):
    return KDScheduleEnv(load_config("envs/mnist1d.yaml", [*SCHED_TINY, *extra]))


def act(t: float) -> np.ndarray:
    return np.array([temperature_to_action(t, 1.0, 10.0)], np.float32)


def _episode(env, temps, seed=0, student_seed=None):
    opts = {"student_seed": student_seed} if student_seed is not None else None
    obs, info0 = env.reset(seed=seed, options=opts)
    env.initial_acc = info0["val_acc"]
    out, rewards, infos = [obs], [], []
    for t in temps:
        obs, r, term, trunc, info = env.step(act(t))
        out.append(obs)
        rewards.append(r)
        infos.append(info)
    assert term and not trunc
    return out, rewards, infos


def test_gymnasium_make_and_spaces():
    env = gymnasium.make("rltemp/KDSchedule-v0", config=load_config("envs/mnist1d.yaml", SCHED_TINY))
    obs, info = env.reset(seed=0)
    assert obs.shape == (2,) and obs.dtype == np.float32 and obs[0] == 0.0 and "student_seed" in info


def test_one_step_is_one_epoch_and_rewards_telescope_to_the_validation_gain():
    env = make()
    obs, rewards, infos = _episode(env, [8.0, 4.0, 2.0])
    assert [i["epoch"] for i in infos] == [0, 1, 2] and [i["temperature"] for i in infos] == pytest.approx([8, 4, 2])
    assert sum(rewards) == pytest.approx(100 * (infos[-1]["val_acc"] - env.initial_acc), abs=1e-9)
    assert obs[-1][0] == pytest.approx(1.0) and obs[-1][1] == pytest.approx(infos[-1]["val_acc"])  # real final obs
    assert env.distiller.step_count == 3 * (len(env.data.train) // 32)


@pytest.mark.slow
def test_constant_action_reproduces_distill_fixed_T(tmp_path):
    from rltemp.cli import main

    out = tmp_path / "d"
    assert main(["distill", "envs/mnist1d.yaml", "-T", "fixed:4", "--out", str(out), "--no-progress", *SCHED_TINY,
                 "seed=7"]) == 0
    ref = json.loads((out / "results.json").read_text())
    env = make()
    _episode(env, [4.0] * 3, student_seed=7)
    last = torch.load(out / "last.pt", weights_only=True)["model"]
    for k, v in env.distiller.student.state_dict().items():
        assert torch.allclose(v, last[k], atol=1e-5), k
    assert env.distiller.last_val_acc == pytest.approx(ref["val_acc"], abs=1e-9)


def test_reference_reward_is_the_gain_over_the_reference_run(tmp_path):
    env = KDScheduleEnv(load_config("envs/mnist1d.yaml", [*SCHED_TINY, "env.reward_reference=fixed:4"]),
                        reference_dir=tmp_path)
    _, rewards, infos = _episode(env, [4.0] * 3, student_seed=5)
    assert rewards == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)  # the reference itself gains nothing over itself
    curve = env.reference_curve(5, 0)
    assert len(curve) == 4 and len(list(tmp_path.glob("*.json"))) == 1  # cached on disk
    _, rewards, infos = _episode(env, [1.0, 1.0, 1.0], student_seed=5)
    assert sum(rewards) == pytest.approx(100 * (infos[-1]["val_acc"] - curve[-1]), abs=1e-9)


def test_determinism_and_bad_actions():
    a = _episode(make(), [8.0, 3.0, 1.0])
    b = _episode(make(), [8.0, 3.0, 1.0])
    assert a[1] == b[1] and all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(1,\)"):
        env.step(np.zeros(3, np.float32))
    _, _, _, _, info = env.step(np.array([np.nan], np.float32))
    assert info["nan_actions"] == 1 and info["temperature"] == pytest.approx(10**0.5)


def test_bad_schedule_features_name_the_field():
    from rltemp.errors import ConfigError

    with pytest.raises(ConfigError, match="env.schedule_features: unknown feature 'progres'.*did you mean 'progress'"):
        make(["env.schedule_features=[progres]"])
    with pytest.raises(ConfigError, match="env.schedule_features: unknown feature .p_t_top1."):
        make(["env.schedule_features=[p_t_top1]"])  # an instance feature cannot drive a schedule


@pytest.mark.slow
def test_a_pool_of_pairs_draws_each_with_its_own_recipe_and_reference(tmp_path):
    """env.pool: each pair is the config with its own overrides (here a learning rate, then a class
    subset with another teacher); its student trains as `rltemp distill` with those overrides would, its
    reference curve is its own, and bad pools name the field."""
    from rltemp.cli import main
    from rltemp.errors import ConfigError

    pool = ("env.pool=[{name: fast, overrides: []}, {name: slow, overrides: [distill.lr=0.0002]}, "
            "{name: narrow, overrides: ['data.options.num_samples=400', 'teacher.options.channels=4']}]")
    env = KDScheduleEnv(load_config("envs/mnist1d.yaml", [*SCHED_TINY, "env.reward_reference=fixed:4", pool]),
                        reference_dir=tmp_path)
    assert [p.name for p in env.pairs] == ["fast", "slow", "narrow"] and env.steps == 3
    base_lr = env.cfg.distill.lr
    _, info = env.reset(options={"student_seed": 3, "pair": 1})
    assert info["pair"] == "slow" and env.distiller.optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.0002)
    env.reset(options={"student_seed": 3, "pair": 0})
    assert env.distiller.optimizer.param_groups[0]["initial_lr"] == pytest.approx(base_lr)
    env.reset(options={"student_seed": 3, "pair": 2})
    assert len(env.data.train) < len(env.pairs[0].data.train) and env.teacher is not env.pairs[0].teacher
    slow, fast = env.reference_curve(3, 1), env.reference_curve(3, 0)
    assert slow[0] == fast[0] and slow[1:] != fast[1:]  # same initial student, different training
    assert len(list(tmp_path.glob("*.json"))) == 3  # one per pair (computed at each reset)
    # the slow student's episode at T=4 is `rltemp distill distill.lr=0.0002 -T fixed:4` (its reference)
    out = tmp_path / "d"
    assert main(["distill", "envs/mnist1d.yaml", "-T", "fixed:4", "--out", str(out), "--no-progress", *SCHED_TINY,
                 "distill.lr=0.0002", "seed=3"]) == 0
    ref = json.loads((out / "results.json").read_text())
    assert slow[-1] == pytest.approx(ref["val_acc"], abs=1e-9)
    drawn = {env.reset(seed=s)[1]["pair"] for s in range(12)}
    assert drawn == {"fast", "slow", "narrow"}  # drawn with the env's seeded RNG
    with pytest.raises(ValueError, match=r"options\['pair'\] must index env.pool \(0..2\), got 3"):
        env.reset(options={"pair": 3})
    with pytest.raises(ConfigError, match=r"env.pool\[0\] \(x\): override 'env.t_min=2' is not of a pair's sections"):
        load_config("envs/mnist1d.yaml", [*SCHED_TINY, "env.pool=[{name: x, overrides: [env.t_min=2]}]"])
    with pytest.raises(ConfigError, match="env.pool: every pair needs a distinct name"):
        load_config("envs/mnist1d.yaml", [*SCHED_TINY, "env.pool=[{name: x}, {name: x}]"])
    bad = load_config("envs/mnist1d.yaml", [*SCHED_TINY, "env.pool=[{name: x, overrides: [distill.epochs=0]}]"])
    with pytest.raises(ConfigError, match=r"env.pool\[0\] \(x\): distill.epochs must be >= 1"):
        KDScheduleEnv(bad)
    mixed = load_config("envs/mnist1d.yaml", [*SCHED_TINY, "env.pool=[{name: a}, {name: b, overrides: [distill.epochs=4]}]"])
    with pytest.raises(ConfigError, match="one decision per epoch needs the same distill.epochs for every pair"):
        _ = KDScheduleEnv(mixed).steps


def test_grid_reference_is_the_best_constant_of_this_student(tmp_path):
    """env.reward_reference=grid: the reference curve is that of the fixed T of {1, 2, 4, 8} whose run of
    this very student ends highest on validation, so an episode at that T returns exactly 0."""
    env = KDScheduleEnv(load_config("envs/mnist1d.yaml", [*SCHED_TINY, "env.reward_reference=grid"]),
                        reference_dir=tmp_path)
    curve = env.reference_curve(4, 0)
    finals = {t: env._curve(f"fixed:{t}", 4, 0)[-1] for t in (1, 2, 4, 8)}
    best = max(finals, key=finals.get)
    assert curve[-1] == max(finals.values()) and len(list(tmp_path.glob("*.json"))) == 4
    _, rewards, _ = _episode(env, [best] * 3, student_seed=4)
    assert sum(rewards) == pytest.approx(0.0, abs=1e-9)
