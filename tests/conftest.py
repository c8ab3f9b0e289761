from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

# A seconds-long mnist1d setting shared by the tests.
TINY = [
    "data.options.num_samples=600", "teacher.options.channels=8", "teacher.train.epochs=2",
    "teacher.train.batch_size=32", "student.options.width=16", "distill.epochs=2", "distill.batch_size=32",
    "device=cpu",
]


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    import os

    os.environ["RLTEMP_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


SCHEDULE_TINY = ["agent.episodes=4", "agent.episodes_per_rollout=2", "agent.eval_every=0"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, _cache):
    """One tiny PPO policy (one decision per run, from a half-epoch probe) trained on mnist1d."""
    from rltemp.agents.config import load_agent
    from rltemp.agents.train import train_policy
    from rltemp.config import load_config

    out = tmp_path_factory.mktemp("policy")
    res = train_policy(load_config("envs/mnist1d.yaml", [*TINY, "env.run_probe=0.5"]),
                       load_agent("agents/ppo.yaml", SCHEDULE_TINY), out=out, progress=False, jobs=1)
    return out, res


@pytest.fixture(scope="session")
def online_policy(tmp_path_factory, trained):
    """An online run on the tiny config on top of ``trained``'s schedule: a policy with a modulator."""
    from rltemp.cli import main

    out = tmp_path_factory.mktemp("online") / "run"
    agent = out.parent / "agent.yaml"  # update after every epoch of decisions
    agent.write_text(Path("agents/ppo.yaml").read_text().replace("n_steps: 15 ", "n_steps: 1 "))
    assert main(["distill", "envs/mnist1d.yaml", "-T", f"online:{agent}", "--out", str(out), "--no-progress", *TINY,
                 f"env.base_policy={trained[0]}"]) == 0
    return out


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


def probe_by_hand(d, epochs: float, temperature: float) -> dict:
    """What a user does for TemperatureController.observe_probe: distil a copy of the Distiller ``d``'s
    (initial) student for ``epochs`` of an epoch at ``temperature`` with the run's seed, then run it and
    the teacher over the validation split. Returns observe_probe's keyword arguments."""
    import copy

    from rltemp.kd.trainer import Distiller, predict_logits

    twin = Distiller(d.cfg, d.data, copy.deepcopy(d.student), d.teacher, seed=d.seed, external_temperature=True)
    for i, (x, y, idx) in enumerate(twin.epoch_batches()):
        if i == max(1, round(epochs * twin.steps_per_epoch)):
            break
        twin.train_step(x, y, idx, temperature=temperature)
    return {"student_logits": predict_logits(twin.student, d.data.val, d.data),
            "teacher_logits": predict_logits(d.teacher, d.data.val, d.data), "labels": d.data.val.y}
