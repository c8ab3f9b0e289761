import json
from pathlib import Path

import pytest
import torch

from rltemp.errors import ConfigError, RltempError, UnknownNameError
from rltemp.models import build_model, count_params, load_checkpoint, load_state_strict
from rltemp.models.cifar_zoo import CIFAR_ZOO

LAYOUT = Path(__file__).resolve().parent / "data" / "cifar_zoo_layout.json"  # provenance: tests/data/README.md


@pytest.fixture(scope="module")
def layout():
    return json.loads(LAYOUT.read_text())["models"]


def test_zoo_matches_published_layout(layout):
    assert set(CIFAR_ZOO) <= set(layout)  # the published layout also lists students no shipped pair uses
    for name in CIFAR_ZOO:
        spec = layout[name]
        model = build_model(name, (3, 32, 32), 100)
        sd = model.state_dict()
        expected = spec["state_dict"]
        assert list(sd) == list(expected), name
        for k, t in sd.items():
            *shape, dtype = expected[k]
            assert list(t.shape) == shape and str(t.dtype) == f"torch.{dtype}", (name, k)
        assert count_params(model) == spec["params"], name
        assert len(sd) == spec["num_state_dict_entries"], name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet8x4", "wrn_16_2", "vgg8", "ShuffleV2"])
def test_zoo_forward_shapes(name):
    model = build_model(name, (3, 32, 32), 10).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_registry_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet8x4'"):
        build_model("resnet8x", (3, 32, 32), 100)
    with pytest.raises(ConfigError, match="unknown option 'widht' for model 'mlp'.*did you mean 'width'"):
        build_model("mlp", (40,), 10, {"widht": 3})


def test_checkpoints_load_weights_only(tmp_path):
    model = build_model("resnet20", (3, 32, 32), 100)
    path = tmp_path / "resnet20_vanilla" / "ckpt_epoch_240.pth"
    path.parent.mkdir()
    torch.save({"epoch": 240, "model": model.state_dict(), "accuracy": torch.tensor(69.1),
                "optimizer": torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).state_dict()}, path)
    ckpt = load_checkpoint(path)
    fresh = build_model("resnet20", (3, 32, 32), 100)
    load_state_strict(fresh, ckpt["model"], str(path))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    with pytest.raises(RltempError, match="missing keys|unexpected keys"):
        load_state_strict(build_model("resnet32", (3, 32, 32), 100), ckpt["model"], str(path))

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "x": Evil()}, evil)
    with pytest.raises(RltempError, match="cannot be loaded weights-only"):
        load_checkpoint(evil)
