"""What a probe sees: the validation accuracy of a throwaway copy of each student after a short
distillation at a fixed temperature (``Distiller.probe``, what ``env.run_probe`` policies decide from).

    python benchmarks/probe_values.py [--epochs 1] [--temperature 4] [--seeds 0 1 2 3 4 1000 1001 1002]

Prints, per kind of student (the default pair, the transfer targets and the pool students of the
run-level ablations), the probe's validation accuracy on each seed: held-out seeds 0–4 and training
seeds >= 1000. A probe whose values overlap between kinds that want different schedules cannot
tell them apart.
"""

from __future__ import annotations

import argparse

KINDS = {
    "MLP-256 (default pair)": [],
    "MLP-256, held-out fonts": ["data.options.heldout_fonts=0.25"],
    "MLP-128x2 (unseen)": ["student.model=mlp", "student.options={width: 128, depth: 2}"],
    "CNN 16/32 (unseen)": ["student.model=cnn2d", "student.options={channels: [16, 32], convs_per_stage: 1}"],
    "CNN 8/16 (pool)": ["student.model=cnn2d", "student.options={channels: [8, 16], convs_per_stage: 1}"],
    "MLP-256, lr 3e-4 (pool)": ["distill.lr=0.0003"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("--epochs", type=float, default=1.0, help="the probe's length, a fraction of one epoch")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 1000, 1001, 1002])
    a = ap.parse_args()
    from rltemp.config import load_config
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller

    print(f"probe: {a.epochs:g} epoch(s) at T = {a.temperature:g}; validation accuracy per seed ({', '.join(map(str, a.seeds))})")
    for name, overrides in KINDS.items():
        cfg = load_config(a.preset, overrides)
        data, device, _ = prepare(cfg.with_temperature("ce"))
        teacher = get_teacher(cfg, data, device, progress=False)
        accs = []
        for seed in a.seeds:
            d = Distiller(cfg.distill, data, build_student_model(cfg, data, seed), teacher, seed=seed, device=device,
                          external_temperature=True)
            accs.append(d.probe(a.epochs, a.temperature)[0])
        print(f"{name:26s} " + " ".join(f"{x:.3f}" for x in accs) + f"   range {min(accs):.3f}-{max(accs):.3f}", flush=True)


if __name__ == "__main__":
    main()
