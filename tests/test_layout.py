"""The layout of issue 11 stays true: imports point down only, modules stay small, one Runner."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: top-level packages from the bottom of the data flow to the top (README "Layout");
#: a package may import only packages listed before it (and itself)
LAYERS = ("core", "physics", "inputs", "results", "models", "processors", "condor", "execution",
          "samples", "bench", "commands", "runner", "caliber_cli")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    mods = {}
    for path in [ROOT / "runner.py", ROOT / "caliber_cli.py"] + [
            p for pkg in LAYERS if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> modules of ours it imports, lazy imports inside functions included."""
    mods = _modules()
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                pytest.fail(f"{path}: relative import (use absolute imports)")
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_cycle_between_files():
    assert find_cycle(import_graph()) is None


def test_no_cycle_between_packages_and_imports_point_down():
    graph = import_graph()
    packages: dict[str, set[str]] = {}
    upward = []
    for mod, targets in graph.items():
        pkg = mod.split(".")[0]
        for t in targets:
            tpkg = t.split(".")[0]
            if tpkg != pkg:
                packages.setdefault(pkg, set()).add(tpkg)
                if LAYERS.index(tpkg) > LAYERS.index(pkg):
                    upward.append(f"{mod} -> {t}")
    assert find_cycle(packages) is None
    assert upward == []


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_modules_stay_under_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_one_runner_construction():
    """coffea's Runner is built in execution/runner.py only."""
    places = []
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name == "Runner":
                    places.append(str(path.relative_to(ROOT)))
    assert places == ["execution/runner.py"]


def test_processors_hold_processor_classes_only():
    """processors/ modules define ProcessorABC subclasses and nothing else at top level (constants aside)."""
    for path in (ROOT / "processors").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                pytest.fail(f"{path.name}: top-level function {node.name} belongs in physics/ or commands/")
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                assert any("ProcessorABC" in b for b in bases), f"{path.name}: {node.name} is not a processor"
