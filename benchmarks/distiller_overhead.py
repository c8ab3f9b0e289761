"""The Distiller's training epoch against a minimal hand-written PyTorch KD loop, side by side.

    python benchmarks/distiller_overhead.py [envs/default.yaml] [key=value ...] [--repeats 7] [--threads 1]

Both loops train the same student architecture on the same data, batch order (the Distiller's own
permutation), optimiser (the preset's), temperature (T = 4) and cached teacher logits. The
minimal loop indexes the in-memory tensors, applies the dataset's preprocessing (normalisation;
augmentation only where the preset enables it, which also disables the teacher cache — use
``data.options={augment: false}`` on CIFAR), runs the forward pass, ``kl_div`` at T scaled by T²
plus CE, and an Adam step — nothing else. Epochs alternate (Distiller, minimal, Distiller, ...);
each loop keeps training its own student across its epochs. Prints the median seconds per epoch and
the ratio Distiller ÷ minimal (goal ≤ 1.05). Validation is excluded from both (the Distiller's
``end_epoch`` is not timed): the comparison is of the training step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_intermixed_args()
    torch.set_num_threads(a.threads)
    from rltemp.config import load_config
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller, make_optimizer

    cfg = load_config(a.preset, [*a.overrides, "distill.temperature=fixed:4"])
    data, device, strategy = prepare(cfg)
    teacher = get_teacher(cfg, data, device, progress=False)
    d = Distiller(cfg.distill, data, build_student_model(cfg, data, 0), teacher, strategy, seed=0, device=device)
    model = build_student_model(cfg, data, 0).to(device)
    opt = make_optimizer(cfg.distill, list(model.parameters()))  # the preset's optimiser, as the Distiller's
    cache = d.teacher_cache
    x_all, y_all = data.train.x, data.train.y
    bs, t = cfg.distill.batch_size, 4.0
    w_ce, w_kd = cfg.distill.ce_weight, cfg.distill.kd_weight
    gen = torch.Generator().manual_seed(0)

    def minimal_epoch() -> None:
        order = torch.randperm(len(y_all), generator=gen)
        model.train()
        for start in range(0, len(order) - len(order) % bs, bs):
            idx = order[start:start + bs]
            x, y, zt = x_all[idx], y_all[idx], cache[idx]
            zs = model(data.preprocess(x, True, gen))
            kd = F.kl_div(F.log_softmax(zs / t, 1), F.softmax(zt / t, 1), reduction="batchmean") * t * t
            loss = w_ce * F.cross_entropy(zs, y) + w_kd * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def distiller_epoch() -> None:
        for x, y, idx in d.epoch_batches():
            d.train_step(x, y, idx)
        d.epoch += 1  # advance without the timed-out validation (end_epoch) so epochs keep counting

    # queued GPU work must finish inside the timed region
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {"distiller": [], "minimal": []}
    minimal_epoch(), distiller_epoch()  # warm-up
    for _ in range(a.repeats):
        for name, fn in (("distiller", distiller_epoch), ("minimal", minimal_epoch)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.preset} {' '.join(a.overrides)}: student {cfg.student.model} {cfg.student.options}, "
          f"{len(y_all) // bs} steps/epoch, batch {bs}, {a.threads} thread(s), device {device}, "
          f"median of {a.repeats} alternating epochs")
    print(f"  Distiller {med['distiller']:.4f} s/epoch   minimal loop {med['minimal']:.4f} s/epoch   "
          f"ratio {med['distiller'] / med['minimal']:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
