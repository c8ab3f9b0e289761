import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_fake_cifar

from rltemp.cli import main

STRATEGIES = ["fixed:4", "anneal", "ctkd", "ctkd-instance", "dtkd", "ls", "adakd", "atkd", "ce"]


def _distill(tmp_path, overrides, spec="fixed:4", name="r"):
    out = tmp_path / name
    rc = main(["distill", "envs/mnist1d.yaml", "--temperature", spec, "--out", str(out), "--no-progress", *overrides])
    return rc, out


def _tags(tb: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tb), size_guidance={"histograms": 0, "scalars": 0})
    ea.Reload()
    return ea.Tags()


def test_distill_writes_results_and_tensorboard(tmp_path, tiny_overrides):
    rc, out = _distill(tmp_path, tiny_overrides)
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert 0 < res["test_acc"] < 1 and res["epochs"] == 2 and res["seed"] == 0
    assert res["temperature"]["mean"] == 4.0 and res["kd_steps"] == 2 * (len_train(out) // 32)
    for f in ("config.yaml", "command.txt", "best.pt", "last.pt"):
        assert (out / f).is_file(), f
    tags = _tags(out)
    assert {"kd/loss", "eval/val_acc", "kd/temperature_mean", "eval/test_acc"} <= set(tags["scalars"])
    assert not tags["histograms"]  # one temperature per step: no per-instance views
    rc, ls = _distill(tmp_path, tiny_overrides, "ls", name="ls")  # per-instance temperatures: histograms
    assert rc == 0 and "kd/temperature" in _tags(ls)["histograms"]
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # hparams in the run's own event file


def len_train(out: Path) -> int:
    from rltemp.config import load_config
    from rltemp.data import load_dataset

    return len(load_dataset(load_config(out / "config.yaml").data).train)


def test_seeded_runs_repeat_exactly(tmp_path, tiny_overrides):
    _, a = _distill(tmp_path, tiny_overrides + ["seed=3"], name="a")
    _, b = _distill(tmp_path, tiny_overrides + ["seed=3"], name="b")
    ra, rb = (json.loads((p / "results.json").read_text()) for p in (a, b))
    assert ra["test_acc"] == rb["test_acc"] and ra["test_loss"] == rb["test_loss"]
    sa, sb = (torch.load(p / "last.pt", weights_only=True)["model"] for p in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("spec", STRATEGIES)
def test_every_strategy_runs_end_to_end(tmp_path, tiny_overrides, spec):
    rc, out = _distill(tmp_path, tiny_overrides, spec)
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert 0 < res["test_acc"] < 1 and res["method"] == spec
    if spec == "ce":
        assert res["temperature"] is None and res["teacher"] is None
    else:
        assert res["temperature"]["min"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "fixd:4"], "unknown temperature strategy 'fixd' (did you mean 'fixed'?)"),
        (["--temperature", "fixed:-1"], "T must be a finite number > 0"),
        (["--temperature", "fixed:nan"], "T must be a finite number > 0"),
        (["--temperature", "anneal:1,2,3,4"], "takes at most 3 arguments"),
        (["distill.epochz=3"], "unknown config key 'distill.epochz' (did you mean 'epochs'?)"),
        (["data.name=mnist"], "unknown dataset 'mnist' (did you mean 'mnist1d'?)"),
        (["student.model=mlpp"], "unknown model 'mlpp' (did you mean 'mlp'?)"),
        (["data.name=cifar100", "data.root=/nonexistent", "data.options={}"],
         "expected train, test in /nonexistent/cifar-100-python"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_results(tmp_path, tiny_overrides, capsys, args, message):
    out = tmp_path / "bad"
    rc = main(["distill", "envs/mnist1d.yaml", "--out", str(out), *tiny_overrides, *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("rltemp: error:") and message in lines[0], err
    assert not (out / "results.json").exists()


@pytest.mark.slow
def test_bad_input_in_a_real_process_exits_2_with_one_line(tmp_path, tiny_overrides):
    out = tmp_path / "bad"
    proc = subprocess.run(
        [sys.executable, "-m", "rltemp", "distill", "envs/mnist1d.yaml", "--out", str(out), *tiny_overrides,
         "--temperature", "fixd:4"], capture_output=True, text=True,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "rltemp: error: unknown temperature strategy 'fixd' (did you mean 'fixed'?); valid: "
        + proc.stderr.split("valid: ")[1].strip()]
    assert not (out / "results.json").exists()


def test_internal_errors_exit_1_with_a_hint_not_2(tmp_path, tiny_overrides, capsys, monkeypatch):
    """A bug (here: a failing optimiser step) is not reported as the user's bad input."""
    import rltemp.kd.trainer as trainer

    def boom(self, *a, **k):
        raise ValueError("shapes (3,) and (4,) not aligned")

    monkeypatch.setattr(trainer.Distiller, "train_step", boom)
    rc = main(["distill", "envs/mnist1d.yaml", "--out", str(tmp_path / "r"), "--no-progress", *tiny_overrides])
    err = capsys.readouterr().err
    assert rc == 1 and "--debug" in err
    assert "rltemp: internal error: ValueError: shapes (3,) and (4,) not aligned" in err
    assert not (tmp_path / "r" / "results.json").exists()


@pytest.mark.slow
def test_resume_after_kill_9_through_the_cli(tmp_path, tiny_overrides):
    """`rltemp distill --resume DIR` (as the README shows it) after a real kill -9 ends bitwise as an
    uninterrupted run of the same config does."""
    import signal
    import time

    args = [*tiny_overrides, "distill.epochs=40", "seed=5", "--no-progress"]
    full = tmp_path / "full"  # the uninterrupted reference, in a process like the others (same threads)
    subprocess.run([sys.executable, "-m", "rltemp", "distill", "envs/mnist1d.yaml", "--out", str(full), *args],
                   check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "rltemp", "distill", "envs/mnist1d.yaml", "--out", str(out), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "state.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "state.pt").exists() and not (out / "results.json").exists()
    done = subprocess.run([sys.executable, "-m", "rltemp", "distill", "--resume", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ra, rb = (json.loads((p / "results.json").read_text()) for p in (full, out))
    assert ra["test_acc"] == rb["test_acc"] and ra["epochs"] == rb["epochs"] == 40 and ra["kd_steps"] == rb["kd_steps"]
    sa, sb = (torch.load(p / "last.pt", weights_only=True)["model"] for p in (full, out))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not (out / "state.pt").exists()
    # a config beside --resume, or resuming a finished run, is a user error that changes nothing
    for extra, message in ((["envs/mnist1d.yaml"], "give no CONFIG"), ([], "already complete")):
        again = subprocess.run([sys.executable, "-m", "rltemp", "distill", "--resume", str(out), *extra],
                               capture_output=True, text=True)
        assert again.returncode == 2 and message in again.stderr, again.stderr
    assert json.loads((out / "results.json").read_text()) == rb


CIFAR_PAIRS = sorted(p.name for p in Path("envs/cifar100").glob("*-*.yaml") if not p.name.startswith("teacher-"))


def test_seven_cifar_pairs_exist():
    assert len(CIFAR_PAIRS) == 7


@pytest.mark.slow
@pytest.mark.parametrize("preset", CIFAR_PAIRS)
def test_cifar_presets_run_one_tiny_step_with_published_teacher(tmp_path, preset):
    from rltemp.config import load_config
    from rltemp.models import build_model

    root = write_fake_cifar(tmp_path / "data", n_train=400, n_test=16)
    cfg = load_config(f"envs/cifar100/{preset}")
    assert cfg.distill.optimizer == "sgd" and cfg.distill.milestones == [150, 180, 210] and cfg.distill.epochs == 240
    teacher = build_model(cfg.teacher.model, (3, 32, 32), 100)
    ckpt = tmp_path / f"{cfg.teacher.model}_vanilla" / "ckpt_epoch_240.pth"
    ckpt.parent.mkdir()
    torch.save({"epoch": 240, "model": teacher.state_dict(), "accuracy": 70.0}, ckpt)
    out = tmp_path / "run"
    rc = main(["distill", f"envs/cifar100/{preset}", "--out", str(out), "--no-progress", f"data.root={root}",
               f"teacher.checkpoint={ckpt}", "distill.epochs=1", "distill.batch_size=64", "device=cpu"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 1 and res["kd_steps"] >= 1 and res["teacher"] == cfg.teacher.model


def test_wrong_published_checkpoint_names_keys(tmp_path, capsys):
    from rltemp.models import build_model

    root = write_fake_cifar(tmp_path / "data", n_train=400, n_test=16)
    ckpt = tmp_path / "resnet56_vanilla" / "ckpt_epoch_240.pth"
    ckpt.parent.mkdir()
    torch.save({"model": build_model("resnet56", (3, 32, 32), 100).state_dict()}, ckpt)
    rc = main(["distill", "envs/cifar100/resnet32x4-resnet8x4.yaml", "--out", str(tmp_path / "r"), "--no-progress",
               f"data.root={root}", f"teacher.checkpoint={ckpt}", "device=cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match CifarResNet" in err and "layer1.0.downsample" in err


@pytest.mark.slow
def test_gpu_options_amp_and_channels_last_run_on_cpu(tmp_path):
    """bfloat16 autocast and channels-last (meant for GPUs) also work on the CPU path."""
    from rltemp.models import build_model

    root = write_fake_cifar(tmp_path / "data", n_train=400, n_test=16)
    ckpt = tmp_path / "t.pth"
    torch.save({"model": build_model("resnet8x4", (3, 32, 32), 100).state_dict()}, ckpt)
    out = tmp_path / "run"
    rc = main(["distill", "envs/cifar100/resnet32x4-resnet8x4.yaml", "--out", str(out), "--no-progress",
               f"data.root={root}", f"teacher.checkpoint={ckpt}", "teacher.model=resnet8x4", "student.model=resnet20",
               "distill.epochs=1", "distill.amp=true", "distill.channels_last=true", "device=cpu"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["kd_steps"] >= 1 and math.isfinite(res["test_loss"])


@pytest.mark.slow
def test_backend_ray_without_ray_installed_is_one_clear_line(tmp_path):
    """Simulated with ray made unimportable in the child interpreter."""
    code = ("import sys; sys.modules['ray'] = None; from rltemp.cli import main; "
            f"sys.exit(main(['bench', 'benchmarks/suites/default.yaml', '--backend', 'ray', '--out', "
            f"{str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "rltemp: error: --backend ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')"]


@pytest.mark.slow
def test_cifar_presets_carry_mdistillers_dkd_recipe_and_dkd_runs(tmp_path):
    from rltemp.config import load_config
    from rltemp.models import build_model

    betas = {"resnet110-resnet32.yaml": 2.0, "resnet56-resnet20.yaml": 2.0, "vgg13-vgg8.yaml": 6.0,
             "wrn_40_2-wrn_16_2.yaml": 6.0, "wrn_40_2-wrn_40_1.yaml": 6.0, "resnet32x4-resnet8x4.yaml": 8.0,
             "resnet32x4-ShuffleV2.yaml": 8.0}
    for name, beta in betas.items():
        d = load_config(f"envs/cifar100/{name}").distill
        assert (d.dkd_alpha, d.dkd_beta, d.dkd_warmup, d.loss) == (1.0, beta, 20.0, "kd"), name
    root = write_fake_cifar(tmp_path / "data", n_train=400, n_test=16)
    ckpt = tmp_path / "t.pth"
    torch.save({"model": build_model("resnet56", (3, 32, 32), 100).state_dict()}, ckpt)
    out = tmp_path / "run"
    assert main(["distill", "envs/cifar100/resnet56-resnet20.yaml", "--out", str(out), "--no-progress",
                 f"data.root={root}", f"teacher.checkpoint={ckpt}", "distill.epochs=1", "distill.loss=dkd",
                 "distill.ce_weight=1.0", "device=cpu"]) == 0
    assert json.loads((out / "results.json").read_text())["kd_steps"] >= 1
