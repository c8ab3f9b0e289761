"""The layers import in one direction only: data / models -> kd -> envs -> agents -> experiments -> cli.

Checked twice: in the source (every import statement of a layer's files, including imports inside
functions) and at run time (what a fresh interpreter has loaded after importing the layer). And
within the package: no import cycle between modules, and no module imports another's private name.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rltemp"
ABOVE = {  # layer -> what it must never import
    "data": ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents", "rltemp.experiments",
             "rltemp.cli"),
    "models": ("gymnasium", "stable_baselines3", "rltemp.kd", "rltemp.envs", "rltemp.agents", "rltemp.experiments",
               "rltemp.cli"),
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
    assert not {"bench.py", "quickstart.py", "parallel.py",
                "stats.py"} & {f.name for f in (ROOT / "agents").glob("*.py")}
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
    ("rltemp.envs", ("stable_baselines3", "rltemp.agents", "rltemp.experiments")),
])
@pytest.mark.slow
def test_layer_runtime_imports(module, forbidden):
    loaded = _loaded_after(module)
    bad = sorted(m for m in loaded for p in forbidden if m == p or m.startswith(p + "."))
    assert not bad, f"import {module} loaded {bad[:5]}"


@pytest.mark.slow
def test_importing_envs_registers_the_environments():
    code = ("import gymnasium, rltemp.envs; print(all(e in gymnasium.registry for e in "
            "('rltemp/KDRunSchedule-v0', 'rltemp/KDInstanceEpoch-v0')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_imports() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported rltemp module, imported name or "")}, every import statement (in functions too)."""
    modules = {_module_name(f): f for f in ROOT.rglob("*.py")}
    out: dict[str, set[tuple[str, str]]] = {}
    for mod, f in modules.items():
        found = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                found |= {(a.name, "") for a in node.names if a.name.startswith("rltemp")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rltemp"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    found.add((sub, "") if sub in modules else (node.module, a.name))
        out[mod] = found
    return out


def test_no_module_imports_a_private_name_of_another():
    bad = [(mod, f"{target}.{name}") for mod, imports in _package_imports().items() for target, name in imports
           if name.startswith("_") and target != mod]
    assert not bad, bad


def test_no_import_cycle_between_modules():
    """A module's imports (of other rltemp modules, packages' __init__ excluded as importers of their
    children) form an acyclic graph."""
    graph = {mod: {t for t, _ in imps if t != mod} for mod, imps in _package_imports().items()}
    graph = {m: {t for t in ts if t in graph and not m.startswith(t + ".") and not t.startswith(m + ".")}
             for m, ts in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_agents_functions_are_short_or_say_why():
    """No function in the SB3 layer over 60 lines without a reason in its docstring."""
    long = []
    for f in (ROOT / "agents").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                if "Longer than 60 lines" not in (ast.get_docstring(node) or ""):
                    long.append(f"{f.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
