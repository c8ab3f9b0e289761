"""A trained rltemp temperature policy in a plain PyTorch distillation loop (no rltemp trainer).

    python examples/own_loop.py [--policy default] [--epochs 3]

Uses rltemp only for the built-in glyphs data, the teacher (trained and cached on first use), the
policy and its KD loss; the loop itself — batches, forward, loss, Adam step, validation — is the
one you would write anyway.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

import rltemp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default="default",
                    help="a shipped policy name, a train-policy run folder or policy.json")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for the data and teacher")
    a = ap.parse_args()
    from rltemp.config import load_config
    from rltemp.kd.pipeline import get_teacher, prepare

    cfg = load_config("envs/default.yaml", a.overrides)
    data, device, _ = prepare(cfg)  # glyphs: train / val / test tensors
    teacher = get_teacher(cfg, data, device, progress=False).eval()

    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, data.num_classes)).to(device)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    ctl = rltemp.TemperatureController.load(a.policy)
    x_train, y_train = data.train.x, data.train.y
    batch = 128
    steps_per_epoch = len(y_train) // batch
    total = a.epochs * steps_per_epoch

    def step(model, optimizer, x, y, temperature):
        zs = model(x)
        with torch.no_grad():
            zt = teacher(x)
        loss = 0.1 * F.cross_entropy(zs, y) + 0.9 * rltemp.kd_loss(zs, zt, temperature)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    # the probe: a throw-away copy of the student, distilled at the policy's probe temperature for a
    # fraction of an epoch with the same batches the run starts with; the policy reads how it learnt
    copy_ = copy.deepcopy(student)
    copy_opt = torch.optim.Adam(copy_.parameters(), lr=3e-3)
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(0))
    for i in range(max(1, round(ctl.probe["epochs"] * steps_per_epoch))):
        idx = order[i * batch:(i + 1) * batch]
        step(copy_, copy_opt, x_train[idx], y_train[idx], ctl.probe["temperature"])
    with torch.no_grad():
        ctl.observe_probe(student_logits=copy_(data.val.x), teacher_logits=teacher(data.val.x), labels=data.val.y)
    del copy_, copy_opt

    g = torch.Generator().manual_seed(0)
    for epoch in range(a.epochs):
        order = torch.randperm(len(y_train), generator=g)
        student.train()
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            x, y = x_train[idx], y_train[idx]
            with torch.no_grad():
                t = ctl(student(x), teacher(x), y, progress=(epoch * steps_per_epoch + i) / total)
            step(student, opt, x, y, t)
        student.eval()
        with torch.no_grad():
            val_acc = (student(data.val.x).argmax(-1) == data.val.y).float().mean().item()
        print(f"epoch {epoch}: temperature {ctl.temperature:.2f} (mean this epoch's last batch {t.mean():.2f}), "
              f"val acc {val_acc:.4f}")
    with torch.no_grad():
        test_acc = (student(data.test.x).argmax(-1) == data.test.y).float().mean().item()
    print(f"test acc {test_acc:.4f}")


if __name__ == "__main__":
    main()
