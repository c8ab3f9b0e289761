"""One distillation run for any temperature SPEC — the single place where ``online:`` is dispatched.

Classic strategies and ``policy:`` (a trained, frozen policy) run in the RL-free
:func:`rltemp.kd.pipeline.run_distill`; ``online:AGENT`` trains a policy with RL during the run
(:func:`rltemp.agents.online.run_online`). The CLI, the parallel workers, the bench and the
quickstart all call :func:`run_method`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rltemp.config import Config
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.strategies import StrategyContext, build_strategy, parse_spec

DEFAULT_ONLINE_AGENT = "agents/ppo.yaml"


def is_online(spec: str) -> bool:
    return parse_spec(spec)[0] == "online"


def online_agent(spec: str) -> str:
    """The agent preset of an ``online:AGENT`` SPEC (default ``agents/ppo.yaml``)."""
    _, args, kwargs = parse_spec(spec)
    if kwargs or len(args) > 1:
        raise ConfigError(f"temperature SPEC {spec!r}: online takes one argument, the agent preset (online:AGENT_YAML)")
    return args[0] if args else DEFAULT_ONLINE_AGENT


def check_method(spec: str, ctx: StrategyContext) -> None:
    """Fail now (ConfigError / UnknownNameError) on a bad SPEC, including ``online:``'s agent preset."""
    if is_online(spec):
        from rltemp.agents.config import load_agent

        load_agent(online_agent(spec))
    else:
        build_strategy(spec, ctx)


def run_method(cfg: Config, out: str | Path | None = None, resume: str | Path | None = None,
               progress: bool = True, runs_root: str | Path = "runs") -> dict[str, Any]:
    """Distil ``cfg``'s student with ``cfg.distill.temperature``; returns ``results.json``'s content."""
    spec = cfg.distill.temperature
    if is_online(spec):
        if resume is not None:
            raise RltempError("an online run cannot be resumed (its policy learns from the whole run); start it again")
        from rltemp.agents.config import load_agent
        from rltemp.agents.online import run_online

        return run_online(cfg, load_agent(online_agent(spec)), out=out, progress=progress, runs_root=runs_root)
    from rltemp.kd.pipeline import run_distill

    return run_distill(cfg, out=out, resume=resume, progress=progress, runs_root=runs_root)
