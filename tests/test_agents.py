import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SCHEDULE_TINY, TINY

from rltemp.agents.config import load_agent
from rltemp.errors import ConfigError


def test_agent_presets_load_and_validate():
    for name in ("ppo", "a2c"):
        agent = load_agent(f"agents/{name}.yaml")
        assert agent.algo == name and agent.hyperparams["gamma"] == 1.0 and agent.policy.normalize_obs
    ppo = load_agent("agents/ppo.yaml")
    assert ppo.modulator.policy.activation == "relu" and ppo.modulator.hyperparams["gamma"] == 0.0  # online mode's


@pytest.mark.parametrize("override, message", [
    ("agent.hyperparams.learning_rat=0.1", "learning_rat.*did you mean 'learning_rate'"),
    ("agent.hyperparams.batch_size=fast", "batch_size must be like"),
    ("agent.hyperparams.n_steps=10", "n_steps is set by rltemp"),
    ("agent.algo=ppp", "unknown algorithm 'ppp'"),
    ("agent.algo=sac", "unknown algorithm 'sac'"),
    ("agent.episodes=0", "agent.episodes must be >= 1"),
    ("agent.hyperparams.learning_rate=lin_fast", "learning_rate must be a positive number or 'lin_<start>'"),
    ("agent.modulator.policy.activation=gelu",
     "agent.modulator.policy.activation must be one of tanh, relu, got .gelu."),
    ("agent.modulator.policy.normalize_obs=true", "normalize_obs: only the schedule head"),
    ("agent.modulator.policy.init_temperature=3", "init_temperature: only the schedule head"),
    ("agent.online.credit_rank=16", "unknown config key 'agent.online'"),  # online mode's settings are env.*
])
def test_bad_agent_settings_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_agent("agents/ppo.yaml", [override])


@pytest.mark.slow
def test_linear_schedules_decay_to_zero_over_training():
    import gymnasium
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltemp.agents.sb3 import make_model

    agent = load_agent("agents/ppo.yaml", ["agent.hyperparams.learning_rate=lin_1e-3",
                                           "agent.hyperparams.clip_range=lin_0.3"])
    venv = DummyVecEnv([lambda: gymnasium.make("Pendulum-v1")])
    model = make_model("ppo", agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0), n_steps=64)
    assert [model.lr_schedule(p) for p in (1.0, 0.5, 0.0)] == pytest.approx([1e-3, 5e-4, 0.0])
    assert [model.clip_range(p) for p in (1.0, 0.25)] == pytest.approx([0.3, 0.075])


def test_train_policy_writes_run_folder_and_tensorboard(trained):
    out, res = trained
    for f in ("policy.pt", "policy.json", "schedule.zip", "config.yaml", "agent.yaml", "command.txt", "results.json",
              "checkpoints/last.pt"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "policy.json").read_text())
    assert meta["format"] == "rltemp-policy/2" and meta["schedule"]["features"][0] == "rel_acc"
    assert meta["schedule"]["decision"] == "run" and meta["modulator"] is None
    assert set(meta["versions"]) == {"rltemp", "torch", "stable_baselines3", "gymnasium"}
    fp = meta["fingerprint"]
    assert len(fp["schedule"]) == 4 and 0 < fp["test_acc"] < 1 and len(fp["observed"]) == 1  # one decision
    assert res["episodes"] == 4 and len(res["episode_returns"]) == 4
    for ep in res["schedule_episodes"]:
        assert len(ep["temperature"]) == len(ep["temperature_deterministic"]) == 2  # TINY: 2 epochs, set at once
        assert all(1.0 <= t <= 10.0 for t in ep["temperature"] + ep["temperature_deterministic"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list(out.glob("events.out.tfevents.*"))
    assert len(events) == 1  # one writer per run: SB3's scalars and ours in one event file
    ea = EventAccumulator(str(out), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    assert {"rollout/ep_rew_mean", "train/value_loss", "train/approx_kl", "train_schedule/episode_return",
            "train_schedule/T_first_epoch_deterministic",
            "train_schedule/T_first_epoch_sampled"} <= set(tags["scalars"])


def test_modulator_is_per_instance_equivariant_and_batch_size_free(online_policy):
    from rltemp.kd.features import FeatureInput
    from rltemp.kd.policy import load_policy

    policy = load_policy(online_policy)
    fi = lambda zs, zt, y: FeatureInput(zs, zt, y)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(128, 10, generator=g), 3 * torch.randn(128, 10, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)
    perm = torch.randperm(128, generator=g)
    t = policy.temperatures(4.0, fi(zs, zt, y))
    tp = policy.temperatures(4.0, fi(zs[perm], zt[perm], y[perm]))
    assert torch.allclose(tp, t[perm]) and t.std() > 0
    assert torch.exp(torch.log(t).mean()) == pytest.approx(4.0, rel=1e-4)  # centred: T_sched is the geometric mean
    t32 = policy.temperatures(4.0, fi(zs[:32], zt[:32], y[:32]))
    assert t32.shape == (32,) and ((t32 >= 2.0 - 1e-5) & (t32 <= 8.0 + 1e-5)).all()  # within max_multiplier = 2
    # the exported heads equal SB3's deterministic policies on the same rows
    from stable_baselines3 import PPO

    for name, obs_dim, arch, act in (("schedule", 5, [32, 32], torch.nn.Tanh),
                                     ("modulator", len(policy.instance_features), [16, 16], torch.nn.ReLU)):
        folder = online_policy if name == "modulator" else Path(policy.meta["trained_on"]["schedule_from"])
        with zipfile.ZipFile(folder / f"{name}.zip") as z:
            state = torch.load(__import__("io").BytesIO(z.read("policy.pth")), weights_only=True)
        obs = torch.rand(16, obs_dim, generator=g)
        outputs = policy.form.outputs if name == "schedule" else 1
        model = PPO("MlpPolicy", _DummyVec(obs_dim, outputs),
                    policy_kwargs={"net_arch": {"pi": arch, "vf": arch}, "activation_fn": act}, device="cpu")
        model.policy.load_state_dict(state)
        norm = policy.meta[name].get("normalize_obs")  # the schedule was trained on standardised observations
        seen = (obs.numpy() - norm["mean"]) / np.array(norm["std"]) if norm else obs.numpy()
        sb3, _ = model.predict(seen.astype(np.float32), deterministic=True)
        assert np.allclose(np.clip(sb3, -1, 1), getattr(policy, name)(obs).numpy(), atol=1e-5), name


def _DummyVec(obs_dim, outputs=1):  # noqa: N802 - a VecEnv with the right spaces, never stepped
    import gymnasium
    from stable_baselines3.common.vec_env import DummyVecEnv

    class Spaces(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(0, 1, (obs_dim,), np.float32)
        action_space = gymnasium.spaces.Box(-1, 1, (outputs,), np.float32)

    return DummyVecEnv([Spaces])


@pytest.mark.slow
def test_transfer_to_unseen_architecture_and_dataset_matches_env(trained, tmp_path):
    """`distill -T policy:` on another dataset and architecture; and its decisions equal the
    environment's for the same policy and student (export -> transfer parity)."""
    from rltemp.cli import main

    out, _ = trained
    run = tmp_path / "t"
    rc = main(["distill", "envs/digits.yaml", "-T", f"policy:{out}", "--out", str(run), "--no-progress",
               "student.model=cnn2d", "student.options={channels: [8, 16]}", "distill.epochs=2",
               "teacher.train.epochs=2", "distill.batch_size=48", "device=cpu"])
    assert rc == 0
    res = json.loads((run / "results.json").read_text())
    assert 0 < res["test_acc"] < 1 and 1.0 <= res["temperature"]["min"] <= res["temperature"]["max"] <= 10.0
    assert len(res["schedule"]) == 2
    # parity: the environment, stepped with the policy's own decision on the probe it observes, trains the
    # very same student as `distill -T policy:` does
    d = tmp_path / "d"
    assert main(["distill", "envs/mnist1d.yaml", "-T", f"policy:{out}", "--out", str(d), "--no-progress", *TINY,
                 "env.run_probe=0.5", "seed=11"]) == 0
    ref = json.loads((d / "results.json").read_text())
    from rltemp.config import load_config
    from rltemp.envs.run_env import KDRunScheduleEnv
    from rltemp.kd.policy import load_policy

    policy = load_policy(out)
    env = KDRunScheduleEnv(load_config("envs/mnist1d.yaml", [*TINY, f"env.run_probe={policy.form.probe.epochs}"]))
    obs, _ = env.reset(seed=0, options={"student_seed": 11})
    *_, info = env.step(policy.schedule(torch.from_numpy(obs)[None])[0].numpy())
    assert info["temperatures"] == pytest.approx(ref["schedule"], rel=1e-5)
    last = torch.load(d / "last.pt", weights_only=True)["model"]
    for k, v in env.distiller.student.state_dict().items():
        assert torch.allclose(v, last[k], atol=1e-5), k


@pytest.mark.slow
def test_incompatible_policy_fails_with_one_line(trained, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((out / "policy.json").read_text())
    (bad / "policy.pt").write_bytes((out / "policy.pt").read_bytes())
    head = {k: v for k, v in meta["schedule"].items() if k != "support"}  # its ranges are per feature
    cases = (({"schedule": {**head, "features": head["features"] + ["brightness"]}},
              "schedule features this rltemp does not have"),
             ({"schedule": {**head, "features": head["features"][:1]}}, "does not match its description"),
             ({"format": "rltemp-policy/1"}, "must be retrained"),
             ({"t_min": 0}, "t_min / t_max must satisfy 0 < t_min < t_max"),
             ({"t_max": "hot"}, "t_max must be a number"))
    for change, message in cases:
        (bad / "policy.json").write_text(json.dumps({**meta, **change}))
        proc = subprocess.run([sys.executable, "-m", "rltemp", "distill", "envs/mnist1d.yaml", "-T", f"policy:{bad}",
                               "--out", str(tmp_path / "r"), *TINY], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "r" / "results.json").exists()


def test_sb3_zips_are_never_unpickled(trained, tmp_path):
    """A payload planted in the SB3 zip beside the policy does not run at transfer (SB3's own load would)."""
    import base64
    import pickle
    import shutil

    out, _ = trained
    marker = tmp_path / "owned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    pol = tmp_path / "pol"
    shutil.copytree(out, pol, ignore=shutil.ignore_patterns("events.out.*", "checkpoints"))
    with zipfile.ZipFile(out / "schedule.zip") as src, zipfile.ZipFile(pol / "schedule.zip", "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "data":
                d = json.loads(data)
                d["policy_class"][":serialized:"] = base64.b64encode(pickle.dumps(Payload())).decode()
                data = json.dumps(d).encode()
            dst.writestr(item, data)
    from rltemp.cli import main

    assert main(["distill", "envs/mnist1d.yaml", "-T", f"policy:{pol}", "--out", str(tmp_path / "r"),
                 "--no-progress", *TINY]) == 0
    assert not marker.exists()
    from stable_baselines3 import PPO

    try:  # control: SB3's own loader runs the payload
        PPO.load(pol / "schedule.zip", device="cpu")
    except Exception:  # noqa: BLE001 - the payload returns an int, not a class
        pass
    assert marker.exists()


@pytest.mark.slow
def test_kill_9_then_resume_restores_parameters_and_optimiser(tmp_path):
    from rltemp.agents.sb3 import make_model, restore
    from rltemp.config import load_config

    out = tmp_path / "p"
    cmd = [sys.executable, "-m", "rltemp", "train-policy", "envs/mnist1d.yaml", *TINY, "distill.epochs=3",
           "env.run_probe=0.5", "agent.episodes=60", "agent.episodes_per_rollout=2", "agent.eval_every=0", "--jobs",
           "1",
           "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ck.exists() and not (out / "results.json").exists()
    saved = torch.load(ck, weights_only=True)
    assert saved["stage"] == "schedule" and 1 <= saved["episodes"] < 60
    # what --resume does first: the checkpoint's parameters and Adam state, tensor for tensor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltemp.agents.factories import schedule_env_factory

    cfg = load_config(out / "config.yaml")
    agent = load_agent(out / "agent.yaml")
    venv = DummyVecEnv([schedule_env_factory(cfg.to_dict(), [])])
    model = make_model(agent.algo, agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0), n_steps=2)
    restore(model, saved, "cpu")
    for k, v in saved["params"]["policy"].items():
        assert torch.equal(model.policy.state_dict()[k], v), k
    opt = model.policy.optimizer.state_dict()
    ref = saved["params"]["policy.optimizer"]
    assert opt["state"].keys() == ref["state"].keys() and len(opt["state"]) > 0
    for i, st in ref["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(opt["state"][i][name]), torch.as_tensor(st[name])), (i, name)
    assert model.num_timesteps == saved["num_timesteps"]
    venv.close()
    done = subprocess.run([sys.executable, "-m", "rltemp", "train-policy", "--resume", str(out), "--jobs", "1",
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["resumed"] and len(res["episode_returns"]) == res["episodes"] == 60  # the whole run, not the tail
    assert res["wall_time_s"] > saved["wall_time_s"] > 0  # time before the kill is counted
    assert (out / "policy.json").exists()


def test_online_mode_learns_the_modulator_during_one_run(online_policy, tmp_path):
    from rltemp.cli import main

    o = online_policy
    res = json.loads((o / "results.json").read_text())
    assert 0 < res["test_acc"] < 1 and res["epochs"] == 2 and res["method"].startswith("online:")
    assert res["temperature"]["std"] > 0  # per-instance temperatures
    assert res["wall_time_s"] > 0
    meta = json.loads((o / "policy.json").read_text())
    assert meta["trained_on"]["mode"] == "online" and meta["modulator"]["net_arch"] == [16, 16]
    assert meta["modulator"]["activation"] == "relu" and meta["modulator"]["decision"] == "instance"
    assert meta["modulator"]["features"] == ["p_s_top1", "p_t_top1", "margin_s"]  # env.features: RLKD's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(o), size_guidance={"images": 0})
    ea.Reload()  # one decision figure, after the last epoch (figures are the costly part of logging)
    assert [e.step for e in ea.Images("decisions/temperature_vs_confidence_and_progress")] == [res["epochs"] - 1]
    assert [e.step for e in ea.Scalars("kd/temperature_mean")] == [0, 1]  # the decisions of every epoch
    assert ea.Scalars("train/approx_kl")  # PPO updated the modulator during the run
    assert main(["distill", "envs/mnist1d.yaml", "-T", f"policy:{o}", "--out", str(tmp_path / "t"),
                 "--no-progress", *TINY]) == 0
    assert json.loads((tmp_path / "t" / "results.json").read_text())["temperature"]["std"] > 0


def test_a2c_trains(tmp_path):
    from rltemp.agents.train import train_policy
    from rltemp.config import load_config
    from rltemp.kd.policy import load_policy

    res = train_policy(load_config("envs/mnist1d.yaml", [*TINY, "env.run_probe=0.5"]),
                       load_agent("agents/a2c.yaml", ["agent.episodes=4", "agent.episodes_per_rollout=2"]),
                       out=tmp_path, progress=False, jobs=1)
    meta = json.loads((Path(tmp_path) / "policy.json").read_text())
    assert res["episodes"] == 4 and meta["schedule"]["algo"] == "a2c"
    policy = load_policy(tmp_path)
    a = policy.schedule(torch.rand(5, 5))
    assert a.shape == (5, 2) and (a.abs() <= 1).all()


def test_init_temperature_starts_the_schedule_there():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltemp.agents.factories import schedule_env_factory
    from rltemp.agents.sb3 import make_model
    from rltemp.config import load_config
    from rltemp.kd.forms import action_to_temperature

    venv = DummyVecEnv([schedule_env_factory(load_config("envs/mnist1d.yaml", TINY).to_dict(), [])])
    for algo in ("ppo", "a2c"):
        agent = load_agent(f"agents/{algo}.yaml", ["agent.policy.init_temperature=6"])
        model = make_model(agent.algo, agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0), n_steps=2)
        obs = np.random.default_rng(0).uniform(0, 1, (64, 5)).astype(np.float32)
        a, _ = model.predict(obs, deterministic=True)
        t = action_to_temperature(torch.from_numpy(a), 1.0, 10.0)
        assert torch.allclose(t, torch.full_like(t, 6.0), atol=0.2), algo
    with pytest.raises(Exception, match="outside"):
        agent = load_agent("agents/ppo.yaml", ["agent.policy.init_temperature=20"])
        make_model(agent.algo, agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0), n_steps=2)


def test_per_pair_advantages_weigh_each_pair_alike(tmp_path):
    """agent.per_pair_advantages: each pair's advantages are divided by the running RMS of that pair's
    advantages (all rollouts so far), so a pair whose gains are 30x larger weighs no more in the
    update; the state survives in the checkpoint."""
    from types import SimpleNamespace

    from rltemp.agents.callbacks import PerPairAdvantages
    from rltemp.agents.train import train_policy
    from rltemp.config import load_config

    cb = PerPairAdvantages()
    adv = np.array([[3.0, 0.1], [-3.0, -0.1], [3.0, 0.1]])  # rows: steps; columns: workers (student 0, student 1)
    cb.model = SimpleNamespace(rollout_buffer=SimpleNamespace(advantages=adv), logger=None)
    cb._on_rollout_start()
    for _ in range(3):
        cb.locals = {"infos": [{"pair_index": 0}, {"pair_index": 1}]}
        cb._on_step()
    cb._on_rollout_end()
    assert np.allclose(adv, [[1, 1], [-1, -1], [1, 1]])
    assert cb.state == {"0": [3.0, 27.0], "1": [3.0, pytest.approx(0.03)]}
    adv2 = np.array([[0.0, 1.0]])  # the second rollout: student 1 on both workers, running RMS over 4 values
    cb.model.rollout_buffer.advantages = adv2
    cb._on_rollout_start()
    cb.locals = {"infos": [{"pair_index": 1}, {"pair_index": 1}]}
    cb._on_step()
    cb._on_rollout_end()
    assert np.allclose(adv2, [[0.0, 1.0 / np.sqrt(1.03 / 5)]])

    pool = "env.pool=[{name: fast}, {name: slow, overrides: [distill.lr=0.0003]}]"
    cfg = load_config("envs/mnist1d.yaml", [*TINY, pool])
    train_policy(cfg, load_agent("agents/ppo.yaml", [*SCHEDULE_TINY, "agent.per_pair_advantages=true"]),
                 out=tmp_path / "p", progress=False, jobs=1)
    ckpt = torch.load(tmp_path / "p" / "checkpoints" / "last.pt", weights_only=True)
    history = ckpt["history"]
    seen = {str(e["pair_index"]) for e in history["schedule"]}
    assert set(history["advantage_rms"]) <= seen and history["advantage_rms"]
    assert all(c > 0 and q > 0 for c, q in history["advantage_rms"].values())


def test_normalized_observations_are_folded_into_the_exported_policy(tmp_path):
    """agent.policy.normalize_obs: the schedule head trains on observations standardised by SB3's
    VecNormalize; the exported head reads raw features and acts exactly as the trained actor on the
    standardised ones (the statistics folded into its first layer); a resumed training continues the
    checkpoint's statistics."""
    from stable_baselines3 import PPO

    from rltemp.agents.train import resume_policy, train_policy
    from rltemp.config import load_config
    from rltemp.kd.policy import load_policy

    cfg = load_config("envs/mnist1d.yaml", [*TINY, "env.run_probe=0.5"])
    agent = load_agent("agents/ppo.yaml", [*SCHEDULE_TINY, "agent.policy.normalize_obs=true"])
    train_policy(cfg, agent, out=tmp_path / "p", progress=False, jobs=1)
    rms = torch.load(tmp_path / "p" / "checkpoints" / "last.pt", weights_only=True)["history"]["obs_rms"]
    mean, var = np.array(rms["mean"]), np.array(rms["var"])
    assert mean.shape == (5,) and rms["count"] == pytest.approx(3, abs=1e-3) and 0 < mean[0] < 1 and (var > 0).all()
    assert not np.allclose(var, 1.0)  # statistics were gathered
    model = PPO.load(tmp_path / "p" / "schedule.zip", device="cpu")  # SB3's own file (a test may unpickle it)
    policy = load_policy(tmp_path / "p")
    folded = policy.meta["schedule"]["normalize_obs"]
    assert policy.schedule.net[0].weight.shape[1] == 5 and len(folded["mean"]) == 5
    assert np.allclose(folded["mean"], mean, atol=0.1)  # the final statistics: the checkpoint's plus one rollout
    raw = np.random.default_rng(0).uniform(0, 1, (32, 5)).astype(np.float32)
    a, _ = model.predict(((raw - folded["mean"]) / np.array(folded["std"])).astype(np.float32), deterministic=True)
    assert np.allclose(policy.schedule(torch.from_numpy(raw)).numpy(), np.clip(a, -1, 1), atol=1e-5)
    # --resume from the checkpoint (after the first rollout, 2 of the 4 episodes) continues the checkpoint's
    # statistics: a reset and two one-step episodes add 3 observations (fresh statistics would hold only those 3)
    assert folded["observations"] == pytest.approx(1 + 4, abs=1e-3)  # a reset, then 4 one-step episodes
    (tmp_path / "p" / "results.json").unlink()
    resume_policy(tmp_path / "p", progress=False, jobs=1)
    resumed = load_policy(tmp_path / "p").meta["schedule"]["normalize_obs"]
    assert resumed["observations"] == pytest.approx(rms["count"] + 3)
