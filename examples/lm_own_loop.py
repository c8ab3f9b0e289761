"""A trained rltemp temperature policy distilling the character-LM pair in a plain PyTorch loop.

    pip install -e '.[lm]' && python examples/lm_own_loop.py [--policy default] [--epochs 3]

Uses rltemp for the text data (envs/lm.yaml: the World English Bible, split by books), the shipped
teacher, the student's architecture, the policy and the KD loss; the loop — batches, forward, loss,
AdamW step, validation — is the one you would write anyway. Logits are (B, L, V): every character
position is one instance, so the controller returns per-token temperatures (B, L) and ``kd_loss``
averages over the positions the mask marks as real (here every position: windows are never padded).
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
import torch.nn.functional as F

import rltemp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default="default",
                    help="a shipped policy name, a train-policy run folder or policy.json")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides of envs/lm.yaml")
    a = ap.parse_args()
    from rltemp.config import load_config
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare_data

    cfg = load_config("envs/lm.yaml", ["device=cpu", *a.overrides])
    data, device = prepare_data(cfg)  # windows of character ids (N, L), labels shifted by one (N, L)
    teacher = get_teacher(cfg, data, device, progress=False).eval()  # the shipped one for envs/lm.yaml as is
    student = build_student_model(cfg, data, seed=0)
    lr, batch = cfg.distill.lr, cfg.distill.batch_size
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=cfg.distill.weight_decay)
    ctl = rltemp.TemperatureController.load(a.policy)
    x_train, y_train = data.train.x, data.train.y
    steps_per_epoch = max(1, len(y_train) // batch)
    total = a.epochs * steps_per_epoch

    def step(model, optimizer, x, y, temperature):
        """One AdamW step; ``temperature`` a number or a function of (student, teacher logits, labels, mask)."""
        zs = model(x)  # (B, L, V)
        with torch.no_grad():
            zt = teacher(x)
        mask = torch.ones(y.shape, dtype=torch.bool)  # True: a real token (pad positions would be False)
        if callable(temperature):
            temperature = temperature(zs.detach(), zt, y, mask)  # (B, L) per-token temperatures
        kd = rltemp.kd_loss(zs, zt, temperature, mask=mask)[0]
        loss = 0.1 * F.cross_entropy(zs.flatten(0, 1), y.flatten()) + 0.9 * kd
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return temperature

    @torch.no_grad()
    def logits(model, x):
        return torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)])

    def nats_per_char(model, split):
        model.eval()
        ce = F.cross_entropy(logits(model, split.x).flatten(0, 1), split.y.flatten()).item()
        model.train()
        return ce

    # the probe: a throw-away copy of the student, distilled at the policy's probe temperature for a
    # fraction of an epoch with the batches the run starts with; the policy reads how it learnt
    copy_ = copy.deepcopy(student)
    copy_opt = torch.optim.AdamW(copy_.parameters(), lr=lr, weight_decay=cfg.distill.weight_decay)
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(0))
    for i in range(max(1, round(ctl.probe["epochs"] * steps_per_epoch))):
        idx = order[i * batch:(i + 1) * batch]
        step(copy_, copy_opt, x_train[idx], y_train[idx], ctl.probe["temperature"])
    copy_.eval()
    ctl.observe_probe(student_logits=logits(copy_, data.val.x), teacher_logits=logits(teacher, data.val.x),
                      labels=data.val.y)
    del copy_, copy_opt

    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    g = torch.Generator().manual_seed(0)
    for epoch in range(a.epochs):
        order = torch.randperm(len(y_train), generator=g)
        student.train()
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            progress = (epoch * steps_per_epoch + i) / total
            t = step(student, opt, x_train[idx], y_train[idx],
                     lambda zs, zt, y, mask, p=progress: ctl(zs, zt, y, progress=p, mask=mask))
            sched.step()
        val = nats_per_char(student, data.val)
        print(f"epoch {epoch}: temperature {ctl.temperature:.2f} (per token on the last batch: {t.min():.2f} to "
              f"{t.max():.2f}), val CE {val:.4f} nats/char")
    test = nats_per_char(student, data.test)
    print(f"test CE {test:.4f} nats/char, perplexity {math.exp(test):.3f}")


if __name__ == "__main__":
    main()
