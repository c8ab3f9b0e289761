"""Hand-made per-token policies for the LM pair: T = 1 on average, each token's temperature set by the
teacher's confidence in it (no learning), to see whether per-token temperatures can pay at all.

    python benchmarks/hand_modulator.py runs/hand-modulators
    rltemp distill envs/lm.yaml -T policy:runs/hand-modulators/sure-cold seed=0

Each is an ordinary rltemp policy (policy.pt + policy.json): a schedule head that always answers
a = 0, i.e. T_sched = sqrt(t_min · t_max) = 1 over [0.5, 2], and a linear modulator on the teacher's
top-1 probability p_i (the feature ``p_t_top1``, detached from the student):

    b_i = ±(2 p_i − 1),   T_i = exp(0.15 · (b_i − mean_batch b))   (max_multiplier e^0.15)

``sure-hot`` (+): tokens the teacher is sure of run hotter, unsure ones colder; ``sure-cold`` (−): the
reverse. The probe the schedule form requires is 0.1 epoch (its decision is the constant anyway).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from rltemp.config import DEFAULT_RUN_FEATURES
from rltemp.kd.forms import ACTION_MAPPING
from rltemp.kd.policy import FORMAT, load_policy

RULES = {"sure-hot": (2.0, -1.0), "sure-cold": (-2.0, 1.0)}  # modulator weight, bias


def write(out: Path, name: str, weight: float, bias: float) -> Path:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    features = list(DEFAULT_RUN_FEATURES)
    meta = {
        "format": FORMAT, "t_min": 0.5, "t_max": 2.0,
        "action_mapping": ACTION_MAPPING,
        "schedule": {"algo": "none", "features": features, "net_arch": [], "activation": "tanh", "decision": "run",
                     "probe": {"epochs": 0.1, "temperature": 1.0}},
        "modulator": {"algo": "none", "features": ["p_t_top1"], "net_arch": [], "activation": "relu",
                      "decision": "instance", "max_multiplier": math.exp(0.15)},
        "trained_on": {"hand-made": f"b_i = {weight} p_t_top1 + {bias}; benchmarks/hand_modulator.py"},
    }
    state = {"schedule.net.0.weight": torch.zeros(2, len(features)), "schedule.net.0.bias": torch.zeros(2),
             "modulator.net.0.weight": torch.tensor([[weight]]), "modulator.net.0.bias": torch.tensor([bias])}
    torch.save(state, d / "policy.pt")
    (d / "policy.json").write_text(json.dumps(meta, indent=2) + "\n")
    load_policy(d)  # loads back, weights-only
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    for name, (w, b) in RULES.items():
        print(write(a.out, name, w, b))


if __name__ == "__main__":
    main()
