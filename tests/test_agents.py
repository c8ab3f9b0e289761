import base64
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ENV_TINY as TINY

from rltemp.agents.config import load_agent
from rltemp.errors import ConfigError

AGENT_TINY = ["agent.hyperparams.n_steps=8", "agent.hyperparams.batch_size=64", "agent.hyperparams.n_epochs=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny PPO policy trained on mnist1d, shared by the transfer tests."""
    from rltemp.agents.train import train_policy
    from rltemp.config import load_config

    out = tmp_path_factory.mktemp("policy")
    cfg = load_config("envs/mnist1d.yaml", TINY)
    res = train_policy(cfg, load_agent("agents/ppo.yaml", ["agent.episodes=2", *AGENT_TINY]), out=out, progress=False)
    return out, res


def test_agent_presets_load_and_validate():
    for name in ("ppo", "a2c", "sac"):
        assert load_agent(f"agents/{name}.yaml").algo == name
    with pytest.raises(ConfigError, match="learning_rat.*did you mean 'learning_rate'"):
        load_agent("agents/ppo.yaml", ["agent.hyperparams.learning_rat=0.1"])
    with pytest.raises(ConfigError, match="n_steps must be like"):
        load_agent("agents/ppo.yaml", ["agent.hyperparams.n_steps=fast"])
    with pytest.raises(ConfigError, match="unknown algorithm 'ppp'"):
        load_agent("agents/ppo.yaml", ["agent.algo=ppp"])
    with pytest.raises(ConfigError, match="agent.episodes must be >= 1"):
        load_agent("agents/ppo.yaml", ["agent.episodes=0"])


def test_train_policy_writes_run_folder_and_tensorboard(trained):
    out, res = trained
    for f in ("policy.zip", "policy.pt", "policy.json", "config.yaml", "agent.yaml", "command.txt",
              "results.json", "checkpoints/last.pt"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "policy.json").read_text())
    assert meta["algo"] == "ppo" and meta["features"][:2] == ["p_t_true", "p_s_true"] and meta["t_max"] == 10.0
    assert set(meta["versions"]) == {"rltemp", "torch", "stable_baselines3", "gymnasium"}
    assert res["episodes"] == 2 and len(res["episode_rewards"]) == 2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"scalars": set(), "histograms": set(), "images": set()}
    plugins = set()
    for d in {p.parent for p in (out / "tb").rglob("events.out.tfevents.*")}:
        ea = EventAccumulator(str(d), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
        ea.Reload()
        for k in tags:
            tags[k] |= set(ea.Tags()[k])
        plugins |= set(ea.PluginAssets("hparams") or []) | ({"hparams"} if ea.PluginTagToContent("hparams") else set())
    assert {"rollout/ep_rew_mean", "train/value_loss", "train/approx_kl"} <= tags["scalars"]
    assert {"kd/temperature_correct_mean", "kd/temperature_wrong_mean", "env/val_acc", "env/episode_reward",
            "hparam/final_val_acc"} <= tags["scalars"]
    assert "kd/temperature" in tags["histograms"] and "kd/temperature_vs_confidence" in tags["images"]
    assert "hparams" in plugins


def test_policy_is_per_instance_equivariant_and_batch_size_free(trained):
    from stable_baselines3 import PPO

    from rltemp.kd.policy import load_policy

    out, _ = trained
    net, meta = load_policy(out)
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(128, len(meta["features"]), generator=g)
    perm = torch.randperm(128, generator=g)
    a = net(obs)
    assert torch.allclose(net(obs[perm]), a[perm])
    assert torch.allclose(net(obs[:32]), a[:32])  # batch size 32 acts like 128
    # the exported actor equals SB3's deterministic policy on the same rows
    model = PPO("MlpPolicy", _vec_for(out), policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                                                          "activation_fn": torch.nn.Tanh}, device="cpu")
    with zipfile.ZipFile(out / "policy.zip") as z:
        model.policy.load_state_dict(torch.load(__import__("io").BytesIO(z.read("policy.pth")), weights_only=True))
    sb3_actions, _ = model.predict(obs.numpy(), deterministic=True)
    assert np.allclose(sb3_actions, a.detach().numpy(), atol=1e-5)
    sb3_perm, _ = model.predict(obs[perm].numpy(), deterministic=True)
    assert np.allclose(sb3_perm, sb3_actions[perm.numpy()], atol=1e-6)


def _vec_for(out):
    from rltemp.agents.vec_env import InstanceVecEnv
    from rltemp.config import load_config
    from rltemp.envs.kd_env import KDTemperatureEnv

    return InstanceVecEnv(KDTemperatureEnv(load_config(out / "config.yaml")))


def test_transfer_to_unseen_architecture_and_dataset(trained, tmp_path):
    from rltemp.cli import main

    out, _ = trained
    run = tmp_path / "t"
    rc = main(["distill", "envs/digits.yaml", "-T", f"policy:{out}", "--out", str(run), "--no-progress",
               "student.model=cnn2d", "student.options={channels: [8, 16]}", "distill.epochs=2",
               "teacher.train.epochs=2", "distill.batch_size=48", "device=cpu"])
    assert rc == 0
    res = json.loads((run / "results.json").read_text())
    assert 0 < res["test_acc"] < 1 and 1.0 <= res["temperature"]["min"] <= res["temperature"]["max"] <= 10.0
    run2 = tmp_path / "z"
    assert main(["distill", "envs/mnist1d.yaml", "-T", f"policy:{out / 'policy.zip'}", "--out", str(run2),
                 "--no-progress", *TINY, "seed=11"]) == 0


@pytest.mark.slow
def test_incompatible_policy_fails_with_one_line(trained, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((out / "policy.json").read_text())
    (bad / "policy.pt").write_bytes((out / "policy.pt").read_bytes())
    for change, message in (({"features": meta["features"] + ["brightness"]}, "features this rltemp does not have"),
                            ({"features": meta["features"][:3]}, "does not match its description")):
        (bad / "policy.json").write_text(json.dumps({**meta, **change}))
        proc = subprocess.run([sys.executable, "-m", "rltemp", "distill", "envs/mnist1d.yaml", "-T", f"policy:{bad}",
                               "--out", str(tmp_path / "r"), *TINY], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "r" / "results.json").exists()


def test_tampered_policy_zip_is_not_executed(trained, tmp_path):
    out, _ = trained
    marker = tmp_path / "owned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    zpath = tmp_path / "policy.zip"
    with zipfile.ZipFile(out / "policy.zip") as src, zipfile.ZipFile(zpath, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "data":
                d = json.loads(data)
                d["policy_class"][":serialized:"] = base64.b64encode(pickle.dumps(Payload())).decode()
                data = json.dumps(d).encode()
            dst.writestr(item, data)
    from rltemp.cli import main

    assert main(["distill", "envs/mnist1d.yaml", "-T", f"policy:{zpath}", "--out", str(tmp_path / "r"),
                 "--no-progress", *TINY]) == 0
    assert not marker.exists()
    # control: SB3's own loader would have run the payload
    from stable_baselines3 import PPO

    try:
        PPO.load(zpath, device="cpu")
    except Exception:  # noqa: BLE001 - the payload returns an int, not a class
        pass
    assert marker.exists()


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path):
    out = tmp_path / "p"
    cmd = [sys.executable, "-m", "rltemp", "train-policy", "envs/mnist1d.yaml", *TINY, "distill.epochs=3",
           "agent.episodes=40", *AGENT_TINY, "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ck.exists() and not (out / "results.json").exists()
    saved = torch.load(ck, weights_only=True)
    assert 1 <= saved["episodes"] < 40
    done = subprocess.run([sys.executable, "-m", "rltemp", "train-policy", "--resume", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["resumed_from_episode"] >= saved["episodes"] and res["timesteps"] == res["total_timesteps_planned"]
    assert res["wall_time_s"] > saved["wall_time_s"] > 0  # time before the kill is counted
    assert len(res["episode_rewards"]) == len(res["episode_final_val_acc"]) == 40  # the whole run, not the tail
    assert (out / "policy.json").exists()


def test_online_mode_learns_during_one_run_and_saves_policy(tmp_path):
    from rltemp.cli import main

    out = tmp_path / "o"
    assert main(["distill", "envs/mnist1d.yaml", "-T", "online:agents/ppo.yaml", "--out", str(out), "--no-progress",
                 *TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    assert 0 < res["test_acc"] < 1 and res["epochs"] == 2 and res["method"] == "online:agents/ppo.yaml"
    assert (out / "policy.json").exists() and (out / "last.pt").exists()
    assert main(["distill", "envs/mnist1d.yaml", "-T", f"policy:{out}", "--out", str(tmp_path / "t"),
                 "--no-progress", *TINY]) == 0


@pytest.mark.parametrize("algo", ["a2c", "sac"])
def test_other_algorithms_train(tmp_path, algo):
    from rltemp.agents.train import train_policy
    from rltemp.config import load_config

    extra = ["agent.hyperparams.learning_starts=10", "agent.hyperparams.batch_size=64"] if algo == "sac" else \
        ["agent.hyperparams.n_steps=8"]
    res = train_policy(load_config("envs/mnist1d.yaml", TINY + ["distill.epochs=1"]),
                       load_agent(f"agents/{algo}.yaml", ["agent.episodes=1", *extra]), out=tmp_path, progress=False)
    assert res["episodes"] == 1 and json.loads((Path(tmp_path) / "policy.json").read_text())["algo"] == algo
    from rltemp.kd.policy import load_policy

    net, _ = load_policy(tmp_path)
    a = net(torch.rand(5, 15))
    assert a.shape == (5, 1) and (a.abs() <= 1).all()


def test_init_temperature_starts_every_instance_there():
    from rltemp.agents.train import build_model
    from rltemp.agents.vec_env import InstanceVecEnv
    from rltemp.config import load_config
    from rltemp.envs.kd_env import KDTemperatureEnv, action_to_temperature

    venv = InstanceVecEnv(KDTemperatureEnv(load_config("envs/mnist1d.yaml", TINY)))
    for algo in ("ppo", "sac"):
        agent = load_agent(f"agents/{algo}.yaml", ["agent.policy.init_temperature=4"])
        model = build_model(agent, venv, 0, None, "cpu")
        obs = np.random.default_rng(0).uniform(0, 1, (64, venv.observation_space.shape[0])).astype(np.float32)
        a, _ = model.predict(obs, deterministic=True)
        t = action_to_temperature(torch.from_numpy(a), 1.0, 10.0)
        assert torch.allclose(t, torch.full_like(t, 4.0), atol=0.15), algo
    with pytest.raises(Exception, match="outside"):
        build_model(load_agent("agents/ppo.yaml", ["agent.policy.init_temperature=20"]), venv, 0, None, "cpu")
