"""The package's shape: who may import whom, no cycles, no private names across modules, one wheel name.

The rule (ARCHITECTURE.md): ``encoders`` imports nothing of ours; ``training`` imports ``encoders``;
``service`` imports ``encoders``; only ``service.cli``, the command-line entry layer, may also
import ``training``. Imports are read with :mod:`ast` (function-level ones included, since an
import hidden in a function to dodge a cycle is still a cycle), so the test needs no import side
effects. Each check is also run on a small made-up tree that breaks it, so the test can fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "matconcept"
ROOTS = ("encoders", "training", "service")
"""The fixed top-level folders that install as ``matconcept.<folder>``."""

ALLOWED: dict[str, frozenset[str]] = {
    "encoders": frozenset({"encoders"}),
    "training": frozenset({"encoders", "training"}),
    "service": frozenset({"encoders", "service"}),
    "service.cli": frozenset({"encoders", "training", "service"}),
}
"""Layer → the layers its modules may import (the most specific layer prefix applies)."""


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def module_sources(repo: Path = REPO) -> dict[str, str]:
    """``matconcept.…`` module name → source text, for every ``.py`` under the three folders."""
    sources = {}
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            parts = list(path.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            sources[".".join([NAMESPACE, *parts])] = path.read_text()
    return sources


def _is_package(module: str, sources: dict[str, str]) -> bool:
    prefix = module + "."
    return any(name.startswith(prefix) for name in sources)


def imports_of(module: str, source: str, sources: dict[str, str]) -> list[tuple[str, int, list[str]]]:
    """``(imported module, line, imported names)`` for every import statement of ``module``.

    ``from pkg import sub`` counts as an import of ``pkg.sub`` when that is a module of ours.
    Relative imports are resolved against ``module``.
    """
    found = []
    package = module if _is_package(module, sources) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in sources]
            if submodules:
                found.extend((sub, node.lineno, []) for sub in submodules)
                rest = [name for name in names if f"{target}.{name}" not in sources]
                if rest:
                    found.append((target, node.lineno, rest))
            else:
                found.append((target, node.lineno, names))
    return found


def _layer(module: str) -> str:
    inner = module.removeprefix(NAMESPACE + ".")
    return max((layer for layer in ALLOWED if inner == layer or inner.startswith(layer + ".")), key=len)


def check(sources: dict[str, str]) -> list[Violation]:
    """Every breach of the import rule, every cycle and every private name imported across modules."""
    violations = []
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for module, source in sources.items():
        allowed = ALLOWED[_layer(module)]
        for target, line, names in imports_of(module, source, sources):
            top = target.split(".")[0]
            if top in ROOTS:
                violations.append(Violation(module, line, f"imports {target}: use {NAMESPACE}.{target}"))
                continue
            if top != NAMESPACE:
                continue
            inner = target.removeprefix(NAMESPACE + ".").split(".")[0]
            if inner not in allowed:
                violations.append(Violation(module, line, f"{_layer(module)} may not import {target}"))
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                violations.append(Violation(module, line, f"imports private {', '.join(private)} from {target}"))
            if target in graph and target != module:
                graph[module].add(target)
    violations.extend(Violation(cycle[0], 0, "import cycle: " + " → ".join(cycle)) for cycle in cycles(graph))
    return violations


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_cycle_through(min(component), set(component), graph))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def _cycle_through(start: str, component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest import path from ``start`` back to itself inside one strongly connected component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component of more than one module has one


def test_the_package_follows_the_import_rule():
    violations = check(module_sources())
    assert not violations, "\n".join(map(str, violations))


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (  # a cycle hidden inside functions
            {
                "matconcept.service.cli.a": "def f():\n    from matconcept.service.cli.b import g\n",
                "matconcept.service.cli.b": "def g():\n    from matconcept.service.cli import a\n",
            },
            "import cycle",
        ),
        ({"matconcept.encoders.x": "from matconcept.service.store import open_store\n"}, "encoders may not import"),
        ({"matconcept.training.x": "import matconcept.service.client\n"}, "training may not import"),
        ({"matconcept.service.store.x": "from matconcept.training import trainer\n"}, "service may not import"),
        ({"matconcept.service.x": "from service.store import open_store\n"}, "use matconcept.service.store"),
        (
            {
                "matconcept.service.cli.a": "from matconcept.service.cli.common import _fail\n",
                "matconcept.service.cli.common": "def _fail(): ...\n",
            },
            "imports private _fail",
        ),
        (  # relative imports resolve too
            {
                "matconcept.service.store": "from .edge import EdgeStore\n",
                "matconcept.service.store.edge": "from . import base\n",
                "matconcept.service.store.base": "from matconcept.service.store import open_store\n",
            },
            "import cycle",
        ),
    ],
)
def test_the_rule_check_catches_each_breach(tree, expected):
    assert any(expected in str(v) for v in check(tree)), check(tree)


def test_the_cli_may_import_training():
    tree = {"matconcept.service.cli.train": "from matconcept.training.trainer import train\n"}
    assert check(tree) == []


def test_every_package_folder_is_installed():
    """pyproject lists packages by hand (discovery cannot rename folders): none may be forgotten."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join([NAMESPACE, *init.parent.relative_to(REPO).parts])
        for root in ROOTS
        for init in (REPO / root).rglob("__init__.py")
    }
    assert folders == listed


@pytest.mark.slow
def test_a_built_wheel_holds_one_top_level_name(tmp_path):
    """``pip wheel .`` on a copy of the tracked files: only ``matconcept`` lands in site-packages."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    source = tmp_path / "src"
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file() and not name.startswith(("tests/", "benchmarks/")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("matconcept-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {NAMESPACE, wheel.name.split("-py3")[0] + ".dist-info"}
    modules = [name for name in filter(None, tracked.decode().split("\0")) if name.endswith(".py")]
    expected = {f"{NAMESPACE}/{name}" for name in modules if name.startswith(tuple(f"{root}/" for root in ROOTS))} | {
        f"{NAMESPACE}/encoders/checkpoints/default/model.safetensors",
        f"{NAMESPACE}/service/web/map.html",
        f"{NAMESPACE}/training/configs/default.yaml",
    }
    assert expected <= set(names), sorted(expected - set(names))
    entry_points = zipfile.ZipFile(wheel).read(wheel.name.split("-py3")[0] + ".dist-info/entry_points.txt").decode()
    assert "matconcept = matconcept.service.cli:main" in entry_points
