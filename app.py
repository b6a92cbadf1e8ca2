"""RLM Tracer: the Run page plus the pages in pages/, under one navigation.

`streamlit run app.py`. Each file pages/N_Name.py is served at /Name.
"""

from pathlib import Path

import streamlit as st

from ui.run import page as run_page

st.set_page_config(page_title="RLM Tracer", page_icon="🌳", layout="wide")

PAGES_DIR = Path(__file__).parent / "pages"


def _page(path: Path) -> st.Page:
    name = path.stem.split("_", 1)[-1]
    return st.Page(
        str(path.relative_to(Path(__file__).parent)), title=name.replace("_", " "), url_path=name
    )


navigation = st.navigation(
    [
        st.Page(run_page.render, title="Run", url_path="run", default=True),
        *[_page(p) for p in sorted(PAGES_DIR.glob("[0-9]*_*.py"))],
    ]
)
navigation.run()
