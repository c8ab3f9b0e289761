"""The layers import in one direction only (DESIGN §1)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rltemp"
FORBIDDEN = {
    "kd": ("gymnasium", "stable_baselines3", "rltemp.envs", "rltemp.agents", "rltemp.cli"),
    "data": ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents"),
    "models": ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents"),
    "envs": ("stable_baselines3", "rltemp.agents", "rltemp.cli"),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer):
    for f in (ROOT / layer).glob("*.py"):
        bad = [m for m in _imports(f) for p in FORBIDDEN[layer] if m == p or m.startswith(p + ".")]
        assert not bad, f"{f.name} imports {bad}"


def test_envs_run_without_sb3_loaded():
    code = ("import sys, rltemp.envs.kd_env, rltemp.kd.pipeline; "
            "print('stable_baselines3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
