import hashlib
import pickle

import numpy as np
import pytest
import torch
from conftest import write_fake_cifar

from rltemp.config import DataConfig, load_config
from rltemp.data import load_dataset
from rltemp.data.cifar import cifar_preprocess
from rltemp.errors import ConfigError, RltempError, UnknownNameError


def test_overrides_and_types():
    cfg = load_config("envs/mnist1d.yaml", ["distill.epochs=3", "student.options.width=7", "seed=5"])
    assert cfg.distill.epochs == 3 and cfg.student.options["width"] == 7 and cfg.seed == 5
    with pytest.raises(ConfigError, match="distill.epoch'.*did you mean 'epochs'"):
        load_config("envs/mnist1d.yaml", ["distill.epoch=3"])
    with pytest.raises(ConfigError, match="distill.lr must be a number"):
        load_config("envs/mnist1d.yaml", ["distill.lr=fast"])
    with pytest.raises(ConfigError, match="data.val_fraction"):
        load_config("envs/mnist1d.yaml", ["data.val_fraction=1.5"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("envs/mnist1d.yaml", ["epochs"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("envs/nope.yaml")


def test_config_is_frozen():
    cfg = load_config("envs/mnist1d.yaml")
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]


def test_yaml_tags_are_not_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="did you mean 'mnist1d'.*valid: arrays, cifar10, cifar100, digits, "
                                               "fashion-mnist, glyphs, imagefolder, mnist1d"):
        load_dataset(DataConfig(name="mnist1"))


def test_mnist1d_generated_once_cached_and_val_carved():
    cfg = DataConfig(name="mnist1d", options={"num_samples": 500})
    a = load_dataset(cfg)
    from rltemp.paths import cache_dir

    files = list(cache_dir("data").glob("mnist1d-*.npz"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    b = load_dataset(cfg)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # not regenerated
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert len(a.train) + len(a.val) == 400 and len(a.test) == 100
    assert abs(len(a.val) - 40) <= 10
    # val comes from train: no val row equals a test row by construction of the split
    x, y, idx = next(a.train.batches(16))
    assert x.shape == (16, 40) and y.shape == (16,) and torch.equal(idx, torch.arange(16))


def test_digits():
    d = load_dataset(DataConfig(name="digits"))
    assert d.num_classes == 10 and d.input_shape == (1, 8, 8)
    assert len(d.train) + len(d.val) + len(d.test) == 1797


def test_glyphs_deterministic_and_documented_classes():
    from rltemp.data.glyphs import generate

    opts = {**__import__("rltemp.data.glyphs", fromlist=["DEFAULTS"]).DEFAULTS,
            "classes": "Oo0lI1αβ", "train_per_class": 5, "test_per_class": 3}
    a, b = generate(opts), generate(opts)

    def digest(arrs):
        return hashlib.sha256(b"".join(arrs[k].tobytes() for k in sorted(arrs))).hexdigest()

    assert digest(a) == digest(b)
    assert digest(a) != digest(generate({**opts, "seed": 1}))
    assert a["x_train"].shape == (40, 1, 16, 16) and a["x_train"].dtype == np.uint8
    assert sorted(set(a["y_train"].tolist())) == list(range(8))
    d = load_dataset(DataConfig(name="glyphs", options={"classes": "abc", "train_per_class": 10}))
    assert d.num_classes == 3 and d.class_names == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="unknown option for dataset 'glyphs'.*did you mean 'noise'"):
        load_dataset(DataConfig(name="glyphs", options={"nois": 0.1}))
    for key, value in (("size", 100000), ("size", 2), ("train_per_class", 10**6), ("test_per_class", 0)):
        with pytest.raises(ConfigError, match=rf"data.options.{key} must be an integer in \[\d+, \d+\], got {value}"):
            load_dataset(DataConfig(name="glyphs", options={key: value}))


@pytest.mark.slow
def test_data_show_writes_png(tmp_path):
    from rltemp.cli import main

    out = tmp_path / "g.png"
    assert main(["data", "show", "glyphs", "--out", str(out), "--classes", "4", "--per-class", "3"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cifar_loader_on_fake_data(tmp_path):
    write_fake_cifar(tmp_path, "cifar100")
    d = load_dataset(DataConfig(name="cifar100", root=str(tmp_path)))
    assert d.num_classes == 100 and d.augmented and len(d.test) == 64
    assert d.train.x.dtype == torch.uint8 and d.train.x.shape[1:] == (3, 32, 32)
    write_fake_cifar(tmp_path, "cifar10")
    d10 = load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    assert d10.num_classes == 10 and len(d10.train) + len(d10.val) == 200


def test_cifar_missing_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(RltempError, match="expected train, test in .*cifar-100-python"):
        load_dataset(DataConfig(name="cifar100", root=str(tmp_path)))


def test_cifar_tampered_pickle_is_refused(tmp_path):
    write_fake_cifar(tmp_path, "cifar100")

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(tmp_path / "cifar-100-python" / "train", "wb") as f:
        pickle.dump({"data": Evil()}, f)
    with pytest.raises(RltempError, match="refusing to load global builtins.print"):
        load_dataset(DataConfig(name="cifar100", root=str(tmp_path)))


def test_cifar_augmentation_crop_and_flip():
    pre = cifar_preprocess((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), crop=True, flip=True)
    x = torch.arange(32, dtype=torch.uint8).repeat(4, 3, 32, 1)  # column index as pixel value
    g = torch.Generator().manual_seed(0)
    out = pre(x, True, g)
    assert out.shape == (4, 3, 32, 32)
    # each row of each image is a (possibly flipped) shifted window of 0..31 with zero padding
    for img in out:
        row = img[0, 16]
        nz = row[row > 0]
        diffs = nz[1:] - nz[:-1]
        assert ((diffs == 1).all() or (diffs == -1).all())
    assert torch.equal(pre(x, False, None), x.float())  # eval: normalisation only
