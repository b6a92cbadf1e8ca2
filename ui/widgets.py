"""Widgets more than one page family draws: status badges, links into the app (the Explorer at a
run or node, any page), rows of buttons that select nodes, and a bounded block of untrusted text.

Labels here are built from our own words and `safe.word`/`safe.safe_id` values only: Streamlit
renders markdown in labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal
from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitAPIException

from rlm_core.analysis import views
from rlm_core.types import Node
from ui.safe import word

EXPLORER_PAGE = "pages/1_Explorer.py"
MAX_BUTTONS = 12
TEXT_LIMIT = 200_000
"""Characters shown inline per text; beyond this the browser slows down, so offer a download."""
CODE_HEIGHT = 420

Select = Callable[[str], None]
"""Selects a node by id (the Explorer keeps it in the URL); the callback of node buttons."""


def status_badge(status: str | None) -> str:
    return {
        "ok": "✅ ok",
        "error": "❌ error",
        "limit": "⚠️ limit",
        "interrupted": "⏹️ interrupted",
        "cancelled": "✂️ cancelled",
        "running": "⏳ running",
    }.get(status or "", status or "?")


def explorer_link(run_id: str, node_id: str | None = None) -> str:
    """The Explorer's URL at a run (and node). The ids are URL-encoded, so the link stays one
    link inside markdown and a dataframe's link column whatever an imported trace calls them."""
    params = {"run": run_id, **({"node": node_id} if node_id else {})}
    return "/Explorer?" + urlencode(params)


def page_link(
    page: str,
    label: str,
    url: str,
    query_params: dict[str, str] | None = None,
    icon: str | None = None,
) -> None:
    """In-app navigation (keeps the session, hence typed keys) when the page is registered; a
    plain link to `url` when it is not (a page run on its own, as in tests)."""
    try:
        st.page_link(page, label=label, query_params=query_params, icon=icon)
    except StreamlitAPIException:
        st.link_button(label, url, icon=icon)


def explorer_button(label: str, run_id: str, node_id: str | None = None) -> None:
    """A link to the Explorer at a run (and node). `label` must be our own words and safe ids."""
    params = {"run": run_id, **({"node": node_id} if node_id else {})}
    page_link(EXPLORER_PAGE, label, explorer_link(run_id, node_id), params, icon="🔎")


def button_label(node: Node | None, node_id: str) -> str:
    """Our own words only (kind, turn or batch index, id tail): labels are rendered as markdown."""
    tail = word(node_id[-6:])
    if node is None:
        return f"node …{tail}"
    it, idx = node.meta.get("iteration"), node.meta.get("batch_index")
    extra = f"[{idx}]" if isinstance(idx, int) else ""
    if not extra and isinstance(it, int) and node.kind in ("lm", "code"):
        extra = f" #{it}"
    return f"{word(node.kind)}{extra} d{word(node.depth)} · …{tail}"


def node_buttons(
    ids: Sequence[str], nodes: Sequence[Node], select: Select, key: str, limit: int = MAX_BUTTONS
) -> None:
    """A row of buttons that select nodes (the URL's ?node= follows)."""
    by_id = {n.node_id: n for n in nodes}
    unique = [i for i in dict.fromkeys(ids) if i in by_id]
    if not unique:
        return
    cols = st.columns(min(4, len(unique[:limit])))
    for j, node_id in enumerate(unique[:limit]):
        cols[j % len(cols)].button(
            button_label(by_id.get(node_id), node_id),
            key=f"{key}_{j}_{node_id}",
            on_click=select,
            args=(node_id,),
        )
    if len(unique) > limit:
        st.caption(f"{len(unique) - limit} more node(s) not listed")


def show_text(
    text: str | None, *, key: str, language: str | None = None, empty: str = "(empty)"
) -> None:
    """Untrusted text as a bounded code block, with a download of the full text when it had to
    be cut."""
    full = text or ""
    part = views.clip(full, TEXT_LIMIT)
    if part.clipped:
        st.caption(f"showing first {len(part.text):,} of {part.total:,} chars")
    tall = part.text.count("\n") > 20 or len(part.text) > 3000
    height: int | Literal["content"] = CODE_HEIGHT if tall else "content"
    st.code(part.text or empty, language=language, wrap_lines=True, height=height)
    if part.clipped:
        st.download_button(
            "Download the full text", data=full, file_name=f"{key}.txt", key=f"dl_{key}"
        )
