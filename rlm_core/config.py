"""RLMConfig: every knob of a run in one frozen dataclass (limits, models, sandbox).

Each field carries its help text, its bounds and its group as metadata: the CLI flags, the
limit forms of the Run, Evaluate and Fork pages and the README's table are all built from it,
so there is one set of defaults. API keys are accepted so a run can use them, but
`to_public_dict` never includes them: that is the only form of the config written to traces,
logs or exports.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

MAX_DEPTH_ALLOWED = 5
Group = Literal["model", "limit", "engine"]
PROMPTS = ("auto", "full", "small")


def setting(
    default: Any,
    help: str,
    group: Group,
    *,
    label: str = "",
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """A field with what every front end needs to offer it: help, bounds, a label."""
    meta = {
        "help": help,
        "group": group,
        "label": label,
        "low": low,
        "high": high,
        "choices": choices,
        "secret": secret,
    }
    return dataclasses.field(default=default, repr=not secret, metadata=meta)


@dataclass(frozen=True)
class RLMConfig:
    root_model: str = setting("demo/root", "model that writes the REPL code", "model")
    sub_model: str = setting("demo/sub", "model behind `llm_query`", "model")
    child_root_model: str | None = setting(
        None,
        "root model of child RLMs (`None`: the sub model; under a `demo/recursive` root, "
        "`demo/recursive`, so the demo recurses to max depth)",
        "model",
    )
    api_base: str | None = setting(None, "base URL of an OpenAI-compatible server", "model")
    api_key: str | None = setting(
        None, "key for the provider, in memory only", "model", secret=True
    )
    prompt: str = setting(
        "auto",
        "root system prompt: `full`, `small` (short, with worked examples, for models up to "
        "8 B parameters), or `auto`: by the size the model's server reports, else a size in "
        "its name, else `small` for GGUF runtimes on your machine (`local/`, Ollama, llama.cpp, "
        "LM Studio), else `full`; the run node records which and why",
        "model",
        choices=PROMPTS,
    )
    temperature: float | None = setting(
        None, "sampling temperature (`None`: provider default)", "model", low=0.0, high=2.0
    )
    seed: int | None = setting(
        None,
        "sampling seed sent with every model call, so a run can be repeated (`None`: none; "
        "honoured by llama.cpp, `local/`, vLLM, Ollama, OpenAI)",
        "model",
        low=0,
        high=2**31 - 1,
    )
    max_iterations: int = setting(
        30,
        "root turns per RLM; then it is asked once more for an answer",
        "limit",
        label="Max iterations",
        low=1,
        high=1000,
    )
    max_depth: int = setting(
        1,
        "deepest level that may still start a child RLM (0–5); deeper `rlm_query` falls "
        "back to `llm_query`",
        "limit",
        label="Max depth",
        low=0,
        high=MAX_DEPTH_ALLOWED,
    )
    max_llm_calls: int | None = setting(
        None,
        "model calls in the whole run tree",
        "limit",
        label="Max model calls",
        low=1,
        high=10_000_000,
    )
    max_tokens: int | None = setting(
        None,
        "input + output tokens in the whole run tree, reserved before each call (answers are "
        "capped to fit)",
        "limit",
        label="Max tokens",
        low=1,
        high=10**12,
    )
    max_cost_usd: float | None = setting(
        None,
        "spend in the whole run tree, reserved before each call; every model of the run needs "
        "a known price",
        "limit",
        label="Max cost in USD",
        low=0.0001,
        high=100_000.0,
    )
    timeout_s: float | None = setting(
        None,
        "wall clock of the whole run",
        "limit",
        label="Run timeout in s",
        low=0.1,
        high=7 * 86_400.0,
    )
    cell_timeout_s: float = setting(
        60.0,
        "compute time of one code cell: CPU time of the REPL worker's processes (every "
        "thread), or wall time not spent waiting for models, whichever reaches it first",
        "limit",
        label="Cell timeout in s",
        low=0.1,
        high=86_400.0,
    )
    max_output_chars: int = setting(
        20_000,
        "output of each cell shown to the root, with a `+N more chars` marker (at most an "
        "eighth of the root's window when it is known)",
        "engine",
        low=100,
        high=10_000_000,
    )
    concurrency: int = setting(
        16, "sub-calls running at once in the batched functions", "engine", low=1, high=1024
    )
    worker_memory_mb: int | None = setting(
        None,
        "address-space limit of the REPL worker (`None`: 4× context + 1 GB)",
        "engine",
        low=64,
        high=1_048_576,
    )
    retries: int = setting(
        3,
        "retries after rate limits, timeouts and server errors (with backoff)",
        "engine",
        low=0,
        high=20,
    )
    request_timeout_s: float = setting(
        600.0, "timeout of one model request", "engine", low=1.0, high=86_400.0
    )

    def __post_init__(self) -> None:
        for spec in settings():
            value = getattr(self, spec.name)
            if value is None:
                if not spec.optional:
                    raise ValueError(f"{spec.name} must be set")
                continue
            if spec.choices and value not in spec.choices:
                raise ValueError(f"{spec.name} must be one of {', '.join(spec.choices)}")
            if spec.low is not None and value < spec.low:
                raise ValueError(f"{spec.name} must be at least {spec.low:g}")
            if spec.high is not None and value > spec.high:
                raise ValueError(f"{spec.name} must be at most {spec.high:g}")

    def with_(self, **changes: Any) -> RLMConfig:
        return replace(self, **changes)

    def to_public_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("api_key")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RLMConfig:
        """A config from a stored one (a run node's `config`): unknown keys are left out."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Setting:
    """One field of RLMConfig, as a front end offers it."""

    name: str
    type: type
    """int, float or str (the type inside `X | None`)."""
    optional: bool
    """None is allowed (and means: no limit / the default behaviour)."""
    default: Any
    help: str
    group: Group
    label: str
    low: float | None
    high: float | None
    choices: tuple[str, ...]
    secret: bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def settings(group: Group | None = None) -> list[Setting]:
    """RLMConfig's fields in order, with their metadata; `group` keeps one kind."""
    hints = typing.get_type_hints(RLMConfig)
    out = []
    for f in dataclasses.fields(RLMConfig):
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else ()
        base = next((a for a in args if a is not type(None)), hint)
        m = f.metadata
        out.append(
            Setting(
                f.name,
                base,
                type(None) in args,
                f.default,
                m["help"],
                m["group"],
                m["label"] or f.name.replace("_", " ").capitalize(),
                m["low"],
                m["high"],
                m["choices"],
                m["secret"],
            )
        )
    return [s for s in out if group is None or s.group == group]


def readme_table() -> str:
    """The README's configuration table, from the fields' metadata (a test keeps them equal)."""
    rows = ["| field | default | meaning |", "|---|---|---|"]
    for s in settings():
        default = "none" if s.default is None and s.group == "limit" else f"`{s.default}`"
        if isinstance(s.default, int | float) and not isinstance(s.default, bool):
            default = f"{s.default:g}" if isinstance(s.default, float) else str(s.default)
        rows.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(rows)
