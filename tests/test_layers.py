"""The layers import in one direction only: data / models -> kd -> envs -> agents -> experiments -> cli.

Checked twice: in the source (every import statement of a layer's files, including imports inside
functions) and at run time (what a fresh interpreter has loaded after importing the layer).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rltemp"
ABOVE = {  # layer -> what it must never import
    "data": ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents", "rltemp.experiments", "rltemp.cli"),
    "models": ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents", "rltemp.experiments", "rltemp.cli"),
    "kd": ("gymnasium", "stable_baselines3", "rltemp.envs", "rltemp.agents", "rltemp.experiments", "rltemp.cli"),
    "envs": ("stable_baselines3", "rltemp.agents", "rltemp.experiments", "rltemp.cli"),
    "agents": ("rltemp.experiments", "rltemp.cli"),
    "experiments": ("rltemp.cli",),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_layer_source_imports_point_down(layer):
    for f in (ROOT / layer).glob("*.py"):
        bad = [m for m in _imports(f) for p in ABOVE[layer] if m == p or m.startswith(p + ".")]
        assert not bad, f"{layer}/{f.name} imports {bad}"


def test_layers_own_their_rooms():
    """Orchestration (bench, quickstart, parallel runs, statistics) is not in the SB3 layer."""
    assert not {"bench.py", "quickstart.py", "parallel.py", "stats.py"} & {f.name for f in (ROOT / "agents").glob("*.py")}
    assert {"bench.py", "quickstart.py", "parallel.py", "stats.py", "runner.py"} <= {
        f.name for f in (ROOT / "experiments").glob("*.py")}


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module, forbidden", [
    ("rltemp", ("gymnasium", "stable_baselines3", "rltemp.envs", "rltemp.agents")),
    ("rltemp.data", ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents")),
    ("rltemp.models", ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents")),
    ("rltemp.kd", ("gymnasium", "stable_baselines3", "rltemp.envs", "rltemp.agents", "rltemp.experiments")),
    ("rltemp.kd.pipeline", ("gymnasium", "stable_baselines3", "rltemp.envs", "rltemp.agents")),
    ("rltemp.envs.kd_env", ("stable_baselines3", "rltemp.agents", "rltemp.experiments")),
])
def test_layer_runtime_imports(module, forbidden):
    loaded = _loaded_after(module)
    bad = sorted(m for m in loaded for p in forbidden if m == p or m.startswith(p + "."))
    assert not bad, f"import {module} loaded {bad[:5]}"


def test_importing_envs_registers_the_environment():
    code = "import gymnasium, rltemp.envs; print('rltemp/KDTemperature-v0' in gymnasium.registry)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"
