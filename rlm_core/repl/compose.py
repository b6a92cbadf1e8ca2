"""Strings built from pieces of the context keep where each piece came from, also when they are
built in C: a cell's f-strings and `x.join(items)` calls are rewritten (in its syntax tree) into
calls of the two builders below, which do the same and return a tracked string when a piece is
tracked (tracking.compose). Stdlib only: worker.py loads this file by path.

Semantics are kept: an f-string formats each value with format(value, spec) after all values
are evaluated (CPython formats each as it goes: only side effects of __format__ could tell),
and `x.join(items)` on anything that is not a str calls x.join(items) as written.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

FSTRING = "__rlm_fstring__"
JOIN = "__rlm_join__"


class _Rewrite(ast.NodeTransformer):
    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        parts: list[ast.expr] = []
        for value in node.values:
            if not isinstance(value, ast.FormattedValue):
                parts.append(value)
            elif value.conversion == -1 and value.format_spec is None:
                parts.append(self.visit(value.value))  # the object itself: it may be tracked
            else:
                # a spec or !r/!s/!a: formatted natively (a nested f-string spec must stay one)
                value.value = self.visit(value.value)
                parts.append(ast.JoinedStr([value]))
        call = ast.Call(ast.Name(FSTRING, ast.Load()), [ast.Tuple(parts, ast.Load())], [])
        return ast.copy_location(call, node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func, args = node.func, node.args
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "join"
            and len(args) == 1
            and not isinstance(args[0], ast.Starred)
            and not node.keywords
        ):
            call = ast.Call(ast.Name(JOIN, ast.Load()), [func.value, args[0]], [])
            return ast.copy_location(call, node)
        return node


def rewrite(tree: ast.Module) -> ast.Module:
    """The cell's tree with f-strings and one-argument `.join(...)` calls going through the
    builders (installed in the namespace under FSTRING and JOIN)."""
    return ast.fix_missing_locations(_Rewrite().visit(tree))


def builders(compose: Callable[[Any], str], tracked: type) -> dict[str, Callable[..., str]]:
    """The namespace entries the rewritten code calls."""

    def fstring(parts: tuple[Any, ...]) -> str:
        texts = [p if type(p) is str or type(p) is tracked else format(p, "") for p in parts]
        return compose(texts)

    def join(joiner: Any, items: Any) -> Any:
        if not isinstance(joiner, str):
            return joiner.join(items)
        items = items if isinstance(items, list | tuple) else list(items)
        text = str.join(joiner, items)  # the usual TypeError for an item that is not a str
        if type(joiner) is not tracked and not any(type(x) is tracked for x in items):
            return text
        parts: list[Any] = []
        for i, item in enumerate(items):
            parts += [joiner, item] if i else [item]
        return compose(parts)

    return {FSTRING: fstring, JOIN: join}
