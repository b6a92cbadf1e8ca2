"""The floor plan of ui/: no import cycle (imports inside functions count), and a page family
(ui/<family>/) imports only the shared modules at ui/ top level, which import no family."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

UI = ROOT / "ui"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ui_imports() -> dict[str, set[str]]:
    """module -> the ui modules it imports anywhere in its body (`from ui.x import y` counts as
    ui.x.y when that is a module, else as ui.x)."""
    modules = {module_name(p): p for p in UI.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.update(
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                )
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def family(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None


def test_no_import_cycle_among_ui_modules() -> None:
    graph = ui_imports()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, " -> ".join([*path[path.index(module) :], module])
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_page_families_import_only_shared_modules_and_those_no_family() -> None:
    wrong = [
        (a, b)
        for a, targets in ui_imports().items()
        for b in targets
        if family(b) is not None and family(b) != family(a)
    ]
    assert wrong == []
