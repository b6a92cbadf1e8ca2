"""The run graph as a bidirectional Streamlit component (components v2) around vis-network.

vis-network is the copy shipped inside the installed pyvis package, copied once into the
git-ignored `static/` folder and served by Streamlit's static file serving: no vendoring, no CDN.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import streamlit as st

REPO_ROOT = Path(__file__).resolve().parents[1]
STATIC_DIR = REPO_ROOT / "static"
VIS_FILES = ("vis-network.min.js", "vis-network.css")

_HTML = '<div class="rlm-graph" tabindex="0" aria-label="Run graph"></div>'
_CSS = """
.rlm-graph { width: 100%; border: 1px solid rgba(128, 128, 128, 0.35); border-radius: 6px; }
.rlm-graph:focus { outline: 2px solid rgba(80, 140, 255, 0.6); }
"""
# Read once at import: Streamlit re-sends `js` with every rerun, so it must stay small (the library
# itself is loaded by a <script src> from the static folder, see STACK.md 1.8).
_JS = Path(__file__).with_name("graph_component.js").read_text(encoding="utf-8")

_component = st.components.v2.component(
    "rlm_tracer_graph", html=_HTML, css=_CSS, js=_JS, isolate_styles=False
)

_copied: set[Path] = set()
_copy_lock = threading.Lock()


def vis_source_dir() -> Path:
    """Where pyvis keeps its vis-network build; found without importing pyvis (it loads IPython)."""
    spec = importlib.util.find_spec("pyvis")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pyvis is not installed; it provides vis-network for the graph")
    return Path(next(iter(spec.submodule_search_locations))) / "lib" / "vis-9.1.2"


def ensure_static(dest: Path = STATIC_DIR) -> Path:
    """Copy vis-network into `dest` unless an identical-sized copy is already there."""
    dest = dest.resolve()
    if dest in _copied:
        return dest
    with _copy_lock:
        src_dir = vis_source_dir()
        dest.mkdir(parents=True, exist_ok=True)
        for name in VIS_FILES:
            src, out = src_dir / name, dest / name
            if out.exists() and out.stat().st_size == src.stat().st_size:
                continue
            # write-then-rename, so a browser racing the first copy never gets half a file
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.")
            os.close(fd)
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes files private; these are public assets
            os.replace(tmp, out)
        _copied.add(dest)
    return dest


def _static_prefix() -> str:
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/app/static/" if base else "/app/static/"


def _ignore() -> None:
    """Trigger callbacks must exist for Streamlit to report the trigger; the value is enough."""


def graph(
    payload: dict[str, Any],
    *,
    key: str,
    height: int = 600,
    selected: str | None = None,
    fit_token: int = 0,
) -> tuple[str | None, int | None]:
    """Draw `payload` (from `analysis.graph.vis_payload`); return (clicked node id, step -1/+1).

    Both are None unless the user just clicked a node or pressed an arrow key (or j/k) on the graph.
    Changing `fit_token` refits the view; otherwise the camera stays where the user left it.
    A `selected` that differs from the last one sent selects the node and centres it, unless it is
    the node the user just clicked. A selection stored after this call reaches the browser on the
    next run (`st.rerun()` if it must be immediate).
    """
    ensure_static()
    data = {
        "nodes": payload.get("nodes", []),
        "edges": payload.get("edges", []),
        "selected": selected if selected is not None else payload.get("selected"),
        "fit_token": fit_token,
        "height": height,
        "static": _static_prefix(),
    }
    result = _component(
        key=key,
        data=data,
        height=height,
        on_node_click_change=_ignore,
        on_step_change=_ignore,
    )
    clicked = result.get("node_click")
    step = result.get("step")
    return (
        str(clicked) if clicked is not None else None,
        int(step) if isinstance(step, int | float) and step in (-1, 1) else None,
    )
