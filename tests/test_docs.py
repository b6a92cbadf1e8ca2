"""Tests that keep the README true: schema, config fields, commands."""

from __future__ import annotations

import dataclasses

from conftest import ROOT

from rlm_core.config import RLMConfig
from rlm_core.store.schema_doc import schema_markdown

README = (ROOT / "README.md").read_text()


def test_readme_schema_matches_the_migrated_database() -> None:
    section = README.split("<!-- schema:start -->\n")[1].split("\n<!-- schema:end -->")[0]
    assert section == schema_markdown(), "regenerate with: python -m rlm_core.store.schema_doc"


def test_every_config_field_is_documented() -> None:
    for field in dataclasses.fields(RLMConfig):
        assert f"| `{field.name}` |" in README, field.name


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/test.sh" in README
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "pip install -r requirements.txt && streamlit run app.py" in README
