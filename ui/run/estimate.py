"""The Run page's cost estimate before a run: one root iteration and one sub-model pass over the
context, at list prices."""

from __future__ import annotations

from typing import Any

import streamlit as st

from rlm_core.analysis import insight
from ui.common import cost_text


@st.cache_data(show_spinner="Looking up prices…", max_entries=32)
def _estimate(root: str, sub: str, chars: int) -> dict[str, Any]:
    return insight.estimate(root, sub, chars)


def estimate(root: str, sub: str, chars: int) -> None:
    """Before a run: cost of one root iteration and of one sub-model pass over the context."""
    e = _estimate(root, sub, chars)
    with st.container(border=True):
        st.caption("Cost estimate before running (rough: typical prompt sizes, list prices)")
        per_turn = e["root_tokens_per_iteration"]
        st.text(
            f"root model, per iteration: {cost_text(e['root_usd_per_iteration'])} "
            f"(~{per_turn['in']:,} in / {per_turn['out']:,} out tokens)\n"
            f"sub model, one full pass over the context: {cost_text(e['sub_full_pass_usd'])} "
            f"({e['sub_chunks']:,} chunk(s) of ~{e['sub_chunk_tokens']:,} tokens)"
            + (
                f"\nno price known for: {', '.join(e['unknown_prices'])}"
                if e["unknown_prices"]
                else ""
            )
        )
