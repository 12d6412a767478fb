"""The package's layering (docs/architecture.md), read from the source: which part may import which,
and no import cycles between modules.

Every ``import`` / ``from ... import`` naming a ``cmagrounding`` module counts, function-level ones
included (a lazy import is still a dependency). The layering leaves ``if TYPE_CHECKING:`` blocks
out; the cycle check counts them too (a type-only cycle is still two modules that need each other).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cmagrounding"

# Each part of the package and the parts it may import (besides itself). A part is a subpackage
# or a top-level module; parts not listed here fail the test, so a new module gets placed on purpose.
FOUNDATION = {"errors", "_io", "_config", "_version", "spans", "_strict_json", "_paths"}
SIDES = {"text", "model", "video"}
FACADE = {"outputs", "queries", "hub", "model_card", "_pretrained", "_bounds", "grounder", "windows", "report", "plot"}
ALLOWED: dict[str, set[str]] = {
    **{m: FOUNDATION for m in FOUNDATION},
    # the three sides of Figure 2 stand beside each other: none imports another
    **{s: FOUNDATION for s in SIDES},
    **{f: FOUNDATION | SIDES | FACADE for f in FACADE},
    "<root>": FOUNDATION | SIDES | FACADE,  # cmagrounding/__init__.py: the public names (lazily)
    "training": FOUNDATION | SIDES | FACADE,
    "demo": FOUNDATION | SIDES | FACADE | {"training"},
    "cli": FOUNDATION | SIDES | FACADE | {"training", "demo", "<root>"},
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, type_checking: bool = False) -> list[tuple[str, bool]]:
    """(imported cmagrounding module, at module level?) for every import in the file;
    ``type_checking``: those under ``if TYPE_CHECKING:`` too."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child) and not type_checking:
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names if a.name.split(".")[0] == "cmagrounding")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    name = ".".join(base + ([child.module] if child.module else []))
                else:
                    name = child.module or ""
                if name.split(".")[0] == "cmagrounding":
                    # `from cmagrounding.video import decode` imports cmagrounding.video.decode
                    for a in child.names:
                        sub = f"{name}.{a.name}"
                        found.append((sub if _exists(sub) else name, top))
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def _graph(type_checking: bool = False) -> dict[str, list[tuple[str, bool]]]:
    return {_module_name(p): _imports(p, type_checking) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_part_is_placed_in_the_layering():
    parts = {_part(m) for m in _graph()}
    assert parts - set(ALLOWED) == set(), "new parts of the package must be placed in ALLOWED (and docs/architecture.md)"


def test_imports_go_only_in_the_allowed_directions():
    wrong = []
    for module, imports in _graph().items():
        mine = _part(module)
        for target, _ in imports:
            theirs = _part(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} imports {target} ({mine} may not import {theirs})")
    assert not wrong, "\n".join(wrong)


def test_the_inference_core_never_imports_training_demo_or_cli():
    core = FOUNDATION | SIDES | FACADE | {"<root>"}
    for module, imports in _graph().items():
        if _part(module) in core:
            bad = [t for t, _ in imports if _part(t) in {"training", "demo", "cli"}]
            assert not bad, f"{module} imports {bad}"


def _cycles(type_checking: bool) -> list[list[str]]:
    """The package's import cycles: strongly connected components of more than one module."""
    graph = {m: sorted({t for t, _ in imps if t in _graph_keys() and t != m}) for m, imps in _graph(type_checking).items()}
    # a package's __init__ re-exporting its modules is not a cycle with them
    for m in graph:
        graph[m] = [t for t in graph[m] if not (t.startswith(m + ".") or m.startswith(t + "."))]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strongconnect(v)
    return cycles


def test_no_import_cycles_between_modules():
    """Imports form no cycle across the package (function-level imports are for optional or heavy
    dependencies, not a way around a cycle, so they are counted too)."""
    assert not _cycles(type_checking=False), f"import cycles: {_cycles(type_checking=False)}"


def test_no_import_cycles_even_through_type_only_imports():
    """``if TYPE_CHECKING:`` imports counted as well: no two modules need each other, even for
    annotations (the grounder <-> _pretrained pair and the video registry's families were such
    cycles; issue 21)."""
    cycles = _cycles(type_checking=True)
    assert not cycles, f"import cycles (type-only imports included): {cycles}"


def test_the_cycle_check_finds_a_type_only_cycle(tmp_path, monkeypatch):
    """The check itself: two modules that import each other only for types form a cycle."""
    pkg = tmp_path / "cmagrounding"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cmagrounding.b import B\n")
    (pkg / "b.py").write_text("from cmagrounding.a import A\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    monkeypatch.setattr(sys.modules[__name__], "_KEYS", set())
    assert _cycles(type_checking=True) == [["cmagrounding.a", "cmagrounding.b"]]
    assert _cycles(type_checking=False) == []


_KEYS: set[str] = set()


def _graph_keys() -> set[str]:
    if not _KEYS:
        _KEYS.update(_module_name(p) for p in PACKAGE.rglob("*.py"))
    return _KEYS


def test_families_register_themselves_and_the_registry_imports_none():
    """Issue 21: the video registry imports no family and the video config no registry or family
    (types included); each family's file registers itself when ``cmagrounding.video`` is imported."""
    import subprocess

    graph = _graph(type_checking=True)
    families = {"cmagrounding.video.i3d_spec", "cmagrounding.video.c3d_spec", "cmagrounding.video.tv_spec",
                "cmagrounding.video.ptv_spec"}
    assert not {t for t, _ in graph["cmagrounding.video.registry"]} & families
    assert not {t for t, _ in graph["cmagrounding.video.config"]} & (families | {"cmagrounding.video.registry"})
    assert "cmagrounding.grounder" not in {t for t, _ in graph["cmagrounding._pretrained"]}
    code = ("from cmagrounding.video.config import VideoConfig; from cmagrounding.video.registry import available; "
            "print(VideoConfig.for_extractor('c3d_sports1m').feature_dim, len(available()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["4096", "10"]
