"""Temperature and seed inputs, from RLMConfig's metadata: the Run and Evaluate forms and the
Fork panel offer them so a run can be repeated exactly (both are recorded in the run's config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from rlm_core.config import settings


def sampling_inputs(key: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{"temperature": float | None, "seed": int | None}; empty means the provider's default."""
    specs = {s.name: s for s in settings("model")}
    left, right = st.columns(2)
    out: dict[str, Any] = {}
    for col, name, cast in ((left, "temperature", float), (right, "seed", int)):
        start = (values or {}).get(name)
        text = col.text_input(
            f"{specs[name].label} (empty: provider default)",
            "" if start is None else str(start),
            key=f"{key}_{name}",
            help=specs[name].help,
        ).strip()
        try:
            out[name] = cast(text) if text else None
        except ValueError:
            col.error(f"{specs[name].label} must be a number")
            out[name] = None
    return out
