"""Inputs for RLMConfig fields built from the fields' metadata (label, bounds, default, help): the
limit and sampling forms of the Run page, the Evaluate page and the Fork panel all come from
here, so they offer the same settings with the same defaults as the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from rlm_core.config import Setting, settings

NONE = " (0 = none)"
"""Added to the label of an optional limit: a number input has no empty state, so 0 stands
for "no limit"."""


def setting(name: str) -> Setting:
    return next(s for s in settings() if s.name == name)


def limit_inputs(
    key: str, values: Mapping[str, Any] | None = None, columns: int = 3
) -> dict[str, Any]:
    """A number input per limit, `columns` to a row, starting from `values` (a recorded config)
    or the defaults; returns {field: value}, None for an optional limit left at 0."""
    cols = st.columns(columns)  # narrow columns would wrap every label onto three lines
    out: dict[str, Any] = {}
    for i, spec in enumerate(settings("limit")):
        start = (values or {}).get(spec.name, spec.default)
        with cols[i % columns]:
            out[spec.name] = _number(spec, start, f"{key}_{spec.name}")
    return out


def _number(spec: Setting, start: Any, key: str) -> int | float | None:
    low = 0 if spec.optional else spec.low or 0
    high = spec.high
    try:
        value = float(start) if start is not None else 0.0
    except (TypeError, ValueError):  # a recorded config of an imported trace may hold anything
        value = float(spec.default or 0)
    value = min(max(value, low), high if high is not None else value)
    label = spec.label + (NONE if spec.optional else "")
    if spec.type is int:
        got: int | float = st.number_input(
            label,
            min_value=int(low),
            max_value=None if high is None else int(high),
            value=int(value),
            step=1,
            key=key,
            help=spec.help,
        )
    else:
        got = st.number_input(
            label,
            min_value=float(low),
            max_value=None if high is None else float(high),
            value=value,
            key=key,
            help=spec.help,
        )
    return None if spec.optional and not got else got


def choice_input(name: str, key: str) -> str:
    """A select box of a field's choices, at its default."""
    spec = setting(name)
    return str(
        st.selectbox(
            spec.label,
            spec.choices,
            index=spec.choices.index(spec.default),
            key=key,
            help=spec.help,
        )
    )


def sampling_inputs(key: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{"temperature": float | None, "seed": int | None}; empty means the provider's default.
    Both are recorded in the run's config, so a run can be repeated exactly."""
    left, right = st.columns(2)
    out: dict[str, Any] = {}
    for col, name, cast in ((left, "temperature", float), (right, "seed", int)):
        start = (values or {}).get(name)
        text = col.text_input(
            f"{setting(name).label} (empty: provider default)",
            "" if start is None else str(start),
            key=f"{key}_{name}",
            help=setting(name).help,
        ).strip()
        try:
            out[name] = cast(text) if text else None
        except ValueError:
            col.error(f"{setting(name).label} must be a number")
            out[name] = None
    return out
