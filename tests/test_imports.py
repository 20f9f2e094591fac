"""The package's shape (``docs/architecture.md``): no import cycle anywhere, the stages import
only the stages below them, and few modules sit at the top of the package.

Every import counts: module-level, inside functions and under ``TYPE_CHECKING`` alike (a
function-level import that dodges a cycle is still a cycle). The graph is read from the source
with :mod:`ast`, so the test needs no import of the package.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: The stages, lowest first: a module may import its own stage and the stages ranked below it.
RANKS: dict[str, int] = {
    "_files": 0, "_version": 0,
    "budget": 1, "selection": 1, "data": 1,
    "composer": 2,
    "accel": 3,
    "hardware": 4, "workloads": 4,
    "report": 5,
    "experiments": 6,
    "cli": 7,
    "": 8,  # rapidnn/__init__.py: the public API
}


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    out = {}
    for path in sorted((SRC / "rapidnn").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from a import b`` is an edge to ``a.b``
    when that is a module, else to ``a``)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle() -> None:
    graph = import_graph()
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_stages_import_only_lower_stages() -> None:
    graph = import_graph()
    assert {stage(m) for m in graph} <= set(RANKS), "a new stage: rank it in RANKS and the doc"
    wrong = [f"{a} -> {b}" for a, deps in graph.items() for b in deps
             if stage(a) != stage(b) and RANKS[stage(b)] >= RANKS[stage(a)]]
    assert not wrong, "imports against the stage order:\n" + "\n".join(sorted(wrong))


def test_few_top_level_modules() -> None:
    top = [p for p in (SRC / "rapidnn").glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 8, sorted(p.name for p in top)


def test_the_checker_sees_function_level_cycles(tmp_path: Path, monkeypatch) -> None:
    """The test above cannot pass vacuously: a cycle through a function-level import is found."""
    pkg = tmp_path / "rapidnn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from rapidnn.b import g\n")
    (pkg / "b.py").write_text("def g():\n    from rapidnn import a\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert import_graph() == {"rapidnn": set(), "rapidnn.a": {"rapidnn.b"},
                              "rapidnn.b": {"rapidnn.a"}}
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()
