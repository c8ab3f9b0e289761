"""Why DTKD fails on a preset: its reference objective term by term.

    python benchmarks/dtkd_diagnosis.py [envs/default.yaml] [--epochs 10] [--seed 0]

Runs DTKD with its whole reference objective (``dtkd``: α = 3 · dynamic-pair KD + β = 1 · KD at τ,
warm-up, gradients through the temperatures, CE weight 1), and three variants that each remove one
thing: ``dtkd:alpha=0`` (no dynamic term), ``dtkd:beta=0`` (no vanilla term) and the full objective
with the temperatures detached. Prints the validation accuracy after each epoch, the mean student
and teacher max logit and the mean pair (T_t, T_s) in the last epoch.
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from rltemp.config import load_config
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller

    print(f"{a.preset}, seed {a.seed}: validation accuracy after each epoch; last epoch's mean max logits and (T_t, "
          f"T_s)")
    for spec, detach in (("dtkd", False), ("dtkd:alpha=0", False), ("dtkd:beta=0", False), ("dtkd", True)):
        cfg = load_config(a.preset, [f"distill.temperature={spec}", f"distill.epochs={a.epochs}", f"seed={a.seed}"])
        data, device, strategy = prepare(cfg)
        if detach:
            forward = strategy.forward
            strategy.forward = lambda zt, zs, y, p, f=forward: f(zt, zs.detach(), y, p)
        d = Distiller(cfg.distill, data, build_student_model(cfg, data, a.seed), get_teacher(cfg, data, device, False),
                      strategy, seed=a.seed, device=device)
        accs, ms, mt, pair = [], [], [], []
        for _ in range(a.epochs):
            ms, mt, pair = [], [], []
            for x, y, idx in d.epoch_batches():
                r = d.train_step(x, y, idx)
                ms.append(float(r.student_logits.max(-1).values.mean()))
                mt.append(float(r.teacher_logits.max(-1).values.mean()))
                pair.append(r.temperature.mean(0))
            accs.append(d.end_epoch().val_acc)
        p = torch.stack(pair).mean(0)
        name = f"{spec}{' (temperatures detached)' if detach else ''}"
        print(f"  {name:36s} val acc {' '.join(f'{v:.3f}' for v in accs)} | max logit student "
              f"{sum(ms) / len(ms):.2f} teacher {sum(mt) / len(mt):.2f} | (T_t, T_s) = ({p[0]:.2f}, {p[1]:.2f})")


if __name__ == "__main__":
    main()
