"""Run-level schedule policies (agent.decision: run): the two-decision environment, export ->
transfer parity (distill, the env, the controller), resume, config errors, and that the preset's
learner finds a schedule that depends on what the decision observes."""

import numpy as np
import pytest
import torch
from conftest import TINY

from rltemp.agents.config import load_agent
from rltemp.config import load_config
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.features import GlobalState
from rltemp.kd.policy import action_to_temperature, load_policy, run_temperature

RUN_TINY = [*TINY, "distill.epochs=4"]
AGENT_TINY = ["agent.episodes=6", "agent.episodes_per_rollout=1"]


def policy_distiller(policy_dir, seed, overrides=()):
    """A Distiller of the tiny config's student ``seed`` (with ``overrides``) distilled with ``-T policy:policy_dir``."""
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller

    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, *overrides, f"distill.temperature=policy:{policy_dir}", f"seed={seed}"])
    data, device, strategy = prepare(cfg)
    return Distiller(cfg.distill, data, build_student_model(cfg, data, seed), get_teacher(cfg, data, device), strategy,
                     seed=seed)


@pytest.fixture(scope="module")
def run_policy(tmp_path_factory, _cache):
    from rltemp.agents.train import train_policy

    out = tmp_path_factory.mktemp("run-policy")
    res = train_policy(load_config("envs/mnist1d.yaml", RUN_TINY), load_agent("agents/ppo-run.yaml", AGENT_TINY),
                       out=out, progress=False, jobs=1)
    return out, res


def test_run_env_makes_two_decisions_that_cover_the_run():
    import gymnasium

    import rltemp.envs  # noqa: F401 - registers the environments
    from rltemp.envs.schedule_env import KDScheduleEnv

    env = gymnasium.make("rltemp/KDRunSchedule-v0", config="envs/mnist1d.yaml", overrides=RUN_TINY).unwrapped
    obs, _ = env.reset(options={"student_seed": 5, "student": 0})
    assert obs.tolist() == [0.0, 0.0] and env.action_space.shape == (2,)  # nothing known before the first epoch
    with pytest.raises(ValueError, match=r"action must have shape \(2,\)"):
        env.step(np.zeros(1, np.float32))
    obs, r0, term, trunc, first = env.step(np.array([0.2, 0.9], np.float32))
    assert not (term or trunc) and first["temperatures"] == [pytest.approx(float(action_to_temperature(torch.tensor(0.2), 1, 10)))]
    assert obs.tolist() == pytest.approx([1.0, first["val_acc"]])  # decided on the first epoch's validation accuracy
    decision = np.array([0.8, -0.6], np.float32)
    obs, r1, term, trunc, info = env.step(decision)
    assert term and not trunc and len(info["temperatures"]) == 3
    assert info["temperatures"] == pytest.approx([run_temperature(torch.tensor(decision), k / 4, 1, 10) for k in (1, 2, 3)])
    assert info["t_start"] > info["t_end"] and info["decision_features"] == {"last_val_acc": pytest.approx(first["val_acc"])}
    # the same epochs, one at a time, on the per-epoch env: the same rewards (the run env sums them)
    per_epoch = KDScheduleEnv("envs/mnist1d.yaml", RUN_TINY)
    per_epoch.reset(options={"student_seed": 5, "student": 0})
    rewards = []
    for t in [float(action_to_temperature(torch.tensor(0.2), 1, 10)), *info["temperatures"]]:
        a = np.array([2 * np.log(t) / np.log(10) - 1], np.float32)
        rewards.append(per_epoch.step(a)[1])
    assert r0 == pytest.approx(rewards[0], abs=1e-4) and r1 == pytest.approx(sum(rewards[1:]), abs=1e-4)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(decision)


def test_run_policy_exports_what_sb3_trained(run_policy):
    from stable_baselines3 import PPO

    out, res = run_policy
    policy = load_policy(out)
    meta = policy.meta["schedule"]
    assert policy.decision == "run" and meta["features"] == ["last_val_acc"] and "normalize_obs" in meta
    assert policy.schedule.net[0].weight.shape[1] == 2 and policy.schedule.net[-1].weight.shape[0] == 2
    assert len(res["schedule_episodes"]) == 6 and all(len(e["temperature"]) == 4 for e in res["schedule_episodes"])
    assert all(0 <= e["decision_features"]["last_val_acc"] <= 1 for e in res["schedule_episodes"])
    model = PPO.load(out / "schedule.zip", device="cpu")  # SB3's own file (a test may unpickle it)
    mean, std = np.array(meta["normalize_obs"]["mean"]), np.array(meta["normalize_obs"]["std"])
    raw = np.array([[0.0, 0.0], [1.0, 0.05], [1.0, 0.3], [1.0, 0.9]], np.float32)
    a, _ = model.predict(((raw - mean) / std).astype(np.float32), deterministic=True)
    assert np.allclose(policy.schedule(torch.from_numpy(raw)).numpy(), np.clip(a, -1, 1), atol=1e-5)
    assert policy.first_temperature() == pytest.approx(float(action_to_temperature(torch.tensor(a[0, 0]), 1, 10)), rel=1e-5)
    with pytest.raises(RltempError, match="decides once per run"):
        policy.schedule_temperature(GlobalState(0.5, 0.3, 1.0))


@pytest.mark.parametrize("student", [[], ["student.model=cnn1d", "student.options={channels: 4}"]])
def test_run_policy_transfers_as_the_env_and_the_controller_decide(run_policy, tmp_path, student):
    """-T policy:DIR on an unseen seed (and architecture): the first epoch at the head's first output,
    then the decision read from the first epoch's validation accuracy, interpolated — exactly what
    the environment runs with the same actions, and what TemperatureController says in a user's loop."""
    import gymnasium

    import rltemp.envs  # noqa: F401
    from rltemp.kd.pipeline import run_distill

    out, _ = run_policy
    policy = load_policy(out)
    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, *student, f"distill.temperature=policy:{out}", "seed=7"])
    res = run_distill(cfg, out=tmp_path / "d", progress=False)
    sched = res["schedule"]
    assert len(sched) == 4 and sched[0] == pytest.approx(policy.first_temperature())
    # the environment with the policy's deterministic actions: the same student, the same temperatures
    env = gymnasium.make("rltemp/KDRunSchedule-v0", config="envs/mnist1d.yaml", overrides=[*RUN_TINY, *student]).unwrapped
    obs, _ = env.reset(options={"student_seed": 7, "student": 0})
    obs, *_, info0 = env.step(policy.schedule(torch.from_numpy(obs)[None])[0].numpy())
    *_, info = env.step(policy.schedule(torch.from_numpy(obs)[None])[0].numpy())
    assert [*info0["temperatures"], *info["temperatures"]] == pytest.approx(sched, rel=1e-5)
    # the controller in a user's loop, fed the same validation accuracies and losses
    d = policy_distiller(out, 7, student)
    ctl = rltemp.TemperatureController.load(out)
    seen = []
    while not d.done:
        for i, (x, y, idx) in enumerate(d.epoch_batches()):
            progress = d.progress
            step = d.train_step(x, y, idx)
            t = ctl(step.student_logits, step.teacher_logits, y, progress)
            assert torch.allclose(t, step.temperature), (d.epoch, i)
            ctl.observe(loss=float(step.loss))
        seen.append(ctl.temperature)
        d.end_epoch()
        ctl.observe(val_acc=d.last_val_acc)
    assert seen == pytest.approx(sched, rel=1e-6)
    decided = policy.run_actions(GlobalState(0.25, info0["val_acc"], 0.0))
    assert sched[1] == pytest.approx(run_temperature(decided, 0.25, 1, 10), rel=1e-5)


def test_run_decision_survives_a_resume(run_policy):
    """The decision lives in the strategy's state (Distiller.state_dict): a run resumed after the
    decision goes on with it, even where the restored state would decide differently."""
    out, _ = run_policy
    a = policy_distiller(out, 2)
    temps = [a.run_epoch().extra["policy/schedule_temperature"] for _ in range(2)]
    state = a.state_dict()
    assert torch.isfinite(state["strategy"]["run_decision"]).all()
    state["last_val_acc"] = 0.99  # a decision made again from this state would differ
    b = policy_distiller(out, 2)
    b.load_state_dict(state)
    assert torch.equal(b.strategy.run_decision, a.strategy.run_decision)
    temps_b = temps + [b.run_epoch().extra["policy/schedule_temperature"] for _ in range(2)]
    temps_a = temps + [a.run_epoch().extra["policy/schedule_temperature"] for _ in range(2)]
    assert temps_b == temps_a and temps_a[2] != temps_a[3]


@pytest.mark.parametrize("override, message", [
    ("agent.decision=runs", "agent.decision: unknown decision 'runs'.*did you mean 'run'.*valid: epoch, run"),
    (["agent.decision=run", "agent.modulator.episodes=1"], "agent.decision: run trains a schedule head only"),
])
def test_bad_decision_settings_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_agent("agents/ppo.yaml", override if isinstance(override, list) else [override])


def test_run_env_settings_are_checked(tmp_path):
    from rltemp.agents.train import train_policy
    from rltemp.envs.run_env import KDRunScheduleEnv

    with pytest.raises(ConfigError, match=r"distill.epochs must be >= 2 for a run-level decision"):
        KDRunScheduleEnv("envs/mnist1d.yaml", [*RUN_TINY, "distill.epochs=1"])
    with pytest.raises(ConfigError, match="env.run_features: unknown feature .first_acc.*valid: last_val_acc, progress"):
        KDRunScheduleEnv("envs/mnist1d.yaml", [*RUN_TINY, "env.run_features=[first_acc]"])
    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, "env.critic_features=[reference_val_acc]"])
    with pytest.raises(ConfigError, match="env.critic_features: the run-level schedule env"):
        train_policy(cfg, load_agent("agents/ppo-run.yaml", AGENT_TINY), out=tmp_path / "x", progress=False, jobs=1)
    assert not (tmp_path / "x").exists()  # nothing written for a refused config


def test_unknown_decision_in_a_policy_file_is_refused(run_policy, tmp_path):
    import json
    import shutil

    out, _ = run_policy
    for name in ("policy.json", "policy.pt"):
        shutil.copyfile(out / name, tmp_path / name)
    meta = json.loads((tmp_path / "policy.json").read_text())
    meta["schedule"]["decision"] = "batch"
    (tmp_path / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(RltempError, match="unknown schedule decision 'batch'; this rltemp knows epoch, run"):
        load_policy(tmp_path)


def test_preset_learns_a_schedule_that_depends_on_the_observation():
    """A toy with the run env's interface whose best schedule is known and depends on what the
    decision reads: after the first step the observation is [1, x], x = 0.1 (a "slow" student, best
    a cold schedule: a_start = a_end = -1) or 0.4 (a "fast" one, best hot to cold: a_start = 0.6,
    a_end = -1); the reward is minus the squared distance. PPO with agents/ppo-run.yaml's settings
    (standardised observations, as train-policy builds it) must tell them apart within 600 episodes."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rltemp.agents.train import build_model

    class Toy(gym.Env):
        observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        best = {0.1: np.array([-1.0, -1.0]), 0.4: np.array([0.6, -1.0])}

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.stage, self.x = 0, float(self.np_random.choice([0.1, 0.4]))
            return np.zeros(2, np.float32), {}

        def step(self, action):
            if self.stage == 0:
                self.stage = 1
                return np.array([1.0, self.x], np.float32), 0.0, False, False, {}
            err = np.clip(action, -1, 1) - self.best[self.x]
            return np.array([1.0, self.x], np.float32), -float(err @ err), True, False, {}

    agent = load_agent("agents/ppo-run.yaml")
    venv = VecNormalize(DummyVecEnv([Toy, Toy]), norm_obs=True, norm_reward=False, clip_obs=float("inf"))
    venv.seed(0)
    model = build_model("ppo", agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0),
                        n_steps=agent.episodes_per_rollout * 2, episode_length=2)
    model.learn(total_timesteps=600 * 2)
    for x, best in Toy.best.items():
        a, _ = model.predict(venv.normalize_obs(np.array([[1.0, x]], np.float32)), deterministic=True)
        assert np.abs(np.clip(a[0], -1, 1) - best).max() < 0.3, (x, a)


def test_a_modulator_needs_a_per_epoch_schedule(run_policy, tmp_path):
    """Online mode (and a modulator's training) read the schedule every epoch: a run-level policy as
    their base is refused with the field's name, before anything runs."""
    from rltemp.agents.train import run_online
    from rltemp.envs.kd_env import KDTemperatureEnv

    out, _ = run_policy
    with pytest.raises(ConfigError, match=r"env.base_policy: .* decides its schedule once per run"):
        KDTemperatureEnv("envs/mnist1d.yaml", [*RUN_TINY, f"env.base_policy={out}"])
    cfg = load_config("envs/mnist1d.yaml", RUN_TINY)
    with pytest.raises(ConfigError, match=r"agent.online.schedule: .* decides its schedule once per run"):
        run_online(cfg, load_agent("agents/ppo.yaml", [f"agent.online.schedule={out}"]), out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_fixed_first_temperature_makes_one_decision_per_run(tmp_path):
    """env.run_first_temperature: the first epoch runs at that T inside reset (its reward carried into
    the one decision's); the head reads the features alone; the exported policy, -T policy: and the env
    with the policy's action agree."""
    import gymnasium
    from stable_baselines3 import PPO

    import rltemp.envs  # noqa: F401
    from rltemp.agents.train import train_policy
    from rltemp.envs.schedule_env import KDScheduleEnv
    from rltemp.kd.pipeline import run_distill

    over = [*RUN_TINY, "env.run_first_temperature=1.5"]
    env = gymnasium.make("rltemp/KDRunSchedule-v0", config="envs/mnist1d.yaml", overrides=over).unwrapped
    obs, _ = env.reset(options={"student_seed": 5, "student": 0})
    assert obs.shape == (1,) and 0 < obs[0] <= 1 and env.steps == 1  # the first epoch's accuracy, no flag
    _, ret, term, _, info = env.step(np.array([0.5, -0.5], np.float32))
    assert term and len(info["temperatures"]) == 4 and info["temperatures"][0] == pytest.approx(1.5)
    per_epoch = KDScheduleEnv("envs/mnist1d.yaml", RUN_TINY)
    per_epoch.reset(options={"student_seed": 5, "student": 0})
    rewards = [per_epoch.step(np.array([2 * np.log(t) / np.log(10) - 1], np.float32))[1] for t in info["temperatures"]]
    assert ret == pytest.approx(sum(rewards), abs=1e-4)  # the first epoch's reward is in the return
    with pytest.raises(ConfigError, match=r"env.run_first_temperature must be 0 .* or lie in \[t_min, t_max\]"):
        load_config("envs/mnist1d.yaml", [*RUN_TINY, "env.run_first_temperature=20"])

    with pytest.raises(ConfigError, match="a PPO rollout of a single decision cannot normalise its advantages"):
        train_policy(load_config("envs/mnist1d.yaml", over), load_agent("agents/ppo-run.yaml", AGENT_TINY),
                     out=tmp_path / "one", progress=False, jobs=1)
    train_policy(load_config("envs/mnist1d.yaml", over), load_agent("agents/ppo-run.yaml", ["agent.episodes=6"]),
                 out=tmp_path / "p", progress=False, jobs=1)
    policy = load_policy(tmp_path / "p")
    meta = policy.meta["schedule"]
    assert meta["first_temperature"] == 1.5 and policy.first_temperature() == 1.5
    assert policy.schedule.net[0].weight.shape[1] == 1  # the features alone
    model = PPO.load(tmp_path / "p" / "schedule.zip", device="cpu")
    raw = np.array([[0.05], [0.3], [0.9]], np.float32)
    mean, std = np.array(meta["normalize_obs"]["mean"]), np.array(meta["normalize_obs"]["std"])
    a, _ = model.predict(((raw - mean) / std).astype(np.float32), deterministic=True)
    assert np.allclose(policy.schedule(torch.from_numpy(raw)).numpy(), np.clip(a, -1, 1), atol=1e-5)
    res = run_distill(load_config("envs/mnist1d.yaml", [*RUN_TINY, f"distill.temperature=policy:{tmp_path / 'p'}",
                                                        "seed=7"]), out=tmp_path / "d", progress=False)
    obs, _ = env.reset(options={"student_seed": 7, "student": 0})
    *_, info = env.step(policy.schedule(torch.from_numpy(obs)[None])[0].numpy())
    assert res["schedule"] == pytest.approx(info["temperatures"], rel=1e-5) and res["schedule"][0] == 1.5


def test_a_probe_looks_at_a_copy_and_leaves_the_run_alone():
    """Distiller.probe distils a throwaway copy from the given weights with the run's seed: the
    result equals the first steps of a fixed-T run of the same student, and neither the student, its
    optimiser, its batch order nor the global random state moves."""
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller, evaluate

    cfg = load_config("envs/mnist1d.yaml", RUN_TINY)
    data, device, _ = prepare(cfg.with_temperature("ce"))
    teacher = get_teacher(cfg, data, device)

    def fresh() -> Distiller:
        return Distiller(cfg.distill, data, build_student_model(cfg, data, 3), teacher, seed=3, external_temperature=True)

    d = fresh()
    initial = {k: v.clone() for k, v in d.student.state_dict().items()}
    gen, rng = d.generator.get_state(), torch.random.get_rng_state()
    acc, loss_ema = d.probe(0.5, 2.5)
    assert all(torch.equal(v, initial[k]) for k, v in d.student.state_dict().items())
    assert torch.equal(d.generator.get_state(), gen) and torch.equal(torch.random.get_rng_state(), rng)
    assert d.step_count == 0 and not d.optimizer.state
    # by hand: the same student, half an epoch at T = 2.5, then the full validation split
    ref = fresh()
    for i, (x, y, idx) in enumerate(ref.epoch_batches()):
        if i == ref.steps_per_epoch // 2:
            break
        ref.train_step(x, y, idx, temperature=2.5)
    assert (acc, loss_ema) == (evaluate(ref.student, data.val, data)[0], ref.loss_ema)
    # from other weights (the ones a run started with, after it has trained): the same look
    d.train_step(*next(iter(d.epoch_batches())), temperature=4.0)
    assert d.probe(0.5, 2.5, initial=initial) == (acc, loss_ema)
    with pytest.raises(ValueError, match=r"a probe runs for a fraction of one epoch, in \(0, 1\], got 1.5"):
        d.probe(1.5, 2.5)


@pytest.fixture(scope="module")
def probe_policy(tmp_path_factory, _cache):
    from rltemp.agents.train import train_policy

    out = tmp_path_factory.mktemp("probe-policy")
    over = [*RUN_TINY, "env.run_probe=0.5", "env.run_probe_temperature=3"]
    train_policy(load_config("envs/mnist1d.yaml", over), load_agent("agents/ppo-run.yaml", ["agent.episodes=6"]),
                 out=out, progress=False, jobs=1)
    return out, over


def test_probe_policy_decides_every_epoch_from_the_probe(probe_policy):
    """env.run_probe: reset observes the probe's features, the one decision sets every epoch (the
    first included), the return is the per-epoch env's for the same temperatures, and the export
    is SB3's actor on that observation."""
    from stable_baselines3 import PPO

    from rltemp.envs.run_env import KDRunScheduleEnv
    from rltemp.envs.schedule_env import KDScheduleEnv

    out, over = probe_policy
    env = KDRunScheduleEnv("envs/mnist1d.yaml", over)
    obs, _ = env.reset(options={"student_seed": 5, "student": 0})
    acc, _ = env.distiller.probe(0.5, 3.0)
    assert env.steps == 1 and obs.tolist() == [pytest.approx(acc)] and env.distiller.step_count == 0
    decision = np.array([0.7, -0.8], np.float32)
    _, ret, term, _, info = env.step(decision)
    assert term and info["temperatures"] == pytest.approx([run_temperature(torch.tensor(decision), k / 4, 1, 10)
                                                           for k in range(4)])
    per_epoch = KDScheduleEnv("envs/mnist1d.yaml", RUN_TINY)
    per_epoch.reset(options={"student_seed": 5, "student": 0})
    rewards = [per_epoch.step(np.array([2 * np.log(t) / np.log(10) - 1], np.float32))[1] for t in info["temperatures"]]
    assert ret == pytest.approx(sum(rewards), abs=1e-4)

    policy = load_policy(out)
    meta = policy.meta["schedule"]
    assert meta["probe"] == {"epochs": 0.5, "temperature": 3.0} and policy.probe == (0.5, 3.0)
    assert policy.schedule.net[0].weight.shape[1] == 1  # the probe's accuracy, no flag
    with pytest.raises(RltempError, match="decides every epoch, the first included, from a probe"):
        policy.first_temperature()
    model = PPO.load(out / "schedule.zip", device="cpu")
    raw = np.array([[0.02], [0.1], [0.4]], np.float32)
    mean, std = np.array(meta["normalize_obs"]["mean"]), np.array(meta["normalize_obs"]["std"])
    a, _ = model.predict(((raw - mean) / std).astype(np.float32), deterministic=True)
    assert np.allclose(policy.schedule(torch.from_numpy(raw)).numpy(), np.clip(a, -1, 1), atol=1e-5)


@pytest.mark.parametrize("student", [[], ["student.model=cnn1d", "student.options={channels: 4}"]])
def test_probe_policy_transfers_as_the_env_and_the_controller_decide(probe_policy, tmp_path, student):
    """-T policy:DIR probes the unseen student itself and then runs what the env runs with the
    policy's action on the same student; the controller, told the probe's result, agrees."""
    import rltemp
    from rltemp.envs.run_env import KDRunScheduleEnv
    from rltemp.kd.pipeline import run_distill

    out, over = probe_policy
    policy = load_policy(out)
    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, *student, f"distill.temperature=policy:{out}", "seed=7"])
    res = run_distill(cfg, out=tmp_path / "d", progress=False)
    env = KDRunScheduleEnv("envs/mnist1d.yaml", [*over, *student])
    obs, _ = env.reset(options={"student_seed": 7, "student": 0})
    *_, info = env.step(policy.schedule(torch.from_numpy(obs)[None])[0].numpy())
    assert res["schedule"] == pytest.approx(info["temperatures"], rel=1e-5)
    assert res["val_acc"] == pytest.approx(info["val_acc"])  # the probe did not disturb the run

    d = policy_distiller(out, 7, student)
    ctl = rltemp.TemperatureController.load(out)
    assert ctl.probe == {"epochs": 0.5, "temperature": 3.0}
    x, y, idx = next(iter(d.epoch_batches()))
    zs, zt = d.forward_batch(x, idx)
    with pytest.raises(RuntimeError, match=r"decides from a probe: distil a copy of your student for 0.5 of an epoch at T = 3"):
        ctl(zs, zt, y, 0.0)
    ctl.observe_probe(val_acc=float(obs[0]))
    seen = []
    for _ in range(4):
        seen.append(float(ctl(zs, zt, y, d.progress)[0]))
        d.run_epoch()
        ctl.observe(val_acc=d.last_val_acc)
    assert seen == pytest.approx(res["schedule"], rel=1e-6)


def test_probe_decision_survives_a_resume_without_probing_again(probe_policy, monkeypatch):
    from rltemp.kd.trainer import Distiller

    out, _ = probe_policy
    a = policy_distiller(out, 2)
    temps = [a.run_epoch().extra["policy/schedule_temperature"] for _ in range(2)]
    state = a.state_dict()
    assert torch.isfinite(state["strategy"]["run_decision"]).all()
    monkeypatch.setattr(Distiller, "probe", lambda *a, **k: pytest.fail("a resumed run probed again"))
    b = policy_distiller(out, 2)
    b.load_state_dict(state)
    temps_b = temps + [b.run_epoch().extra["policy/schedule_temperature"] for _ in range(2)]
    temps_a = temps + [a.run_epoch().extra["policy/schedule_temperature"] for _ in range(2)]
    assert temps_b == temps_a


@pytest.mark.parametrize("override, message", [
    ("env.run_probe=1.5", r"env.run_probe must be 0 \(no probe\) or a fraction of one epoch in \(0, 1\], got 1.5"),
    (["env.run_probe=1", "env.run_first_temperature=2"], "env.run_probe and env.run_first_temperature exclude each other"),
    ("env.run_probe_temperature=0.5", r"env.run_probe_temperature must lie in \[t_min, t_max\], got 0.5"),
])
def test_bad_probe_settings_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("envs/mnist1d.yaml", [*RUN_TINY, *(override if isinstance(override, list) else [override])])


def test_init_temperature_per_output_starts_a_run_head_at_a_schedule():
    """agent.policy.init_temperature=[T_start, T_end]: the run-level head's mean action starts at that
    schedule on every observation; a count that does not match the head's outputs names the field."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltemp.agents.train import _schedule_env_factory, build_model

    venv = DummyVecEnv([_schedule_env_factory(load_config("envs/mnist1d.yaml", RUN_TINY).to_dict(), [], decision="run")])
    for extra in ([], ["agent.policy.tanh_mean=true"]):
        agent = load_agent("agents/ppo-run.yaml", ["agent.policy.init_temperature=[6, 1.5]", *extra])
        model = build_model(agent.algo, agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0), n_steps=4)
        obs = np.random.default_rng(0).uniform(0, 1, (32, 2)).astype(np.float32)
        a, _ = model.predict(obs, deterministic=True)
        t = action_to_temperature(torch.from_numpy(a), 1.0, 10.0)
        assert torch.allclose(t, torch.tensor([6.0, 1.5]).expand_as(t), atol=0.15), extra
    agent = load_agent("agents/ppo-run.yaml", ["agent.policy.init_temperature=[6, 1.5, 1]"])
    with pytest.raises(ConfigError, match=r"agent.policy.init_temperature has 3 values; this policy's head has 2 output"):
        build_model(agent.algo, agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0), n_steps=4)
