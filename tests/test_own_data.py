"""Your own data: a .npz (``arrays``) and a folder of images (``imagefolder``) end to end through the
CLI, identical splits from both, and one clear line for every kind of bad file."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from rltemp.cli import main
from rltemp.config import load_config
from rltemp.data import load_dataset

SMALL = ["teacher.options={channels: [4, 8], convs_per_stage: 1}", "teacher.train.epochs=2", "distill.epochs=2",
         "distill.batch_size=16", "teacher.train.batch_size=16", "student.options={width: 16, depth: 1}", "device=cpu"]


def make_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 8x8 grey uint8 images: a bright row, column or diagonal, plus noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(3):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, (8, 8))
            k = rng.integers(1, 7)
            if c == 0:
                img[k] = 250
            elif c == 1:
                img[:, k] = 250
            else:
                np.fill_diagonal(img, 250)
            xs.append(img.astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.asarray(ys, np.int64)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The same images as a .npz and as ROOT/{train,test}/<class>/<n>.png (class-major, sorted names)."""
    root = tmp_path_factory.mktemp("own")
    x_tr, y_tr = make_images(40, 0)
    x_te, y_te = make_images(10, 1)
    np.savez(root / "data.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    names = ["circle", "line", "square"]  # sorted: the class index is the position
    for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            d = root / "images" / split / names[label]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(d / f"{i:04d}.png")
    return root


def test_arrays_and_imagefolder_give_identical_splits(own):
    a = load_dataset(load_config(None, ["data.name=arrays", f"data.options={{path: {own / 'data.npz'}}}"]).data)
    f = load_dataset(load_config(None, ["data.name=imagefolder", f"data.options={{root: {own / 'images'}}}"]).data)
    for split in ("train", "val", "test"):
        sa, sf = getattr(a, split), getattr(f, split)
        assert sa.x.shape == sf.x.shape and (sa.x == sf.x).all() and (sa.y == sf.y).all(), split
    assert a.input_shape == f.input_shape == (1, 8, 8) and a.num_classes == f.num_classes == 3
    assert f.class_names == ["circle", "line", "square"] and len(a.val) == 12  # 10 % of each class, carved
    assert float(a.train.x.max()) <= 1.0  # uint8 pixels scaled to [0, 1]


@pytest.mark.parametrize("data", ["arrays", "imagefolder"])
def test_distill_and_bench_run_on_your_own_data(own, tmp_path, data):
    where = f"path: {own / 'data.npz'}" if data == "arrays" else f"root: {own / 'images'}"
    opts = f"data.options={{{where}}}"
    over = [f"data.name={data}", opts, *SMALL, "student.model=mlp"]
    assert main(["distill", "envs/default.yaml", "-T", "policy:default", "--out", str(tmp_path / "d"), "--no-progress",
                 *over]) == 0
    res = json.loads((tmp_path / "d" / "results.json").read_text())
    assert 0 <= res["test_acc"] <= 1 and res["dataset"] == data
    if data == "imagefolder":
        assert json.loads((tmp_path / "d" / "classes.json").read_text()) == ["circle", "line", "square"]
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"name": "own", "seeds": [0, 1], "methods": ["grid", "policy:default"],
                                 "pairs": [{"name": data, "config": "envs/default.yaml", "overrides": over}]}))
    assert main(["bench", str(suite), "--jobs", "1", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "policy:default" in (tmp_path / "b" / "summary.md").read_text()


BAD_ARRAYS = {
    "wrong rank": (dict(x_train=np.zeros((6,)), y_train=np.zeros(6, np.int64)), "x_train has rank 1"),
    "labels out of range": (dict(x_train=np.zeros((6, 2)), y_train=np.array([0, 1, 2, 0, 1, 2]),
                                 x_test=np.zeros((2, 2)), y_test=np.array([0, 7])),
                                 "y_test has the label 7, out of range"),
    "negative label": (dict(x_train=np.zeros((6, 2)), y_train=np.array([0, 1, -1, 0, 1, 0])), "negative label"),
    "NaN": (dict(x_train=np.full((6, 2), np.nan), y_train=np.array([0, 1, 0, 1, 0, 1])), "NaN or infinite"),
    "mismatched lengths": (dict(x_train=np.zeros((6, 2)), y_train=np.zeros(5, np.int64)),
                           "has 6 rows but y_train has 5"),
    "float labels": (dict(x_train=np.zeros((6, 2)), y_train=np.zeros(6)), "y_train must be a 1-D integer array"),
    "missing y": (dict(x_train=np.zeros((6, 2))), "no y_train"),
    "one class": (dict(x_train=np.zeros((6, 2)), y_train=np.zeros(6, np.int64)), "at least 2 are needed"),
    "empty test": (dict(x_train=np.zeros((6, 2)), y_train=np.array([0, 1, 0, 1, 0, 1]),
                        x_test=np.zeros((0, 2)), y_test=np.zeros(0, np.int64)), "the test split is empty"),
    "string x": (dict(x_train=np.array([["a", "b"]] * 6), y_train=np.array([0, 1, 0, 1, 0, 1])),
                 "numbers are expected"),
}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rltemp", *args], capture_output=True, text=True, timeout=300)


def _assert_one_line_exit_2(proc, message, out):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rltemp: error:"), proc.stderr
    assert message in lines[0], lines[0]
    assert not (out / "results.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_arrays_give_one_line_and_exit_2(tmp_path, case):
    arrays, message = BAD_ARRAYS[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    proc = _cli("distill", "envs/default.yaml", "data.name=arrays", f"data.options={{path: {path}}}", *SMALL,
                "--out", str(tmp_path / "run"))
    _assert_one_line_exit_2(proc, message, tmp_path / "run")


@pytest.mark.slow
def test_an_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "owned"
    path = tmp_path / "obj.npz"
    np.savez(path, x_train=np.array([object()] * 6, dtype=object), y_train=np.zeros(6, np.int64))
    proc = _cli("distill", "envs/default.yaml", "data.name=arrays", f"data.options={{path: {path}}}", *SMALL,
                "--out", str(tmp_path / "run"))
    _assert_one_line_exit_2(proc, "cannot be read without unpickling", tmp_path / "run")
    assert not marker.exists()
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    proc = _cli("distill", "envs/default.yaml", "data.name=arrays", f"data.options={{path: {tmp_path / 'junk.npz'}}}",
                *SMALL, "--out", str(tmp_path / "run"))
    _assert_one_line_exit_2(proc, "not a readable .npz", tmp_path / "run")


@pytest.mark.slow
def test_bad_images_give_one_line_and_exit_2_or_are_skipped(own, tmp_path):
    import shutil

    root = tmp_path / "images"
    shutil.copytree(own / "images", root)
    (root / "train" / "line" / "9999.png").write_bytes(b"\x89PNG broken")
    proc = _cli("distill", "envs/default.yaml", "data.name=imagefolder", f"data.options={{root: {root}}}", *SMALL,
                "--out", str(tmp_path / "run"))
    _assert_one_line_exit_2(proc, "9999.png: not a readable image", tmp_path / "run")
    proc = _cli("distill", "envs/default.yaml", "data.name=imagefolder",
                f"data.options={{root: {root}, skip_bad: true}}", *SMALL, "--out", str(tmp_path / "ok"),
                "--no-progress")
    assert proc.returncode == 0 and "skipped 1 unreadable image" in proc.stderr, proc.stderr
    Image.fromarray(np.zeros((5, 9), np.uint8)).save(root / "train" / "line" / "9999.png")
    proc = _cli("distill", "envs/default.yaml", "data.name=imagefolder", f"data.options={{root: {root}}}", *SMALL,
                "--out", str(tmp_path / "run"))
    _assert_one_line_exit_2(proc, "9x5 pixels, the others 8x8", tmp_path / "run")
    (root / "test" / "zebra").mkdir()
    proc = _cli("distill", "envs/default.yaml", "data.name=imagefolder",
                f"data.options={{root: {root}, size: 8}}", *SMALL, "--out", str(tmp_path / "run"))
    _assert_one_line_exit_2(proc, "class folder 'zebra' is not among train/'s classes", tmp_path / "run")
