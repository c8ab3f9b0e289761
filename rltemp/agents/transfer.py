"""``policy:PATH`` — distil with a trained, frozen policy (deterministic actions, no RL at distill time).

The strategy computes the policy's own feature set from the logits the training step already has
and the Distiller's global state (progress, last validation accuracy, recent loss), exactly as the
environment does, runs the plain-torch actor row by row, and maps actions to temperatures with the
policy's recorded range. It works for any student architecture, seed, dataset or batch size,
because the features do not depend on them.
"""

from __future__ import annotations

from typing import Any

import torch

from rltemp.envs.features import FeatureInput, compute_features
from rltemp.envs.kd_env import action_to_temperature
from rltemp.kd.strategies import STRATEGIES, StrategyContext, TemperatureStrategy, _bind


class PolicyStrategy(TemperatureStrategy):
    def __init__(self, path: str) -> None:
        super().__init__()
        from rltemp.agents.export import load_policy

        self.net, self.meta = load_policy(path)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.features = list(self.meta["features"])
        self._distiller: Any = None

    def attach(self, distiller: Any) -> None:
        self._distiller = distiller

    def parameters(self, recurse: bool = True):  # noqa: ANN201 - frozen: nothing for the optimiser
        return iter(())

    @torch.no_grad()
    def forward(self, teacher_logits, student_logits, labels, progress):  # noqa: ANN001, ANN201
        d = self._distiller
        inp = FeatureInput(student_logits.detach(), teacher_logits.detach(), labels, progress,
                           d.last_val_acc if d is not None else 0.0, d.loss_ema if d is not None else 0.0)
        obs = compute_features(self.features, inp)
        a = self.net(obs)
        t = action_to_temperature(a, float(self.meta["t_min"]), float(self.meta["t_max"]))
        return t if self.meta["pair"] else t[:, 0]


@STRATEGIES.register("policy")
def _policy(args: list[str], kwargs: dict[str, str], ctx: StrategyContext) -> TemperatureStrategy:
    p = _bind("policy", args, kwargs, {"path": ""})
    if not p["path"]:
        from rltemp.errors import ConfigError

        raise ConfigError("temperature SPEC 'policy' needs a path: policy:RUN_DIR (or policy.json / policy.zip)")
    return PolicyStrategy(p["path"])
