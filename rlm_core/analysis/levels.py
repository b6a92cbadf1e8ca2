"""Levels of detail: which groups of an outline are open, and the tree that is drawn.

The groups around the selection and the ones the user opened are open; then, outermost first,
every group of a level opens as long as the drawing stays within the outline's budget. An open
group with many members draws a window of them. Pure functions; the UI keeps the user's choices.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from rlm_core.analysis.outline import WINDOW, Outline

Role = Literal["node", "folded", "header", "more"]


@dataclass(frozen=True)
class Drawn:
    """One thing drawn: a node, a folded group, an open group's header, or the members of an
    open group left out of its window ('more', opening the window at `start`)."""

    id: str
    parent: str | None
    role: Role
    group: str | None = None
    start: int = 0
    hidden: int = 0


@dataclass
class View:
    items: list[Drawn]
    open: frozenset[str]
    windows: dict[str, int]


def view(
    outline: Outline,
    *,
    opened: Mapping[str, int] | None = None,
    folded: Collection[str] = (),
    selected: str | None = None,
) -> View:
    """What to draw. Open: the groups around `selected`, the ones the user opened (with the
    window start they chose), then level by level (outermost first) every group of a level as
    long as the drawing stays within the budget; a group the user folded stays folded unless it
    holds the selection."""
    opened = opened or {}
    groups = outline.groups
    around = outline.path(selected) if selected in outline.by_id else []
    forced = set(around)
    for gid in opened:
        g = groups.get(gid)
        while g is not None:
            forced.add(g.id)
            g = groups.get(g.parent) if g.parent else None
    is_open = set(forced)
    count = sum(outline.inner[r] for r in outline.roots) + sum(outline.extra(g) for g in forced)
    by_level: dict[int, list[str]] = {}
    for g in groups.values():
        by_level.setdefault(g.level, []).append(g.id)
    for level in sorted(by_level):
        ready = [
            gid
            for gid in by_level[level]
            if gid not in is_open
            and gid not in folded
            and (groups[gid].parent is None or groups[gid].parent in is_open)
        ]
        extra = sum(outline.extra(gid) for gid in ready)
        if count + extra > outline.budget:
            break
        is_open.update(ready)
        count += extra
    windows = {}
    for gid in is_open:
        start = max(0, int(opened.get(gid, 0)))
        if gid in around:
            i = outline.member_index(gid, str(selected))
            if not start <= i < start + WINDOW:
                start = (i // WINDOW) * WINDOW
        windows[gid] = start
    return View(_emit(outline, is_open, windows), frozenset(is_open), windows)


def _emit(outline: Outline, is_open: set[str], windows: dict[str, int]) -> list[Drawn]:
    """The drawn tree in preorder (iterative: a corrupt trace can be one long chain)."""
    items: list[Drawn] = []
    stack: list[tuple[str, str | None] | Drawn] = [(r, None) for r in reversed(outline.roots)]
    while stack:
        top = stack.pop()
        if isinstance(top, Drawn):  # a 'more' node, drawn after the members before it
            items.append(top)
            continue
        uid, parent = top
        g = outline.groups.get(uid)
        if g is None:
            items.append(Drawn(uid, parent, "node"))
            stack.extend((c, uid) for c in reversed(outline.units[uid]))
        elif uid not in is_open:
            items.append(Drawn(uid, parent, "folded", uid))
        elif not g.header:
            stack.extend((m, parent) for m in reversed(g.members))
        else:
            items.append(Drawn(uid, parent, "header", uid))
            start = windows[uid]
            shown = g.members[start : start + WINDOW]
            if start > 0:
                back = max(0, start - WINDOW)
                items.append(Drawn(f"{uid}@{back}", uid, "more", uid, back, start))
            rest = len(g.members) - start - len(shown)
            if rest > 0:
                nxt = start + len(shown)
                stack.append(Drawn(f"{uid}@{nxt}", uid, "more", uid, nxt, rest))
            stack.extend((m, uid) for m in reversed(shown))
    return items


def shown_as(outline: Outline, v: View, node_id: str, selected: str | None = None) -> str:
    """The drawn id that stands for `node_id`: the outermost folded group holding it, the header
    of an open group whose window leaves it out, the header of an open fan-out (so that data flow
    from a hundred members is one edge; the selected node keeps its own), else the node."""
    for gid in reversed(outline.path(node_id)):
        if gid not in v.open:
            return gid
        g = outline.groups[gid]
        if not g.header:
            continue
        start = v.windows[gid]
        if not start <= outline.member_index(gid, node_id) < start + WINDOW:
            return gid
        if g.kind == "fanout" and outline.member_of.get(node_id) == gid and node_id != selected:
            return gid
    return node_id
