"""Diagnostic (ablation U's follow-up): can the schedule's *actor* tell slow and fast students apart
when it is handed what tells them apart? Trains like ``rltemp train-policy`` but lets the actor read
the critic-only columns too (``env.critic_features``, e.g. the reference run's validation accuracy),
which no deployed policy could have. Read the result in TensorBoard (``train_schedule/T_*_deterministic``
per episode against ``train_schedule/episode_final_val_acc``): if the schedules of the two kinds of
student now differ, the bottleneck is what the actor observes; if not, it is the optimisation.
The exported ``policy.pt`` is *not* a valid policy here (export drops the columns the actor used).

    python benchmarks/privileged_actor.py envs/default.yaml "env.students=[...]" \
        "env.critic_features=[reference_val_acc]" agent.episodes=240 --out runs/privileged-actor

Diagnostics 2 and 3 in RESULTS add ``agent.policy.tanh_mean=true agent.per_student_advantages=true
agent.policy.normalize_obs=true`` and read ``[reference_val_acc]`` or ``[reference_final_val_acc]``.
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config and agent.* overrides")
    ap.add_argument("--agent", default="agents/ppo.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_intermixed_args()
    import rltemp.agents.train as train
    from rltemp.agents.config import load_agent
    from rltemp.config import load_config

    build = train.build_model

    def symmetric(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the actor reads every column
        kwargs["actor_dims"] = None
        return build(*args, **kwargs)

    train.build_model = symmetric
    cfg = load_config(a.preset, [o for o in a.overrides if not o.startswith("agent.")])
    agent = load_agent(a.agent, [o for o in a.overrides if o.startswith("agent.")])
    res = train.train_policy(cfg, agent, out=a.out, progress=False, jobs=a.jobs)
    print(f"{res['episodes']} episodes, {res['wall_time_s']:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
