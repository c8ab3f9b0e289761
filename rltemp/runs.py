"""Run folders: ``runs/<command>-<name>-<timestamp>/`` with ``config.yaml``, ``command.txt``,
``results.json`` (written last, atomically: a folder without it is not a finished run) and the
TensorBoard event file, in the folder itself — so ``tensorboard --logdir`` on a bench or quickstart
folder names each run by its path there (``seen/policy/s0``)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rltemp.config import dump_yaml
from rltemp.errors import RltempError
from rltemp.paths import atomic_write_bytes


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, command: str, name: str, out: str | Path | None, config: dict[str, Any],
               root: str | Path = "runs") -> RunDir:
        if out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(root) / f"{command}-{name}-{stamp}"
            i = 1
            while path.exists():
                path = Path(root) / f"{command}-{name}-{stamp}-{i}"
                i += 1
        else:
            path = Path(out)
        if path.exists() and not path.is_dir():
            raise RltempError(f"--out {path}: a file of that name exists; give a folder (new or a run folder)")
        path.mkdir(parents=True, exist_ok=True)
        results = path / "results.json"
        if results.exists():  # re-running into a finished folder: the old result no longer describes it
            results.unlink()
        run = cls(path)
        atomic_write_bytes(path / "config.yaml", dump_yaml(config).encode())
        argv = ["rltemp", *sys.argv[1:]] if Path(sys.argv[0]).name in ("rltemp", "__main__.py") else sys.argv
        atomic_write_bytes(path / "command.txt", (shlex.join(argv) + "\n").encode())
        return run

    @property
    def tb(self) -> Path:
        """Where the run's TensorBoard events go: the run folder itself."""
        return self.path

    def write_classes(self, names: list[str] | None) -> None:
        """``classes.json``: the dataset's class names, index by index (datasets that have names)."""
        if names:
            atomic_write_bytes(self.path / "classes.json", (json.dumps(list(names),
                                                                       ensure_ascii=False) + "\n").encode())

    def write_results(self, results: dict[str, Any]) -> None:
        atomic_write_bytes(self.path / "results.json", (json.dumps(results, indent=2) + "\n").encode())


def read_results(path: str | Path) -> dict[str, Any] | None:
    p = Path(path) / "results.json"
    if not p.is_file():
        return None
    return json.loads(p.read_text())
