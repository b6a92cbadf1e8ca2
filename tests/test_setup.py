"""A newcomer's first start: the static folder Streamlit serves is there from a fresh checkout,
so `streamlit run app.py` prints no "no static folder found" warning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_static_folder_is_part_of_the_checkout_and_streamlit_does_not_warn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamlit import config
    from streamlit.web import bootstrap

    tracked = subprocess.run(
        ["git", "ls-files", "static"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert tracked.stdout.split() == ["static/.gitignore"]
    config.set_option("server.enableStaticServing", True)
    bootstrap._maybe_print_static_folder_warning(str(ROOT / "app.py"))
    assert "no static folder" not in capsys.readouterr().out
