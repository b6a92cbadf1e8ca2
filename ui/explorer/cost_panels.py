"""Time and money in the Explorer: the run timeline (Gantt), budget use and run summary, and
the rollup of one node's subtree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import streamlit as st

from rlm_core.analysis import insight
from rlm_core.types import Node
from ui.common import cost_text
from ui.widgets import Select, node_buttons

MAX_BARS = 5_000
ROWS_PER_DEPTH = 24
"""Parallel rows drawn per depth; a wider batch wraps onto them (bars then overlap)."""
ROW_PX = 20
KIND_COLOURS = {"lm": "#7e57c2", "code": "#3a9a5b", "llm_query": "#2a8f93"}


def pack_rows(bars: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each bar a track: its depth, then the first row free at its start, so calls that ran
    at the same time sit on separate rows and a batch's parallelism shows as a stack."""
    ends: dict[int, list[float]] = {}
    out = []
    for bar in sorted(bars, key=lambda b: (b["lane"], b["start"], b["node_id"])):
        rows = ends.setdefault(int(bar["lane"]), [])
        row = next((i for i, end in enumerate(rows) if end <= bar["start"] + 1e-6), len(rows))
        if row == len(rows):
            rows.append(bar["end"])
        else:
            rows[row] = bar["end"]
        row %= ROWS_PER_DEPTH
        out.append(bar | {"row": row, "track": f"depth {bar['lane']} · {row + 1:02d}"})
    return out


def timeline(nodes: Sequence[Node], current: str | None, select: Select, key: str = "") -> None:
    """Gantt chart of the run; a click on a bar selects its node."""
    bars = insight.timeline(nodes)[:MAX_BARS]
    if not bars:
        st.info("No model call or code cell in this run yet.")
        return
    rows = pack_rows(bars)
    for r in rows:
        r["current"] = r["node_id"] == current
        r["seconds"] = round(r["end"] - r["start"], 3)
    tracks = sorted({r["track"] for r in rows}, key=lambda t: (int(t.split()[1]), t))
    pick = alt.selection_point(name="bar", fields=["node_id"], on="click")
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar(cornerRadius=2)
        .encode(
            x=alt.X("start:Q", title="seconds since the run started"),
            x2="end:Q",
            y=alt.Y("track:N", sort=tracks, title=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color(
                "kind:N",
                scale=alt.Scale(domain=list(KIND_COLOURS), range=list(KIND_COLOURS.values())),
            ),
            stroke=alt.condition(alt.datum.current, alt.value("#d62728"), alt.value(None)),
            strokeWidth=alt.condition(alt.datum.current, alt.value(3), alt.value(0)),
            tooltip=["label:N", "kind:N", "status:N", "seconds:Q", "node_id:N"],
        )
        .add_params(pick)
        .properties(height=alt.Step(ROW_PX))
    )
    chart_key = f"timeline_{key}"
    event = st.altair_chart(chart, on_select="rerun", key=chart_key)
    selection = getattr(event, "selection", None) or {}
    points = selection.get("bar") if hasattr(selection, "get") else None
    picked = points[0].get("node_id") if isinstance(points, list) and points else None
    seen_key = f"{chart_key}_seen"
    if picked and picked != st.session_state.get(seen_key) and picked != current:
        st.session_state[seen_key] = picked
        select(str(picked))
        st.rerun()
    st.session_state[seen_key] = picked
    wall = max(r["end"] for r in rows)
    busy = sum(r["end"] - r["start"] for r in rows if r["kind"] != "code")
    st.caption(
        f"{len(rows)} bars over {wall:.2f} s. Bars stacked on rows of one depth ran at the same "
        f"time (a batch). Model time adds up to {busy:.2f} s. Click a bar to select its node."
    )


def _usage_row(name: str, u: dict[str, Any]) -> dict[str, Any]:
    return {
        "": name,
        "calls": u["calls"],
        "tokens in": u["tokens_in"],
        "tokens out": u["tokens_out"],
        "cost": cost_text(u["cost_usd"]),
        "model latency (s)": round(u["latency_s"], 2),
    }


def _fmt(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name == "max_cost_usd":
        return cost_text(value)
    if name == "timeout_s":
        return f"{value:,.1f} s"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def budget_panel(nodes: Sequence[Node], select: Select) -> None:
    """Run totals (root vs sub, per model, per child RLM) and each limit: used, allowed, fired."""
    summary = insight.run_summary(nodes)
    if not summary:
        st.info("This run has no root run node, so there is nothing to add up.")
        return
    st.markdown("**Run summary**")
    rows = [
        _usage_row("whole run", summary["total"]),
        _usage_row("root model", summary["root"]),
        _usage_row("sub model", summary["sub"]),
    ]
    rows += [_usage_row(f"model: {m}", u) for m, u in summary["by_model"].items()]
    st.dataframe(rows, hide_index=True)
    st.caption(f"wall time {summary['wall_s'] or 0:.2f} s · model latency adds up concurrent calls")
    if summary["children"]:
        st.markdown(f"**Child RLMs ({len(summary['children'])})**")
        st.dataframe(
            [
                {"depth": c["depth"], "node": c["node_id"]}
                | {k: v for k, v in _usage_row("", c["inclusive"]).items() if k}
                for c in summary["children"]
            ],
            hide_index=True,
        )
    st.markdown("**Limits**")
    limits = insight.budget(nodes)
    st.dataframe(
        [
            {
                "limit": r["limit"],
                "used": _fmt(r["limit"], r["used"]),
                "allowed": "none" if r["allowed"] is None else _fmt(r["limit"], r["allowed"]),
                "share": r["fraction"],
                "fired": "yes" if r["fired"] else "",
            }
            for r in limits
        ],
        hide_index=True,
        column_config={"share": st.column_config.ProgressColumn("share", min_value=0, max_value=1)},
    )
    for r in (r for r in limits if r["fired"]):
        st.warning(f"The limit {r['limit']} fired here:")
        node_buttons(r["node_ids"], nodes, select, key=f"budget_{r['limit']}")
    if not any(r["fired"] for r in limits):
        st.caption("No limit fired in this run.")


def node_rollup(nodes: Sequence[Node], node: Node) -> None:
    """Inclusive and exclusive tokens, cost and time of the node's subtree, root vs sub model."""
    try:
        r = insight.rollup(nodes, node.node_id)
    except KeyError:
        return
    with st.expander("Time and money of this node and everything below it"):
        st.text("\n".join(rollup_lines(r)))


def rollup_lines(r: insight.Rollup) -> list[str]:
    def line(name: str, u: insight.Usage) -> str:
        return (
            f"{name:<12} {u.calls:>5} calls · {u.tokens_in:,} in / {u.tokens_out:,} out tokens · "
            f"{cost_text(u.cost_usd)} · {u.latency_s:.2f} s model time"
        )

    lines = [
        line("inclusive", r.inclusive),
        line("own call", r.exclusive),
        line("root model", r.root),
        line("sub model", r.sub),
    ]
    if r.wall_s is not None:
        lines.append(
            f"wall time {r.wall_s:.2f} s · not spent in children {r.self_wall_s or 0:.2f} s"
        )
    return lines
