"""Command-line flags built from RLMConfig's field metadata: one flag per field, with its help,
bounds and default; an unset flag leaves the field's default."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rlm_core.config import RLMConfig, Setting, settings


def add_settings(p: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per config field; unset flags leave the field's default (shown in --help)."""
    for s in settings():
        if s.secret or (names is not None and s.name not in names):
            continue  # keys come from the provider's environment variable, never a flag
        default = "none" if s.default is None else s.default
        p.add_argument(
            s.flag,
            type=_parse(s),
            choices=s.choices or None,
            metavar=_metavar(s),
            help=f"{s.help} (default: {default})",
        )


def _parse(s: Setting) -> Any:
    def parse(text: str) -> Any:
        if s.optional and text.lower() in ("none", ""):
            return None
        return s.type(text)

    parse.__name__ = s.type.__name__  # argparse names the type in its error message
    return parse


def _metavar(s: Setting) -> str | None:
    if s.choices:
        return None
    return {int: "N", float: "X"}.get(s.type, "TEXT")


def config_from(args: argparse.Namespace, **fixed: Any) -> RLMConfig:
    """The config the flags say; a field whose flag was not given keeps its default."""
    given = {
        s.name: getattr(args, s.name)
        for s in settings()
        if hasattr(args, s.name) and getattr(args, s.name) is not None
    }
    return RLMConfig(**{**given, **fixed})
