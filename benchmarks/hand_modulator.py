"""Hand-made per-token policies for the LM pair: T = 1 on average, each token's temperature set by the
teacher's confidence in it (no learning), to see whether per-token temperatures can pay at all.

    python benchmarks/hand_modulator.py runs/hand-modulators
    rltemp distill envs/lm.yaml -T policy:runs/hand-modulators/sure-cold seed=0

Each is an ordinary rltemp policy (policy.pt + policy.json): a schedule head that always answers
a = 0, i.e. T_sched = sqrt(t_min · t_max) = 1 over [0.5, 2], and a linear modulator on the teacher's
top-1 probability p_i (the feature ``p_t_top1``, detached from the student):

    b_i = ±(2 p_i − 1),   T_i = exp(0.15 · (b_i − mean_batch b))   (max_multiplier e^0.15)

``sure-hot`` (+): tokens the teacher is sure of run hotter, unsure ones colder; ``sure-cold`` (−): the
reverse; ``constant``: no modulator (T = 1 for every token: the base a learned modulator starts from).
The schedule head reads no features: a constant schedule, with no probe before the first epoch.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from rltemp.kd.forms import ACTION_MAPPING
from rltemp.kd.policy import FORMAT, load_policy

# modulator: (features, weights, bias, log max_multiplier), b_i = weights · features_i + bias
RULES = {"sure-hot": (["p_t_top1"], [2.0], -1.0, 0.15), "sure-cold": (["p_t_top1"], [-2.0], 1.0, 0.15),
         "constant": None}


def write(out: Path, name: str, rule: tuple[list[str], list[float], float, float] | None,
          trained_on: dict | None = None) -> Path:
    """One policy: T = 1 every epoch, with the linear modulator ``rule`` or none."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT, "t_min": 0.5, "t_max": 2.0,
        "action_mapping": ACTION_MAPPING,
        "schedule": {"algo": "none", "features": [], "net_arch": [], "activation": "tanh", "decision": "run"},
        "modulator": None,
        "trained_on": trained_on or {"hand-made": f"{name}; benchmarks/hand_modulator.py"},
    }
    state = {"schedule.net.0.weight": torch.zeros(2, 0), "schedule.net.0.bias": torch.zeros(2)}
    if rule is not None:
        names, weights, bias, log_m = rule
        meta["modulator"] = {"algo": "none", "features": list(names), "net_arch": [], "activation": "relu",
                             "decision": "instance", "max_multiplier": math.exp(log_m)}
        meta["trained_on"].setdefault("rule", f"b_i = {weights} . {names} + {bias}, log max_multiplier {log_m}")
        state.update({"modulator.net.0.weight": torch.tensor([list(map(float, weights))]),
                      "modulator.net.0.bias": torch.tensor([float(bias)])})
    torch.save(state, d / "policy.pt")
    (d / "policy.json").write_text(json.dumps(meta, indent=2) + "\n")
    load_policy(d)  # loads back, weights-only
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    for name, rule in RULES.items():
        print(write(a.out, name, rule))


if __name__ == "__main__":
    main()
