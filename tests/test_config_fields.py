"""Every config field is used by something that ships: a run of each shipped mode reads it.

The config dataclasses are instrumented to record which fields the package's code reads (their
validation, ``asdict`` and ``replace`` do not count), then each shipped mode runs on a tiny
setting: every kind of ``rltemp distill`` (a classic SPEC, DKD, a shipped policy of each form,
``online:``), the teacher, policy training with every agent preset (both schedule forms, on a pool
of students), and the CIFAR presets' optimiser, schedule and GPU options. A field no shipped mode
reads is an ablation's leftover: the test lists it and fails.
"""

import dataclasses
import sys
from pathlib import Path

import pytest
from conftest import TINY

from rltemp import config as config_module
from rltemp.agents import config as agent_config

CLASSES = [config_module.Config, config_module.DataConfig, config_module.OptimConfig, config_module.DistillConfig,
           config_module.ModelConfig, config_module.TeacherConfig, config_module.PoolMember,
           config_module.EnvConfig, agent_config.AgentConfig, agent_config.PolicyNetConfig,
           agent_config.ModulatorConfig]
CONFIG_MODULES = ("rltemp/config.py", "rltemp/agents/config.py")
CHECKS = {"validate", "validate_agent", "_check_net", "_check_hyperparams", "to_dict", "replace", "with_temperature"}


def _all_fields() -> set[str]:
    return {f"{c.__name__}.{f.name}" for c in CLASSES for f in dataclasses.fields(c)}


@pytest.fixture
def reads(monkeypatch):
    seen: set[str] = set()
    for cls in CLASSES:
        names = {f.name for f in dataclasses.fields(cls)}

        def getattribute(self, name, _names=names, _orig=object.__getattribute__):
            if name in _names:
                code = sys._getframe(1).f_code
                caller = code.co_filename.replace("\\", "/")
                checking = caller.endswith(CONFIG_MODULES) and code.co_name in CHECKS  # validation is not use
                if "/rltemp/" in caller and not checking:
                    for klass in type(self).__mro__:  # credit the class that declares the field
                        if name in getattr(klass, "__dataclass_fields__", {}) and klass in CLASSES:
                            seen.add(f"{klass.__name__}.{name}")
            return _orig(self, name)

        monkeypatch.setattr(cls, "__getattribute__", getattribute)
    return seen


@pytest.mark.slow
def test_every_config_field_is_read_by_a_shipped_mode(reads, tmp_path):
    from rltemp.agents.config import load_agent
    from rltemp.agents.train import train_policy
    from rltemp.cli import main
    from rltemp.config import load_config
    from rltemp.kd.pipeline import get_teacher, prepare_data, run_teacher
    from rltemp.kd.trainer import make_optimizer, make_scheduler

    def distill(*args):
        out = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
        assert main(["distill", "envs/mnist1d.yaml", "--out", str(out), "--no-progress", *TINY, *args]) == 0

    distill("-T", "fixed:4")
    distill("-T", "anneal:4,1,linear", "distill.loss=dkd", "distill.ce_weight=1")
    distill("-T", "policy:default")
    distill("-T", "online:agents/ppo.yaml")
    run_teacher(load_config("envs/mnist1d.yaml", TINY), out=tmp_path / "teacher", progress=False)
    # a preset whose teacher trains on its own data (envs/fashion-mnist.yaml's role), on the built-in glyphs
    cfg = load_config("envs/default.yaml", ["data.options.train_per_class=4", "data.options.test_per_class=2",
                                            "teacher.options.channels=[4,4,4]", "teacher.train.epochs=1",
                                            "teacher.data_options={train_per_class: 6}", "device=cpu"])
    data, device = prepare_data(cfg)
    get_teacher(cfg, data, device, progress=False)
    pool = "env.pool=[{name: fast}, {name: slow, overrides: [distill.lr=0.0003]}]"
    for preset in ("agents/ppo.yaml", "agents/a2c.yaml"):
        cfg = load_config("envs/mnist1d.yaml", [*TINY, pool, "env.run_probe=0.5", "env.eval_seeds=[2000]",
                                                "env.reward_reference=grid"])
        train_policy(cfg, load_agent(preset, ["agent.episodes=4", "agent.episodes_per_rollout=2", "agent.eval_every=1",
                                              "agent.per_pair_advantages=true"]),
                     out=tmp_path / Path(preset).stem, progress=False, jobs=1)
    # the CIFAR presets' recipe (SGD, step schedule) and the GPU options, without data
    import torch

    params = [torch.nn.Parameter(torch.zeros(2))]
    for preset, part in (("envs/cifar100/resnet32x4-resnet8x4.yaml", "distill"),
                         ("envs/cifar100/teacher-resnet32x4.yaml", "teacher")):
        recipe = getattr(load_config(preset), part)
        recipe = recipe.train if part == "teacher" else recipe
        make_scheduler(recipe, make_optimizer(recipe, params))
    from rltemp.data import load_dataset
    from rltemp.errors import RltempError

    with pytest.raises(RltempError):  # data read from a folder (data.root): an empty one is a clear error
        load_dataset(load_config("envs/fashion-mnist.yaml", [f"data.root={tmp_path / 'empty'}"]).data)
    from rltemp.kd.trainer import Distiller

    tiny = load_config("envs/default.yaml", ["data.options.train_per_class=2", "data.options.test_per_class=1",
                                             "distill.amp=true", "distill.channels_last=true", "distill.batch_size=32",
                                             "device=cpu"])
    data, _ = prepare_data(tiny)
    Distiller(tiny.distill, data, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 110)))
    unused = sorted(_all_fields() - reads)
    assert not unused, f"config fields no shipped mode reads: {unused}"
