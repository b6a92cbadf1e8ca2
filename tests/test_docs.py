"""Tests that keep the README true: schema, config fields, commands."""

from __future__ import annotations

import dataclasses

from conftest import ROOT

from rlm_core.config import RLMConfig
from rlm_core.config import readme_table as config_table
from rlm_core.meta import readme_table as meta_table
from rlm_core.store.schema_doc import schema_markdown

README = (ROOT / "README.md").read_text()


def test_readme_schema_matches_the_migrated_database() -> None:
    assert section("schema") == schema_markdown(), (
        "regenerate with: python -m rlm_core.store.schema_doc"
    )


def section(name: str) -> str:
    return README.split(f"<!-- {name}:start -->\n")[1].split(f"\n<!-- {name}:end -->")[0]


def test_readme_config_table_is_the_config_metadata() -> None:
    assert section("config") == config_table(), (
        "regenerate with: python -c 'from rlm_core.config import readme_table as t; print(t())'"
    )
    for field in dataclasses.fields(RLMConfig):
        assert f"| `{field.name}` |" in README, field.name


def test_readme_node_metadata_table_is_the_declared_metadata() -> None:
    assert section("meta") == meta_table(), (
        "regenerate with: python -c 'from rlm_core.meta import readme_table as t; print(t())'"
    )


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/test.sh" in README
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "pip install -r requirements.txt && streamlit run app.py" in README
