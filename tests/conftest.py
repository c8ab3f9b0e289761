from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

# A seconds-long mnist1d setting shared by the tests; ENV_TINY adds a short reward interval.
TINY = [
    "data.options.num_samples=600", "teacher.options.channels=8", "teacher.train.epochs=2",
    "teacher.train.batch_size=32", "student.options.width=16", "distill.epochs=2", "distill.batch_size=32",
    "device=cpu",
]
ENV_TINY = [*TINY, "env.reward_interval=4", "env.val_subset=50"]


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    import os

    os.environ["RLTEMP_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


SCHEDULE_TINY = ["agent.episodes=4", "agent.episodes_per_rollout=1"]
MODULATOR_TINY = ["agent.modulator.episodes=1", "agent.modulator.hyperparams.n_steps=8",
                  "agent.modulator.hyperparams.batch_size=64", "agent.modulator.hyperparams.n_epochs=2"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, _cache):
    """One tiny two-stage PPO policy (schedule + modulator, influence credit) trained on mnist1d."""
    from rltemp.agents.config import load_agent
    from rltemp.agents.train import train_policy
    from rltemp.config import load_config

    out = tmp_path_factory.mktemp("policy")
    cfg = load_config("envs/mnist1d.yaml", [*ENV_TINY, "env.calibration=influence"])
    res = train_policy(cfg, load_agent("agents/ppo.yaml", [*SCHEDULE_TINY, *MODULATOR_TINY]), out=out,
                       progress=False, jobs=1)
    return out, res


def write_fake_cifar(root: Path, name: str = "cifar100", n_train: int = 200, n_test: int = 64, seed: int = 0) -> Path:
    """Write a tiny dataset in the official CIFAR 'python version' on-disk format."""
    rng = np.random.default_rng(seed)
    classes = 100 if name == "cifar100" else 10
    if name == "cifar100":
        folder, files, key = root / "cifar-100-python", {"train": n_train, "test": n_test}, "fine_labels"
    else:
        folder, key = root / "cifar-10-batches-py", "labels"
        files = {f"data_batch_{i}": n_train // 5 for i in range(1, 6)} | {"test_batch": n_test}
    folder.mkdir(parents=True, exist_ok=True)
    for fname, n in files.items():
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: list(rng.integers(0, classes, n).tolist())}
        with open(folder / fname, "wb") as f:
            pickle.dump(d, f, protocol=2)
    return root
