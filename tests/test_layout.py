"""The floor plan holds: no import cycle (imports inside functions count too), every module
imports only from its own floor or below (ui above all of rlm_core; a ui page family only from
ui's shared modules), modules stay small, and the README's layout section names every module."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT

PACKAGES = ("rlm_core", "ui")
FLOORS = (
    (
        "ground",
        (
            "types",
            "errors",
            "config",
            "context",
            "meta",
            "secrets",
            "archive",
            "trace",
            "readers",
            "ingest",
            "flags",
            "otel_map",
            "otlp",
        ),
    ),
    ("store", ("store",)),
    ("models", ("models",)),
    ("repl", ("repl",)),
    ("engine", ("engine",)),
    ("strategies", ("strategies",)),
    ("evaluate", ("evaluate",)),
    ("analysis", ("analysis",)),
    ("exchange", ("exchange",)),
    ("top", ("cli", "cli_eval", "__main__", "__init__")),
)
"""rlm_core's floors, bottom up: the first part of a module's name under rlm_core."""
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> Iterator[tuple[str, bool]]:
    """(imported module, at module level?) for every import in the file, inside functions too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(n) for n in tree.body}
    guarded = {
        id(inner)
        for n in ast.walk(tree)
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
        for inner in ast.walk(n)
    }
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue  # type-only imports never run
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else _relative(name, node.module, node.level)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            if target in known and target != name:
                yield target, id(node) in top_level
                break


def _relative(name: str, module: str, level: int) -> str:
    return ".".join([*name.split(".")[:-level], module])


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {t for t, _ in imports(path, name, known)} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def floor_of(name: str) -> int:
    if name.startswith("ui"):
        return len(FLOORS)
    part = name.split(".")[1] if "." in name else "__init__"
    return next(i for i, (_, parts) in enumerate(FLOORS) if part in parts)


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    assert cycles(graph()) == []


def test_cycle_detector_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    a = tmp_path / "a.py"
    a.write_text("import b\n")
    b = tmp_path / "b.py"
    b.write_text("def late():\n    import a\n")
    known = {"a": a, "b": b}
    edges = {n: {t for t, _ in imports(p, n, known)} for n, p in known.items()}
    assert cycles(edges) == [["a", "b"]]


def test_every_module_imports_only_from_its_floor_or_below() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in targets
        if floor_of(target) > floor_of(name)
    ]
    assert upward == []


def family(name: str) -> str | None:
    """A ui page family (ui/<family>/...), or None for rlm_core and ui's shared modules."""
    parts = name.split(".")
    return parts[1] if parts[0] == "ui" and len(parts) > 2 else None


def test_ui_page_families_import_only_shared_modules_and_those_no_family() -> None:
    crossing = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in targets
        if family(target) is not None and family(target) != family(name)
    ]
    assert crossing == []


def test_the_engine_never_imports_streamlit() -> None:
    offenders = [
        name
        for name, path in modules().items()
        if name.startswith("rlm_core")
        and re.search(r"^\s*(import|from) streamlit", path.read_text(), re.M)
    ]
    assert offenders == []


def test_modules_stay_under_the_line_cap() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def readme_layout() -> set[str]:
    """Module paths the README's layout section names: a line starting with `dir/` sets the
    folder, a line starting with file names (comma-separated) names files in it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```\n", 2)[1]
    folder, named = "", set[str]()
    for line in block.splitlines():
        head = line.split("  ")[0].strip() if line.startswith("  ") else line.split()[0]
        if not line.startswith(" ") and head.endswith("/"):
            folder = head
        elif line.startswith("  "):
            names = line.strip().split("  ")[0]
            named.update(folder + n.strip() for n in names.split(",") if n.strip().endswith(".py"))
    return named


def test_readme_layout_names_every_module() -> None:
    actual = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    }
    assert readme_layout() == actual
