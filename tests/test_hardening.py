"""The defects a reliability probe found (issue 31), each fed as a new user would: one line and exit 2
for the user's input (nothing half-written), and the tool's own damaged caches rebuilt."""

import json
import shutil

import numpy as np
import pytest
import torch

from rltemp.cli import main

TINY = ["data.options.num_samples=600", "teacher.options.channels=8", "teacher.train.epochs=2",
        "teacher.train.batch_size=32", "student.options.width=16", "distill.epochs=2", "distill.batch_size=32",
        "device=cpu"]


def run(capsys, *args):
    rc = main(list(args))
    return rc, capsys.readouterr().err


def one_line_exit_2(rc, err, message, out=None):
    assert rc == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("rltemp: error:") and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    if out is not None:
        assert not out.exists() or not (out / "results.json").exists()
        assert not out.exists() or not any(out.iterdir()), list(out.iterdir())  # no run folder left behind


def test_a_policy_file_of_random_bytes_or_not_utf8(tmp_path, capsys):
    junk = tmp_path / "x.zip"
    junk.write_bytes(bytes(range(256)) * 4)
    out = tmp_path / "r"
    one_line_exit_2(*run(capsys, "distill", "envs/mnist1d.yaml", "-T", f"policy:{junk}", "--out", str(out), *TINY),
                    "not a policy.json (not UTF-8 text)", out)
    folder = tmp_path / "pol"
    folder.mkdir()
    (folder / "policy.json").write_bytes('{"format": "rltemp-policy/2", "t_min": "é"}'.encode("latin-1"))
    one_line_exit_2(*run(capsys, "distill", "envs/mnist1d.yaml", "-T", f"policy:{folder}", "--out", str(out), *TINY),
                    "not UTF-8 text", out)


@pytest.mark.parametrize("t_min", [0, -1.5])
def test_a_policy_whose_t_min_is_not_positive(tmp_path, capsys, t_min):
    from rltemp.kd.policy import resolve_policy

    src = resolve_policy("default")
    bad = tmp_path / "pol"
    bad.mkdir()
    shutil.copyfile(src.with_name("policy.pt"), bad / "policy.pt")
    meta = json.loads(src.read_text())
    meta["t_min"] = t_min
    (bad / "policy.json").write_text(json.dumps(meta))
    out = tmp_path / "r"
    one_line_exit_2(*run(capsys, "distill", "envs/mnist1d.yaml", "-T", f"policy:{bad}", "--out", str(out), *TINY),
                    "t_min / t_max must satisfy 0 < t_min < t_max", out)


def test_a_preset_that_is_latin1_not_utf8(tmp_path, capsys):
    preset = tmp_path / "p.yaml"
    preset.write_bytes("name: café\ndata: {name: mnist1d}\n".encode("latin-1"))
    one_line_exit_2(*run(capsys, "distill", str(preset), "--out", str(tmp_path / "r"), *TINY),
                    "not UTF-8 text", tmp_path / "r")


def test_out_that_is_an_existing_file(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("mine")
    for command in (["distill", "envs/mnist1d.yaml"], ["teacher", "envs/mnist1d.yaml"],
                    ["train-policy", "envs/mnist1d.yaml"]):
        one_line_exit_2(*run(capsys, *command, "--out", str(f), *TINY), "a file of that name exists")
    assert f.read_text() == "mine"  # the user's file is untouched


@pytest.mark.parametrize("override, message", [
    ("seed=99999999999999999999", "seed must be in [0, 2^63)"),
    ("seed=-1", "seed must be in [0, 2^63)"),
    ("teacher.seed=99999999999999999999", "teacher.seed must be in [0, 2^63)"),
    ("student.options={width: 0, depth: 1}", "mlp: option width must be integer(s) >= 1, got 0"),
    ("student.options={width: 16, depth: -1}", "mlp: option depth must be an integer >= 0"),
    ("student.options={width: 16, depth: 0}", None),  # a valid model (no hidden layer): runs, the control
])
def test_out_of_range_seeds_and_zero_width_models(tmp_path, capsys, override, message):
    out = tmp_path / "r"
    rc, err = run(capsys, "distill", "envs/mnist1d.yaml", "--out", str(out), "--no-progress", *TINY, override)
    if message is None:
        assert rc == 0, err
    else:
        one_line_exit_2(rc, err, message, out)


@pytest.mark.parametrize("value, expected", [("1e-3", 1e-3), ("1E-4", 1e-4), ("1e300", 1e300), ("2.5e-3", 2.5e-3)])
def test_scientific_notation_is_a_number(value, expected):
    from rltemp.config import load_config

    assert load_config("envs/mnist1d.yaml", [f"distill.lr={value}"]).distill.lr == expected


def test_scientific_notation_in_a_preset_file(tmp_path):
    from rltemp.config import load_config

    preset = tmp_path / "p.yaml"
    preset.write_text("distill: {lr: 3e-3}\nteacher: {train: {lr: 1e-3}}\n")
    cfg = load_config(preset)
    assert cfg.distill.lr == 3e-3 and cfg.teacher.train.lr == 1e-3


def _glyphs_cache_file():
    from rltemp.paths import cache_dir

    files = sorted(cache_dir("data").glob("glyphs-*.npz"), key=lambda p: p.stat().st_mtime)
    assert files
    return files[-1]  # the one the test's first load just wrote


TINY_GLYPHS = ["data.options.train_per_class=4", "data.options.test_per_class=2", "data.options.seed=31",
               "teacher.options.channels=[4,4,4]",
               "teacher.train.epochs=1", "distill.epochs=1", "distill.batch_size=32", "device=cpu"]


@pytest.mark.parametrize("damage", ["truncated", "an array missing", "a label out of range"])
def test_a_damaged_dataset_cache_is_rebuilt_with_a_warning(tmp_path, capsys, caplog, damage):
    from rltemp.config import load_config
    from rltemp.data import load_dataset

    cfg = load_config("envs/default.yaml", [*TINY_GLYPHS, f"data.options.noise={0.25 + len(damage) * 1e-6}"])
    good = load_dataset(cfg.data)  # generated now: a cache file of its own
    path = _glyphs_cache_file()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        with np.load(path) as f:
            a = {k: f[k] for k in f.files}
        if damage == "an array missing":
            del a["y_test"]
        else:
            a["y_train"][0] = 500
        np.savez(path, **a)
    with caplog.at_level("WARNING"):
        again = load_dataset(cfg.data)
    assert "damaged" in caplog.text and "rebuilding" in caplog.text
    assert torch.equal(again.train.x, good.train.x) and torch.equal(again.test.y, good.test.y)
    rc, err = run(capsys, "distill", "envs/default.yaml", "--out", str(tmp_path / "r"), "--no-progress", *TINY_GLYPHS)
    assert rc == 0, err


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_teacher_cache_is_trained_again(tmp_path, capsys, caplog, damage):
    from rltemp.paths import cache_dir

    args = ["distill", "envs/mnist1d.yaml", "--no-progress", *TINY]
    rc, err = run(capsys, *args, "--out", str(tmp_path / "a"))
    assert rc == 0, err
    teachers = sorted(cache_dir("teachers").glob("mnist1d-*.pt"), key=lambda p: p.stat().st_mtime)
    path = teachers[-1]
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        torch.save({"model": {"something": torch.zeros(3)}}, path)
    with caplog.at_level("WARNING"):
        rc, err = run(capsys, *args, "--out", str(tmp_path / "b"))
    assert rc == 0, err
    assert "damaged" in caplog.text and "training it again" in caplog.text
    first, second = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("a", "b"))
    assert first["test_acc"] == second["test_acc"]  # the same teacher again (deterministic)
