"""Learn a per-token modulator on LM *training* students (seeds >= 1000), then transfer it frozen.

    python benchmarks/hand_modulator.py runs/hand-modulators          # the T = 1 base schedule
    python benchmarks/lm_modulator.py envs/lm.yaml runs/lm-modulator --episodes 10
    rltemp distill envs/lm.yaml -T policy:runs/lm-modulator seed=0

Online mode's machinery (``rltemp/KDInstanceEpoch-v0`` in an :class:`InstanceVecEnv`, every token
position one PPO slot, credited per token from the validation pass), run over ``--episodes`` training
students one after another instead of one student, around a constant T = 1 base
(``runs/hand-modulators/constant``): T_i = exp(log(max_multiplier) · (a_i − mean a)), so every epoch's
geometric mean stays 1. The exported policy is the base's schedule head and the learned modulator.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rltemp.agents.callbacks import StopAfterEpisodes
from rltemp.agents.config import load_agent
from rltemp.agents.export import export_policy, modulator_head, policy_meta
from rltemp.agents.sb3 import make_model
from rltemp.agents.vec_env import InstanceVecEnv
from rltemp.config import load_config
from rltemp.envs.instance_epoch_env import KDInstanceEpochEnv
from rltemp.kd.forms import Head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("out", type=Path)
    ap.add_argument("--base", default="runs/hand-modulators/constant")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--agent", default="agents/ppo.yaml")
    ap.add_argument("--set", action="append", default=[], help="an agent override (agent.modulator.hyperparams.*=...)")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_intermixed_args()
    env_over = [f"env.base_policy={a.base}", "env.t_min=0.5", "env.t_max=2", "env.max_multiplier=1.35",
                "env.run_probe_temperature=1",
                f"env.seeds=[{','.join(str(1000 + i) for i in range(a.episodes))}]"]
    cfg = load_config(a.config, env_over + a.overrides)
    agent = load_agent(a.agent, a.set)
    env = KDInstanceEpochEnv(cfg, progress=True)
    env.fill_teacher_cache()
    venv = InstanceVecEnv(env, auto_reset=True)
    seeds = list(cfg.env.seeds)
    episode = {"i": 0}

    def on_end(e: KDInstanceEpochEnv) -> None:
        episode["i"] += 1
        info = venv.last_info
        t = info["temperature"]
        print(f"episode {episode['i']} seed {e.student_seed}: val CE {info['val_loss']:.4f} val acc "
              f"{info['val_acc']:.4f}; last-epoch T mean {t.mean():.3f} std {t.std():.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if episode["i"] < len(seeds):
            venv.set_options([{"student_seed": seeds[episode["i"]], "pair": 0}] + [{}] * (venv.num_envs - 1))

    venv.on_episode_end = on_end
    venv.set_options([{"student_seed": seeds[0], "pair": 0}] + [{}] * (venv.num_envs - 1))
    hyper = dict(agent.modulator.hyperparams)
    hyper.setdefault("batch_size", venv.num_envs)
    model = make_model(agent.algo, agent.modulator.policy, hyper, venv, cfg.seed, None, "cpu",
                       (cfg.env.t_min, cfg.env.t_max))
    t0 = time.perf_counter()
    model.learn(total_timesteps=env.steps_per_episode() * venv.num_envs * a.episodes,
                callback=[StopAfterEpisodes(a.episodes)])
    base = env.base
    meta = policy_meta(cfg, Head.from_dict(base.meta["schedule"], "env.base_policy"), modulator_head(cfg, agent),
                       {"episodes": a.episodes, "mode": "benchmarks/lm_modulator.py", "seeds": seeds,
                        "schedule_from": a.base, "agent_overrides": a.set})
    export_policy(meta, a.out, schedule_state=base.schedule.state_dict(), modulator_model=model)
    print(f"wrote {a.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
