"""Temperature policies: one decision per run, made from a probe. The probe, export -> transfer parity
(distill, the env, the controller), resume, malformed policy files, and that the preset's learner
finds a schedule that depends on what it observes."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY, probe_by_hand

import rltemp
from rltemp.agents.config import load_agent
from rltemp.config import load_config
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.forms import ProbeSchedule, action_to_temperature
from rltemp.kd.policy import load_policy

RUN_TINY = [*TINY, "distill.epochs=4", "env.run_probe=0.5", "env.run_probe_temperature=3", "env.eval_seeds=[2000]"]


def probe_temperatures(decision, epochs=4):
    return [float(action_to_temperature(ProbeSchedule.action(torch.tensor(decision), k / epochs), 1, 10)[0])
            for k in range(epochs)]


def policy_distiller(policy_dir, seed, overrides=()):
    """A Distiller of the tiny config's student ``seed`` (with ``overrides``), distilled with
    ``-T policy:policy_dir``."""
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller

    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, *overrides, f"distill.temperature=policy:{policy_dir}",
                                            f"seed={seed}"])
    data, device, strategy = prepare(cfg)
    return Distiller(cfg.distill, data, build_student_model(cfg, data, seed), get_teacher(cfg, data, device), strategy,
                     seed=seed)


@pytest.fixture(scope="module")
def probe_policy(tmp_path_factory, _cache):
    from rltemp.agents.train import train_policy

    out = tmp_path_factory.mktemp("probe-policy")
    train_policy(load_config("envs/mnist1d.yaml", RUN_TINY), load_agent("agents/ppo.yaml", ["agent.episodes=6"]),
                 out=out, progress=False, jobs=1)
    return out


def test_a_probe_looks_at_a_copy_and_leaves_the_run_alone():
    """Distiller.probe distils a throwaway copy from the given weights with the run's seed: the
    result equals the first steps of a fixed-T run of the same student, and neither the student, its
    optimiser, its batch order nor the global random state moves."""
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare_data
    from rltemp.kd.trainer import Distiller, evaluate

    cfg = load_config("envs/mnist1d.yaml", RUN_TINY)
    data, device = prepare_data(cfg)
    teacher = get_teacher(cfg, data, device)

    def fresh() -> Distiller:
        return Distiller(cfg.distill, data, build_student_model(cfg, data, 3), teacher, seed=3,
                         external_temperature=True)

    d = fresh()
    initial = {k: v.clone() for k, v in d.student.state_dict().items()}
    gen, rng = d.generator.get_state(), torch.random.get_rng_state()
    probed = d.probe(0.5, 2.5)
    assert all(torch.equal(v, initial[k]) for k, v in d.student.state_dict().items())
    assert torch.equal(d.generator.get_state(), gen) and torch.equal(torch.random.get_rng_state(), rng)
    assert d.step_count == 0 and not d.optimizer.state
    # by hand: the same student, half an epoch at T = 2.5, then the full validation split
    ref = fresh()
    for i, (x, y, idx) in enumerate(ref.epoch_batches()):
        if i == ref.steps_per_epoch // 2:
            break
        ref.train_step(x, y, idx, temperature=2.5)
    assert (probed.last_val_acc, probed.loss_ema) == (evaluate(ref.student, data.val, data)[0], ref.loss_ema)
    ref.end_epoch()  # its validation statistics, against the teacher: the probe's (but for its partial epoch)
    assert probed.val.acc == ref.last_val_stats.acc and probed.val.kl == pytest.approx(ref.last_val_stats.kl)
    assert probed.progress == 0.0
    # from other weights (the ones a run started with, after it has trained): the same look
    d.train_step(*next(iter(d.epoch_batches())), temperature=4.0)
    assert d.probe(0.5, 2.5, initial=initial) == probed
    with pytest.raises(ValueError, match=r"a probe runs for a fraction of one epoch, in \(0, 1\], got 1.5"):
        d.probe(1.5, 2.5)


def test_probe_policy_exports_what_sb3_trained(probe_policy):
    from stable_baselines3 import PPO

    res = json.loads((probe_policy / "results.json").read_text())
    policy = load_policy(probe_policy)
    meta = policy.meta["schedule"]
    assert meta["probe"] == {"epochs": 0.5, "temperature": 3.0} and meta["decision"] == "run"
    assert policy.form.probe.epochs == 0.5 and meta["features"] == ["rel_acc", "agreement", "kl_teacher",
                                                                     "student_entropy", "teacher_entropy"]
    assert policy.schedule.net[0].weight.shape[1] == 5 and policy.schedule.net[-1].weight.shape[0] == 2
    assert len(res["schedule_episodes"]) >= 6 and all(len(e["temperature"]) == 4 for e in res["schedule_episodes"])
    assert all(0 <= v <= 1 for e in res["schedule_episodes"] for v in e["decision_features"].values())
    assert res["selection"] and meta["reward_reference"] == "grid"  # selected on held-out training students
    model = PPO.load(probe_policy / "schedule.zip", device="cpu")  # SB3's own file (a test may unpickle it)
    raw = np.random.default_rng(0).uniform(0, 1, (8, 5)).astype(np.float32)
    mean, std = np.array(meta["normalize_obs"]["mean"]), np.array(meta["normalize_obs"]["std"])
    a, _ = model.predict(((raw - mean) / std).astype(np.float32), deterministic=True)
    assert np.allclose(policy.schedule(torch.from_numpy(raw)).numpy(), np.clip(a, -1, 1), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("student", [[], ["student.model=cnn1d", "student.options={channels: 4}"]])
def test_probe_policy_transfers_as_the_env_and_the_controller_decide(probe_policy, tmp_path, student):
    """-T policy:DIR probes the unseen student itself and then runs what the env runs with the
    policy's action on the same student; the controller, told the probe's result, agrees."""
    from rltemp.envs.run_env import KDRunScheduleEnv
    from rltemp.kd.pipeline import run_distill

    policy = load_policy(probe_policy)
    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, *student, f"distill.temperature=policy:{probe_policy}",
                                            "seed=7"])
    res = run_distill(cfg, out=tmp_path / "d", progress=False)
    env = KDRunScheduleEnv("envs/mnist1d.yaml", [*RUN_TINY, *student])
    obs, _ = env.reset(options={"student_seed": 7, "pair": 0})
    *_, info = env.step(policy.decision(torch.from_numpy(obs)).numpy())
    assert res["schedule"] == pytest.approx(info["temperatures"], rel=1e-5)
    assert res["val_acc"] == pytest.approx(info["val_acc"])  # the probe did not disturb the run

    # the controller in a user's loop: the user runs the probe by hand and reports its validation logits
    d = policy_distiller(probe_policy, 7, student)
    probed = probe_by_hand(d, 0.5, 3.0)  # before any train-mode forward (it moves a BatchNorm's statistics)
    ctl = rltemp.TemperatureController.load(probe_policy)
    assert ctl.probe == {"epochs": 0.5, "temperature": 3.0} and ctl.reads_logits
    x, y, idx = next(iter(d.epoch_batches()))
    zs, zt = d.forward_batch(x, idx)
    with pytest.raises(RuntimeError,
                       match=r"decides from a probe: distil a copy of your student for 0.5 of an epoch at T = 3"):
        ctl(zs, zt, y, 0.0)
    with pytest.raises(ValueError, match="reads student/teacher statistics of the probe's validation pass"):
        ctl.observe_probe(val_acc=0.3)
    ctl.observe_probe(**probed)
    seen = []
    for _ in range(4):
        seen.append(float(ctl(zs, zt, y, d.progress)[0]))
        d.run_epoch()
    assert seen == pytest.approx(res["schedule"], rel=1e-5)


def test_probe_decision_survives_a_resume_without_probing_again(probe_policy, monkeypatch):
    """The decision lives in the strategy's state (Distiller.state_dict): a resumed run goes on with
    it, without probing again, even where the restored state would decide differently."""
    from rltemp.kd.trainer import Distiller

    a = policy_distiller(probe_policy, 2)
    temps = [a.run_epoch().schedule_temperature for _ in range(2)]
    state = a.state_dict()
    assert torch.isfinite(state["strategy"]["run_decision"]).all()
    state["last_val_acc"] = 0.99
    monkeypatch.setattr(Distiller, "probe", lambda *a, **k: pytest.fail("a resumed run probed again"))
    b = policy_distiller(probe_policy, 2)
    b.load_state_dict(state)
    assert torch.equal(b.strategy.run_decision, a.strategy.run_decision)
    temps_b = temps + [b.run_epoch().schedule_temperature for _ in range(2)]
    temps_a = temps + [a.run_epoch().schedule_temperature for _ in range(2)]
    assert temps_b == temps_a


def test_a_student_outside_the_training_support_runs_at_the_fallback(probe_policy, tmp_path):
    """The exported head carries the range of its training students' probes; a student inside runs the
    network's decision, one outside runs the fallback temperature all run, and the run records which."""
    from rltemp.envs.run_env import KDRunScheduleEnv
    from rltemp.kd.pipeline import run_distill

    policy = load_policy(probe_policy)
    support = policy.form.head.support
    assert support.students == 16 and support.fallback == 1.0  # env.seeds: 16 training students
    env = KDRunScheduleEnv("envs/mnist1d.yaml", RUN_TINY)
    for seed in (1000, 1015):  # every training student lies inside its own box
        obs, _ = env.reset(options={"student_seed": seed, "pair": 0})
        assert support.covers(torch.from_numpy(obs))
    for name in ("policy.json", "policy.pt"):
        shutil.copyfile(probe_policy / name, tmp_path / name)
    meta = json.loads((tmp_path / "policy.json").read_text())

    def run(low, high, fallback):
        meta["schedule"]["support"] = {"low": [low] * 5, "high": [high] * 5, "fallback_temperature": fallback}
        (tmp_path / "policy.json").write_text(json.dumps(meta))
        cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, f"distill.temperature=policy:{tmp_path}", "seed=7"])
        return run_distill(cfg, out=tmp_path / f"run-{low}-{fallback}", progress=False)

    outside = run(2.0, 2.0, 2.5)
    assert outside["schedule"] == [2.5] * 4 and outside["observed"][0]["in_support"] == 0.0
    inside = run(0.0, 1.0, 2.5)
    read = torch.tensor([inside["observed"][0][f] for f in policy.schedule_features])
    assert inside["observed"][0]["in_support"] == 1.0
    assert inside["schedule"] == pytest.approx(probe_temperatures(policy.head_action(read).tolist()), rel=1e-5)
    with pytest.raises(ConfigError, match=r"env.support_fallback must lie in \[t_min, t_max\], got 20"):
        load_config("envs/mnist1d.yaml", ["env.support_fallback=20"])


def test_retired_agent_settings_are_unknown_keys():
    for key in ("agent.decision=run", "agent.policy.tanh_mean=true"):
        with pytest.raises(ConfigError, match="unknown config key"):
            load_agent("agents/ppo.yaml", [key])


@pytest.mark.parametrize("change, message", [
    ({"decision": "batch"}, "unknown schedule decision 'batch'; this rltemp knows run"),
    ({"decision": "epoch"}, "unknown schedule decision 'epoch'; this rltemp knows run"),  # the retired form
    ({"probe": None}, "the two-decision run-level form was retired"),
    ({"features": [], "support": None}, "reads no features is a constant: it takes no probe"),
    ({"net_arch": "wide"}, "malformed head"),
    ({"support": "wide"}, "malformed support"),
    ({"support": {"low": [0], "high": [1], "fallback_temperature": 1}}, "one low and one high per feature"),
    ({"support": {"low": [0] * 5, "high": [1] * 5, "fallback_temperature": 20}}, "fallback_temperature must lie in"),
])
def test_malformed_or_retired_heads_in_a_policy_file_are_refused(probe_policy, tmp_path, change, message):
    for name in ("policy.json", "policy.pt"):
        shutil.copyfile(probe_policy / name, tmp_path / name)
    meta = json.loads((tmp_path / "policy.json").read_text())
    meta["schedule"].update(change)
    (tmp_path / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(RltempError, match=message):
        load_policy(tmp_path)


def test_a_schedule_that_reads_nothing_is_a_constant_without_a_probe(tmp_path, monkeypatch):
    """A run-level head with no features decides from its bias alone: distill runs it at that constant
    every epoch without probing, and the controller needs no observe_probe."""
    from rltemp.kd.forms import temperature_to_action
    from rltemp.kd.pipeline import run_distill
    from rltemp.kd.policy import FORMAT
    from rltemp.kd.trainer import Distiller

    a = temperature_to_action(2.5, 1, 10)
    (tmp_path / "policy.json").write_text(json.dumps({
        "format": FORMAT, "t_min": 1, "t_max": 10,
        "schedule": {"algo": "none", "features": [], "net_arch": [], "activation": "tanh", "decision": "run"}}))
    torch.save({"schedule.net.0.weight": torch.zeros(2, 0), "schedule.net.0.bias": torch.tensor([a, a])},
               tmp_path / "policy.pt")
    monkeypatch.setattr(Distiller, "probe", lambda *a, **k: pytest.fail("a constant schedule probed"))
    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, f"distill.temperature=policy:{tmp_path}"])
    res = run_distill(cfg, out=tmp_path / "run", progress=False)
    assert res["schedule"] == pytest.approx([2.5] * 4, rel=1e-5)
    ctl = rltemp.TemperatureController.load(tmp_path)
    assert ctl.probe is None
    t = ctl(torch.randn(3, 5), torch.randn(3, 5), torch.tensor([0, 1, 2]), progress=0.5)
    assert t == pytest.approx(torch.full((3,), 2.5), rel=1e-5)


@pytest.mark.slow
def test_preset_learns_a_schedule_that_depends_on_the_observation():
    """A one-step toy with the run env's interface whose best schedule is known and depends on what
    the decision reads: x = 0.1 (a "slow" student, best a cold schedule: a_start = a_end = -1) or 0.4
    (a "fast" one, best hot to cold: a_start = 0.6, a_end = -1); the reward is minus the squared
    distance. PPO with agents/ppo-run.yaml's settings (standardised observations, as train-policy
    builds it) must tell them apart within 600 episodes."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rltemp.agents.sb3 import make_model

    class Toy(gym.Env):
        observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        best = {0.1: np.array([-1.0, -1.0]), 0.4: np.array([0.6, -1.0])}

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x = float(self.np_random.choice([0.1, 0.4]))
            return np.array([self.x], np.float32), {}

        def step(self, action):
            err = np.clip(action, -1, 1) - self.best[self.x]
            return np.array([self.x], np.float32), -float(err @ err), True, False, {}

    agent = load_agent("agents/ppo.yaml")
    venv = VecNormalize(DummyVecEnv([Toy, Toy]), norm_obs=True, norm_reward=False, clip_obs=float("inf"))
    venv.seed(0)
    model = make_model("ppo", agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0),
                       n_steps=agent.episodes_per_rollout)
    model.learn(total_timesteps=600)
    for x, best in Toy.best.items():
        a, _ = model.predict(venv.normalize_obs(np.array([[x]], np.float32)), deterministic=True)
        assert np.abs(np.clip(a[0], -1, 1) - best).max() < 0.3, (x, a)


@pytest.mark.slow
def test_online_mode_runs_on_a_run_level_schedule(probe_policy, tmp_path):
    """A run-level base schedule for the per-instance env: it probes the fresh student at reset and its
    one decision sets every epoch's schedule temperature, as -T policy: would."""
    from rltemp.envs.instance_epoch_env import KDInstanceEpochEnv
    from rltemp.kd.pipeline import run_distill

    env = KDInstanceEpochEnv(load_config("envs/mnist1d.yaml", [*RUN_TINY, f"env.base_policy={probe_policy}"]))
    env.reset(options={"student_seed": 7, "pair": 0})
    temps = [env.step(np.zeros(env.n, np.float32))[4]["schedule_temperature"] for _ in range(4)]
    cfg = load_config("envs/mnist1d.yaml", [*RUN_TINY, f"distill.temperature=policy:{probe_policy}", "seed=7"])
    assert temps == pytest.approx(run_distill(cfg, out=tmp_path / "d", progress=False)["schedule"], rel=1e-5)
