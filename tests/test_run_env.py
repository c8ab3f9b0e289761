"""rltemp/KDRunSchedule-v0: a probe at reset, one decision per run, rewards over the reference run
(a SPEC or the best constant of the grid), the pool of training pairs, and the Distiller parity."""

import json

import gymnasium
import numpy as np
import pytest
import torch
from conftest import TINY

import rltemp.envs  # noqa: F401  (registers the envs)
from rltemp.config import load_config
from rltemp.envs.run_env import KDRunScheduleEnv
from rltemp.errors import ConfigError
from rltemp.kd.forms import ProbeSchedule, action_to_temperature, temperature_to_action

RUN_TINY = [*TINY, "distill.epochs=4", "env.run_probe=0.5", "env.run_probe_temperature=3", "env.reward_reference="]


def make(extra=(), **kw):
    return KDRunScheduleEnv(load_config("envs/mnist1d.yaml", [*RUN_TINY, *extra]), **kw)


def constant(t: float) -> np.ndarray:
    """The decision whose schedule is T = t throughout."""
    a = temperature_to_action(t, 1.0, 10.0)
    return np.array([a, a], np.float32)


def schedule(decision, epochs=4):
    return [float(action_to_temperature(ProbeSchedule.action(torch.tensor(decision), k / epochs), 1, 10)[0])
            for k in range(epochs)]


def test_reset_observes_the_probe_and_one_decision_sets_every_epoch():
    env = gymnasium.make("rltemp/KDRunSchedule-v0", config="envs/mnist1d.yaml", overrides=RUN_TINY).unwrapped
    obs, info = env.reset(options={"student_seed": 5, "pair": 0})
    probed = env.distiller.probe(0.5, 3.0)
    assert obs.shape == (5,) and obs.dtype == np.float32 and env.distiller.step_count == 0
    assert obs.tolist() == pytest.approx(list(env._observation(probed)))  # the probe's five statistics
    assert obs[0] == pytest.approx(probed.val.acc / probed.val.acc_t)  # rel_acc first
    with pytest.raises(ValueError, match=r"action must have shape \(2,\)"):
        env.step(np.zeros(1, np.float32))
    decision = np.array([0.7, -0.8], np.float32)
    final, ret, term, trunc, out = env.step(decision)
    assert term and not trunc and out["temperatures"] == pytest.approx(schedule(decision))
    assert out["t_start"] > out["t_end"] and set(out["decision_features"]) == set(env.features)
    assert ret == pytest.approx(100 * (out["val_acc"] - info["val_acc"]), abs=1e-9)  # no reference: the raw gain
    assert env.observation_space.contains(final) and env.distiller.done
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(decision)


def test_a_constant_decision_reproduces_distill_fixed_T(tmp_path):
    from rltemp.cli import main

    out = tmp_path / "d"
    assert main(["distill", "envs/mnist1d.yaml", "-T", "fixed:4", "--out", str(out), "--no-progress", *RUN_TINY,
                 "seed=7"]) == 0
    ref = json.loads((out / "results.json").read_text())
    env = make()
    env.reset(options={"student_seed": 7})
    *_, info = env.step(constant(4.0))
    last = torch.load(out / "last.pt", weights_only=True)["model"]
    for k, v in env.distiller.student.state_dict().items():
        assert torch.allclose(v, last[k], atol=1e-5), k
    assert info["val_acc"] == pytest.approx(ref["val_acc"],
                                            abs=1e-9) and info["temperatures"] == pytest.approx([4.0] * 4)


def test_reward_is_the_gain_over_the_reference_run(tmp_path):
    env = make(["env.reward_reference=fixed:4"], reference_dir=tmp_path)
    env.reset(options={"student_seed": 5})
    _, ret, *_ = env.step(constant(4.0))
    assert ret == pytest.approx(0.0, abs=1e-9)  # the reference gains nothing over itself
    curve = env.references.curve(5, 0)
    assert len(curve) == 5 and len(list(tmp_path.glob("*.json"))) == 1  # cached on disk
    env.reset(options={"student_seed": 5})
    *_, ret, _, _, info = env.step(constant(1.0))
    assert ret == pytest.approx(100 * ((info["val_acc"] - curve[0]) - (curve[-1] - curve[0])), abs=1e-9)


def test_grid_reference_is_the_best_constant_of_this_student(tmp_path):
    """env.reward_reference=grid: the reference is the run of the fixed T of {1, 2, 4, 8} that ends highest
    on this very student's validation, so a decision of that constant returns exactly 0."""
    env = make(["env.reward_reference=grid"], reference_dir=tmp_path)
    curve = env.references.curve(4, 0)
    finals = {t: env.references.run(f"fixed:{t}", 4, 0)[-1] for t in (1, 2, 4, 8)}
    best = max(finals, key=finals.get)
    assert curve[-1] == max(finals.values()) and len(list(tmp_path.glob("*.json"))) == 4
    env.reset(options={"student_seed": 4})
    _, ret, *_ = env.step(constant(best))
    assert ret == pytest.approx(0.0, abs=1e-9)


def test_determinism_and_non_finite_actions():
    a = make()
    b = make()
    ra = [a.reset(options={"student_seed": 3})[0], a.step(np.array([0.3, -0.5], np.float32))]
    rb = [b.reset(options={"student_seed": 3})[0], b.step(np.array([0.3, -0.5], np.float32))]
    assert np.array_equal(ra[0], rb[0]) and ra[1][1] == rb[1][1]
    a.reset(options={"student_seed": 3})
    *_, info = a.step(np.array([np.nan, 0.0], np.float32))
    assert info["nan_actions"] == 4 and info["temperatures"][0] == pytest.approx(10**0.5)


@pytest.mark.slow
def test_a_pool_of_pairs_draws_each_with_its_own_recipe_and_reference(tmp_path):
    """env.pool: each pair is the config with its own overrides (here a learning rate, then a data size
    with another teacher); its student trains as `rltemp distill` with those overrides would, its
    reference curve is its own, and bad pools name the field."""
    from rltemp.cli import main

    pool = ("env.pool=[{name: fast, overrides: []}, {name: slow, overrides: [distill.lr=0.0002]}, "
            "{name: narrow, overrides: ['data.options.num_samples=400', 'teacher.options.channels=4']}]")
    env = make(["env.reward_reference=fixed:4", pool], reference_dir=tmp_path)
    assert [p.name for p in env.pairs] == ["fast", "slow", "narrow"]
    base_lr = env.cfg.distill.lr
    _, info = env.reset(options={"student_seed": 3, "pair": 1})
    assert info["pair"] == "slow" and env.distiller.optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.0002)
    env.reset(options={"student_seed": 3, "pair": 0})
    assert env.distiller.optimizer.param_groups[0]["initial_lr"] == pytest.approx(base_lr)
    env.reset(options={"student_seed": 3, "pair": 2})
    assert len(env.data.train) < len(env.pairs[0].data.train) and env.teacher is not env.pairs[0].teacher
    slow, fast = env.references.curve(3, 1), env.references.curve(3, 0)
    assert slow[0] == fast[0] and slow[1:] != fast[1:]  # same initial student, different training
    assert len(list(tmp_path.glob("*.json"))) == 3  # one per pair (computed at each reset)
    out = tmp_path / "d"  # the slow student's reference is `rltemp distill distill.lr=0.0002 -T fixed:4`
    assert main(["distill", "envs/mnist1d.yaml", "-T", "fixed:4", "--out", str(out), "--no-progress", *RUN_TINY,
                 "distill.lr=0.0002", "seed=3"]) == 0
    assert slow[-1] == pytest.approx(json.loads((out / "results.json").read_text())["val_acc"], abs=1e-9)
    drawn = {env.reset(seed=s)[1]["pair"] for s in range(12)}
    assert drawn == {"fast", "slow", "narrow"}  # drawn with the env's seeded RNG
    shared = [make([pool], pair_seed=11) for _ in range(2)]  # the workers of one VecEnv: the same pairs at once
    runs = [[e.reset(seed=100 * w + s)[1] for s in range(6)] for w, e in enumerate(shared)]
    assert [i["pair"] for i in runs[0]] == [i["pair"] for i in runs[1]]  # one pair sequence
    assert [i["student_seed"] for i in runs[0]] != [i["student_seed"] for i in runs[1]]  # each its own students
    with pytest.raises(ValueError, match=r"options\['pair'\] must index env.pool \(0..2\), got 3"):
        env.reset(options={"pair": 3})


@pytest.mark.parametrize("overrides, message", [
    (["env.pool=[{name: x, overrides: [env.t_min=2]}]"], r"env.pool\[0\] \(x\): override 'env.t_min=2' is not"),
    (["env.pool=[{name: x}, {name: x}]"], "env.pool: every pair needs a distinct name"),
    (["env.run_features=[first_acc]"], "env.run_features: unknown feature .first_acc."),
])
def test_bad_pools_and_features_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make(overrides)


def test_bad_pair_overrides_and_short_budgets_name_the_pair():
    with pytest.raises(ConfigError, match=r"env.pool\[0\] \(x\): distill.epochs must be >= 1"):
        make(["env.pool=[{name: x, overrides: [distill.epochs=0]}]"])
    with pytest.raises(ConfigError, match=r"distill.epochs must be >= 2 for a run-level decision \(x\)"):
        make(["env.pool=[{name: x, overrides: [distill.epochs=1]}]"])
