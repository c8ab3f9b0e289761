"""How far low-rank influence credit (``env.credit_rank``) moves the per-instance cosines.

    python benchmarks/credit_rank.py [envs/default.yaml] [key=value ...] [--rank 16] [--seed 1000]

Runs one episode of ``rltemp/KDInstanceEpoch-v0`` (influence credit, a constant action) and, for
every epoch, compares the exact cosines with the rank-r ones computed from the same logit
gradients, inputs and validation gradient: Pearson correlation, largest absolute change, the
Cauchy–Schwarz bound ‖G − G_r‖ / ‖G‖ and the spread (std) of the exact cosines.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1000, help="the student's seed (a training seed, not 0-4)")
    a = ap.parse_intermixed_args()
    torch.set_num_threads(1)
    from scipy.stats import pearsonr

    import rltemp.envs.instance_epoch_env as ie
    from rltemp.config import load_config
    from rltemp.envs.rewards import alignment

    seen: list[tuple[torch.Tensor, ...]] = []
    exact_alignment = ie.alignment

    def record(delta, h, g_w, g_b, dtype=torch.float64, rank=0):  # noqa: ANN001, ANN202
        seen.append((delta.clone(), h.clone(), g_w.clone(), g_b.clone()))
        return exact_alignment(delta, h, g_w, g_b, dtype=dtype, rank=rank)

    ie.alignment = record
    cfg = load_config(a.preset, [*a.overrides, "env.credit_rank=0", "env.base_policy="])
    env = ie.KDInstanceEpochEnv(cfg)
    env.fill_teacher_cache()
    env.reset(options={"student_seed": a.seed, "pair": 0})
    done = False
    while not done:
        _, _, done, _, _ = env.step(np.zeros(env.n, np.float32))
    rows = []
    for delta, h, g_w, g_b in seen:
        c = alignment(delta, h, g_w, g_b, dtype=torch.float32)
        cr = alignment(delta, h, g_w, g_b, dtype=torch.float32, rank=a.rank)
        sv = torch.linalg.svdvals(torch.cat([g_w, g_b[:, None]], 1).double())
        bound = float(torch.sqrt((sv[a.rank:] ** 2).sum() / (sv**2).sum()))
        rows.append((pearsonr(c, cr)[0], float((c - cr).abs().max()), bound, float(c.std())))
    r = np.array(rows)
    print(f"{a.preset} {' '.join(a.overrides)}: rank {a.rank}, student seed {a.seed}, {len(rows)} epochs")
    print(f"  Pearson(exact, rank-{a.rank}): min {r[:, 0].min():.4f}, median {np.median(r[:, 0]):.4f}")
    print(f"  max |change| per epoch: max {r[:, 1].max():.4f}, median {np.median(r[:, 1]):.4f}")
    print(f"  bound ||G - G_r|| / ||G||: max {r[:, 2].max():.3f}; std of the exact cosines: median "
          f"{np.median(r[:, 3]):.3f}")


if __name__ == "__main__":
    main()
