"""The Fashion-MNIST loader on small idx files the tests write (gzip and plain), its one-line errors,
and — where the system package is installed — the real files and the preset."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from rltemp.config import DataConfig
from rltemp.data import load_dataset
from rltemp.data.fashion import FILES, SYSTEM_ROOT, find_root
from rltemp.errors import ConfigError, RltempError

OPTS = {"teacher_size": 30, "student_size": 20, "val_size": 10}


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_fashion(root: Path, n_train: int = 70, n_test: int = 15, compress: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {"train_x": rng.integers(0, 256, (n_train, 28, 28)), "train_y": np.arange(n_train) % 10,
            "test_x": rng.integers(0, 256, (n_test, 28, 28)), "test_y": np.arange(n_test) % 10}
    for key, stem in FILES.items():
        raw = idx_bytes(data[key], 0x00000803 if key.endswith("x") else 0x00000801)
        if compress:
            (root / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (root / stem).write_bytes(raw)
    return root


def load(root: Path, **opts):
    return load_dataset(DataConfig(name="fashion-mnist", root=str(root), options={**OPTS, **opts}))


@pytest.mark.parametrize("compress", [True, False])
def test_loader_reads_idx_files_and_makes_disjoint_deterministic_splits(tmp_path, compress):
    root = write_fashion(tmp_path / "fm", compress=compress)
    d = load(root)
    assert d.num_classes == 10 and d.input_shape == (1, 28, 28) and d.class_names[0] == "T-shirt/top"
    assert (len(d.train), len(d.val), len(d.test)) == (20, 10, 15) and d.train.x.shape == (20, 1, 28, 28)
    t = load(root, role="teacher")
    assert len(t.train) == 30 and t.test.x.equal(d.test.x) and t.val.x.equal(d.val.x)
    rows = {tuple(r.flatten()[:40].tolist()) for split in (d.train, d.val, t.train) for r in split.x}
    assert len(rows) == 60  # teacher, student and validation parts are disjoint
    assert load(root).train.x.equal(d.train.x)  # deterministic
    other = load_dataset(DataConfig(name="fashion-mnist", root=str(root), split_seed=1, options=OPTS))
    assert not other.train.x.equal(d.train.x)


def test_bad_files_give_one_line_errors(tmp_path):
    root = write_fashion(tmp_path / "ok")
    cases = []
    trunc = write_fashion(tmp_path / "trunc")
    raw = gzip.decompress((trunc / "train-images-idx3-ubyte.gz").read_bytes())
    (trunc / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    cases.append((trunc, "truncated idx file"))
    magic = write_fashion(tmp_path / "magic")
    raw = gzip.decompress((magic / "train-labels-idx1-ubyte.gz").read_bytes())
    (magic / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress((0x803).to_bytes(4, "big") + raw[4:]))
    cases.append((magic, "wrong magic number 0x00000803 (expected 0x00000801: labels)"))
    corrupt = write_fashion(tmp_path / "corrupt")
    (corrupt / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    cases.append((corrupt, "cannot be read"))
    labels = write_fashion(tmp_path / "labels")
    bad = np.arange(70) % 10
    bad[3] = 12
    (labels / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(bad, 0x801)))
    cases.append((labels, "label 12 outside 0..9"))
    count = write_fashion(tmp_path / "count")
    (count / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.arange(14) % 10, 0x801)))
    cases.append((count, "15 images but 14 labels"))
    cases.append((tmp_path / "nowhere", "apt-get install dataset-fashion-mnist"))
    for folder, message in cases:
        with pytest.raises(RltempError, match="fashion-mnist|idx|cannot") as e:
            load(folder)
        assert message in str(e.value) and "\n" not in str(e.value), (folder.name, str(e.value))
    with pytest.raises(ConfigError, match="exceeds the 70 training images"):
        load(root, teacher_size=60)
    with pytest.raises(ConfigError, match="role must be teacher or student"):
        load(root, role="both")


def test_cli_error_for_a_missing_folder_is_one_line(tmp_path, capsys):
    from rltemp.cli import main

    rc = main(["distill", "envs/fashion-mnist.yaml", f"data.root={tmp_path / 'none'}", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "apt-get install dataset-fashion-mnist" in err[0]


@pytest.mark.skipif(not SYSTEM_ROOT.is_dir(), reason="the real Fashion-MNIST files are not installed "
                    "(Debian package dataset-fashion-mnist; .ci/run installs it when it runs as root)")
def test_real_files_from_the_system_package():
    assert find_root(None) == SYSTEM_ROOT
    d = load_dataset(DataConfig(name="fashion-mnist"))
    assert (len(d.train), len(d.val), len(d.test)) == (3000, 2000, 10000)
    counts = np.bincount(d.test.y.numpy(), minlength=10)
    assert (counts == 1000).all()  # the official test set: 1000 per class
