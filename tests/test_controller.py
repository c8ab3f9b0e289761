"""The public API: a trained policy in a user's own loop makes the decisions `-T policy:` makes."""

import subprocess
import sys

import pytest
import torch
from conftest import TINY, probe_by_hand

import rltemp


@pytest.mark.parametrize("which", ["schedule only", "schedule and modulator"])
def test_controller_equals_the_policy_strategy_in_the_distiller(which, request):
    from rltemp.config import load_config
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller

    out = request.getfixturevalue("trained")[0] if which == "schedule only" else \
        request.getfixturevalue("online_policy")
    cfg = load_config("envs/mnist1d.yaml", [*TINY, f"distill.temperature=policy:{out}", "seed=3"])
    data, device, strategy = prepare(cfg)
    d = Distiller(cfg.distill, data, build_student_model(cfg, data, 3), get_teacher(cfg, data, device), strategy,
                  seed=3)
    ctl = rltemp.TemperatureController.load(out)
    assert ctl.features["schedule"][:2] == ["rel_acc", "agreement"] and ctl.reads_logits
    assert bool(ctl.features["instance"]) == (which == "schedule and modulator")
    ctl.observe_probe(**probe_by_hand(d, ctl.probe["epochs"], ctl.probe["temperature"]))
    compared = 0
    while not d.done:
        progress = d.progress  # the Distiller sets the schedule's temperature once per epoch, at its start
        for i, (x, y, idx) in enumerate(d.epoch_batches()):
            res = d.train_step(x, y, idx)
            if i < 3:  # the first batches of every epoch, the logits the step saw
                t = ctl(res.student_logits, res.teacher_logits, y, progress)
                assert torch.allclose(t, res.temperature, rtol=1e-5), (d.epoch, i)
                compared += 1
        d.end_epoch()
    assert compared == 3 * cfg.distill.epochs and ctl.temperature == pytest.approx(strategy.t_sched, rel=1e-5)


def test_controller_checks_its_inputs_and_handles_bfloat16(trained):
    out, _ = trained
    ctl = rltemp.TemperatureController.load(out)
    zs, zt, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    with pytest.raises(RuntimeError, match="decides from a probe"):
        ctl(zs, zt, y, 0.1)
    with pytest.raises(ValueError, match="reads student/teacher statistics"):
        ctl.observe_probe(val_acc=0.2)
    with pytest.raises(ValueError, match="same shape"):
        ctl.observe_probe(student_logits=zs, teacher_logits=zt[:, :4], labels=y)
    ctl.observe_probe(student_logits=zs, teacher_logits=zt, labels=y)
    for args, message in (((zs[:, None], zt, y, 0.1), "student_logits must be a floating-point tensor of shape"),
                          ((zs, zt[:, :4], y, 0.1), "same shape"),
                          ((zs, zt, y.float(), 0.1), "labels must be an integer tensor"),
                          ((zs, zt, y[:3], 0.1), r"labels must be an integer tensor of shape \(8,\)"),
                          ((zs, zt, y, 1.5), r"progress must be the fraction of training done, in \[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            ctl(*args)
    t = ctl(zs.bfloat16(), zt.bfloat16(), y, 0.2)
    assert t.dtype == torch.float32 and t.shape == (8,) and (t >= 1).all() and (t <= 10).all()
    assert torch.allclose(t, ctl(zs.bfloat16().float(), zt.bfloat16().float(), y, 0.2))
    if torch.cuda.is_available():  # pragma: no cover - CPU machines skip
        tc = ctl(zs.cuda(), zt.cuda(), y.cuda(), 0.2)
        assert tc.device.type == "cuda" and torch.allclose(tc.cpu(), ctl(zs, zt, y, 0.2), atol=1e-5)


@pytest.mark.slow
def test_public_api_imports_neither_gymnasium_nor_sb3(trained):
    out, _ = trained
    code = (f"import sys, torch, rltemp; ctl = rltemp.TemperatureController.load({str(out)!r}); "
            "zs, zt, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0]); "
            "ctl.observe_probe(student_logits=zs, teacher_logits=zt, labels=y); t = ctl(zs, zt, y, 0.0); "
            "rltemp.kd_loss(torch.randn(4, 3), torch.randn(4, 3), t); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'stable_baselines3')))")
    out_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out_ == "[]"


@pytest.mark.slow
def test_example_own_loop_runs_end_to_end(trained):
    out, _ = trained
    tiny = ["data.options.train_per_class=8", "data.options.test_per_class=4", "teacher.options.channels=[8,8,8]",
            "teacher.train.epochs=1"]
    proc = subprocess.run([sys.executable, "examples/own_loop.py", "--policy", str(out), "--epochs", "2", *tiny],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("epoch 0: temperature") and lines[-1].startswith("test acc ")
    assert 0.0 <= float(lines[-1].split()[-1]) <= 1.0
