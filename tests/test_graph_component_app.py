"""The graph component in a Streamlit script (AppTest): payload sent, clicks and steps returned."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui.graph_component import VIS_FILES, ensure_static, vis_source_dir

ROOT = Path(__file__).resolve().parents[1]

APP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from rlm_core.analysis.graph import vis_payload
from rlm_core.types import Node

from ui.graph_component import graph

nodes = [
    Node("n1", "r", None, "run", 0, 0, status="ok"),
    Node("n2", "r", "n1", "lm", 0, 1, output="<script>alert(1)</script>"),
    Node("n3", "r", "n1", "code", 0, 2, status="error", error="<img src=x onerror=alert(2)>"),
]
clicked, step = graph(
    vis_payload(nodes), key="graph", height=320, selected=st.session_state.get("sel")
)
if clicked:
    st.session_state["sel"] = clicked
st.write(f"clicked={{clicked}} step={{step}} selected={{st.session_state.get('sel')}}")
"""


def _text(at: AppTest) -> str:
    return " ".join(str(m.value) for m in at.markdown)


def test_component_gets_payload_and_reports_clicks() -> None:
    at = AppTest.from_string(APP, default_timeout=30).run()
    assert not at.exception
    comps = at.get("bidi_component")
    assert len(comps) == 1
    comp = comps[0]
    assert comp.key == "graph"
    data = json.loads(comp.proto.json)
    assert [n["id"] for n in data["nodes"]] == ["n1", "n2", "n3"]
    assert {(e["from"], e["to"]) for e in data["edges"]} == {("n1", "n2"), ("n1", "n3")}
    assert data["height"] == 320 and data["selected"] is None
    assert data["static"].endswith("/app/static/")
    assert "<script" not in comp.proto.json and "<img" not in comp.proto.json
    assert "clicked=None step=None" in _text(at)

    at.session_state["graph"] = {"node_click": "n3"}
    at.run()
    assert "clicked=n3 step=None selected=n3" in _text(at)
    # the app stores the selection after the graph was drawn; the next run sends it back to the
    # browser (which had already highlighted the clicked node itself). AppTest replays the
    # simulated trigger on every later run, so the reset to None is only seen in a browser.
    at.run()
    assert json.loads(at.get("bidi_component")[0].proto.json)["selected"] == "n3"

    at.session_state["graph"] = {"step": 1}
    at.run()
    assert "step=1" in _text(at)


def test_vis_network_is_copied_once(tmp_path: Path) -> None:
    dest = ensure_static(tmp_path / "static")
    for name in VIS_FILES:
        assert (dest / name).read_bytes() == (vis_source_dir() / name).read_bytes()
        assert (dest / name).stat().st_mode & 0o444 == 0o444  # readable by the web server
    stamp = (dest / VIS_FILES[0]).stat().st_mtime_ns
    ensure_static(tmp_path / "static")
    assert (dest / VIS_FILES[0]).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in dest.iterdir()) == sorted(VIS_FILES)  # no temp files left
