"""The ``rltemp`` command. Thin: parse arguments, build the config, call the layers.

Exit status: 0 on success; 2 with one line ``rltemp: error: ...`` for input the user can fix
(unknown names, invalid values, missing files: :class:`rltemp.errors.RltempError`); 1 with
``rltemp: internal error: ...`` and a hint for anything else (a bug, not the user's mistake);
130 on Ctrl-C. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from rltemp.errors import RltempError

SPEC_HELP = (
    "temperature SPEC: fixed:T | anneal[:start,end,shape] | ctkd[:ramp=10,...] | ctkd-instance | dtkd[:tau] | "
    "ls[:tau] | ce (no KD) | policy:RUN_DIR (a trained policy, frozen) | online:AGENT_YAML (learn the policy "
    "during this run). Default: distill.temperature of the config"
)


def _add_common(p: argparse.ArgumentParser, config_optional: bool = False) -> None:
    p.add_argument("config", nargs="?" if config_optional else None, help="YAML preset, e.g. envs/default.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted config overrides, e.g. distill.epochs=5 seed=3 student.options.width=128")
    p.add_argument("--out", default=None, help="run folder (default: runs/<command>-<name>-<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rltemp",
        description="Choose knowledge-distillation temperatures: classic strategies and learned temperature policies.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages (INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("teacher", help="train a teacher and save it (also fills the teacher cache)",
                       description="Train the config's teacher; writes teacher.pt, results.json and a TensorBoard "
                                   "event file.")
    _add_common(p)

    p = sub.add_parser("distill", help="distil a student with a temperature strategy",
                       description="Distil the config's student from its teacher (cached, trained on first use, "
                                   "or teacher.checkpoint). Reports last-epoch test accuracy. "
                                   "--resume RUN_DIR continues an interrupted run with its saved config.")
    _add_common(p, config_optional=True)
    p.add_argument("--temperature", "-T", default=None, metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run in RUN_DIR")

    p = sub.add_parser("train-policy", help="train a temperature policy with stable-baselines3",
                       description="Train a temperature policy across episodes of fresh students on "
                                   "rltemp/KDRunSchedule-v0: one schedule per run, decided from a probe of the "
                                   "student. Writes policy.pt + policy.json (use with -T policy:RUN_DIR) and "
                                   "checkpoints for --resume. Overrides starting with 'agent.' go to the agent preset "
                                   "(e.g. agent.episodes=4 agent.hyperparams.learning_rate=1e-3).")
    p.add_argument("config", nargs="?", help="environment preset, e.g. envs/default.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config or agent.* overrides")
    p.add_argument("--agent", default="agents/ppo.yaml", help="agent preset (agents/ppo.yaml, agents/a2c.yaml)")
    p.add_argument("--out", default=None, help="run folder (default: runs/train-policy-<name>-<timestamp>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run from its checkpoint")
    p.add_argument("--jobs", "--workers", type=int, default=2, dest="jobs",
                   help="students trained at once: worker processes, or Ray actors (default 2)")
    p.add_argument("--backend", choices=["process", "ray"], default="process",
                   help="where the students run: worker processes here (default) or Ray actors")
    p.add_argument("--address", default=None, help="with --backend ray: the cluster to join (e.g. auto); "
                                                   "default: start a local Ray and shut it down after")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    p = sub.add_parser("quickstart", help="the shipped policy on unseen students vs the grid, in minutes",
                       description="Teachers (cached), then fresh students on held-out seeds of the default pair and "
                                   "of digits distilled with the shipped policy, the grid (chosen on validation) and a "
                                   "hand schedule; prints a table with paired intervals and the TensorBoard command.")
    p.add_argument("--seeds", type=int, default=3, help="held-out student seeds per method (default 3)")
    p.add_argument("--jobs", type=int, default=2, help="parallel distillation processes")
    p.add_argument("--out", default=None, help="output folder (default: runs/quickstart-<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    p = sub.add_parser("bench", help="run a benchmark suite: every (pair, method, seed) cell, resumable",
                       description="Run every cell of a suite (benchmarks/suites/*.yaml) in parallel processes; "
                                   "complete cells are skipped, so an interrupted bench resumes. Writes results.csv, "
                                   "results.json, summary.md, accuracy.png and the TensorBoard dashboard layout.")
    p.add_argument("suite", help="suite YAML, e.g. benchmarks/suites/default.yaml")
    p.add_argument("--jobs", type=int, default=2, help="parallel processes, or CPUs of a local Ray (default 2)")
    p.add_argument("--backend", choices=["process", "ray"], default="process",
                   help="where cells run: worker processes here (default) or Ray tasks")
    p.add_argument("--address", default=None, help="with --backend ray: the cluster to join (e.g. auto); "
                                                   "default: start a local Ray and shut it down after")
    p.add_argument("--out", default=None, help="output folder (default: runs/bench-<suite name>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    p = sub.add_parser("data", help="inspect datasets", description="Inspect datasets.")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    s = dsub.add_parser("show", help="write a PNG grid of samples (one row per class)")
    s.add_argument("name", help="dataset name (an image dataset)")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--classes", type=int, default=10, help="number of classes (rows) to show")
    s.add_argument("--per-class", type=int, default=12, help="samples per class (columns)")
    s.add_argument("--root", default=None, help="data.root for datasets read from disk")
    s.add_argument("--split", default="train", choices=["train", "val", "test"], help="which split to show")
    s.add_argument("--select", default=None, metavar="CHARS",
                   help="show these classes (one character each, for datasets with class names, e.g. glyphs)")

    sub.add_parser("list", help="list datasets, models, temperature strategies and shipped policies")
    return parser


def check_out(out: str | None) -> None:
    """``--out`` must be a folder (new or existing): fail before any work when a file has that name."""
    from pathlib import Path

    if out and Path(out).exists() and not Path(out).is_dir():
        raise RltempError(f"--out {out}: a file of that name exists; give a folder (new or a run folder)")


def _config(args: argparse.Namespace, extra: list[str] | None = None):  # noqa: ANN202
    from rltemp.config import load_config

    return load_config(args.config, list(args.overrides) + (extra or []))


def cmd_teacher(args: argparse.Namespace) -> int:
    from rltemp.kd.pipeline import run_teacher

    res = run_teacher(_config(args), out=args.out, progress=not args.no_progress)
    print(f"teacher test_acc={res['test_acc']:.4f} val_acc={res['val_acc']:.4f} -> {res['run_dir']}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from rltemp.experiments.runner import run_method

    if args.resume:
        from pathlib import Path

        from rltemp.config import load_config

        if args.config or args.overrides or args.temperature:
            raise RltempError("--resume RUN_DIR continues a run with the config saved in it; give no CONFIG, "
                              "overrides or --temperature")
        run = Path(args.resume)
        if not (run / "config.yaml").is_file():
            raise RltempError(f"{run} is not a distill run folder (no config.yaml)")
        if (run / "results.json").exists():
            raise RltempError(f"{run} is already complete (results.json exists); nothing to resume")
        res = run_method(load_config(run / "config.yaml", []), resume=run, progress=not args.no_progress)
    else:
        if not args.config:
            raise RltempError("distill needs a CONFIG (e.g. envs/default.yaml) or --resume RUN_DIR")
        extra = [f"distill.temperature={args.temperature}"] if args.temperature else []
        res = run_method(_config(args, extra), out=args.out, progress=not args.no_progress)
    print(
        f"{res['method']} seed={res['seed']}: test_acc={res['test_acc']:.4f} (last epoch) "
        f"best_val_acc={res['best_val_acc']:.4f} wall={res['wall_time_s']:.1f}s -> {res['run_dir']}"
    )
    return 0


def cmd_train_policy(args: argparse.Namespace) -> int:
    from rltemp.agents.config import load_agent
    from rltemp.agents.train import resume_policy, train_policy
    from rltemp.config import load_config

    if args.resume:
        res = resume_policy(args.resume, progress=not args.no_progress, jobs=args.jobs, backend=args.backend,
                            address=args.address)
    else:
        if not args.config:
            raise RltempError("train-policy needs a CONFIG (e.g. envs/default.yaml) or --resume RUN_DIR")
        agent_over = [o for o in args.overrides if o.startswith("agent.")]
        cfg_over = [o for o in args.overrides if not o.startswith("agent.")]
        cfg = load_config(args.config, cfg_over)
        agent = load_agent(args.agent, agent_over)
        res = train_policy(cfg, agent, out=args.out, progress=not args.no_progress, jobs=args.jobs,
                           backend=args.backend, address=args.address)
    print(f"policy {res['algo']}: {res['episodes']} episodes, {res['kd_steps']} KD steps, "
          f"{res['wall_time_s']:.1f}s -> {res['run_dir']} (use --temperature policy:{res['run_dir']})")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from rltemp.experiments.quickstart import quickstart

    if args.seeds < 2:
        raise RltempError(f"--seeds must be >= 2 (paired intervals need two seeds), got {args.seeds}")
    quickstart(seeds=args.seeds, jobs=args.jobs, out=args.out, progress=not args.no_progress)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rltemp.experiments.bench import load_suite, run_bench

    out = args.out or f"runs/bench-{load_suite(args.suite).name}"
    run_bench(args.suite, out, jobs=args.jobs, progress=not args.no_progress, backend=args.backend,
              address=args.address)
    print((__import__("pathlib").Path(out) / "summary.md").read_text())
    print(f"-> {out}/summary.md, results.csv, accuracy.png; tensorboard --logdir {out}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from rltemp.data.show import show_dataset

    path = show_dataset(args.name, args.out, args.classes, args.per_class, args.root, args.split, args.select)
    print(f"wrote {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rltemp.data import DATASETS
    from rltemp.kd import STRATEGIES
    from rltemp.kd.features import FEATURES, GLOBAL_FEATURES
    from rltemp.kd.policy import shipped_policies
    from rltemp.models import MODELS

    print(json.dumps({"datasets": DATASETS.names(), "models": MODELS.names(),
                      "strategies": STRATEGIES.names() + ["ce", "online"], "shipped_policies": shipped_policies(),
                      "features": FEATURES.names(), "global_features": GLOBAL_FEATURES.names()}, indent=2))
    return 0


COMMANDS = {"teacher": cmd_teacher, "distill": cmd_distill, "train-policy": cmd_train_policy,
            "quickstart": cmd_quickstart, "bench": cmd_bench, "data": cmd_data, "list": cmd_list}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (e.g. ``--out DIR seed=3``).
    if extra:
        if hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        check_out(getattr(args, "out", None))
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("rltemp: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if isinstance(e, RltempError):
            print(f"rltemp: error: {msg or e.__class__.__name__}", file=sys.stderr)
            return 2
        print(f"rltemp: internal error: {e.__class__.__name__}: {msg} (a bug, not your input: run again with "
              "--debug for the traceback and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
