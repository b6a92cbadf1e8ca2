"""Where a served model's time goes: each root call records how much of its prompt it shares
with the previous call (what a prefix cache can reuse) and what the server says it cached; the
Explorer shows it, and which prompt ran."""

from __future__ import annotations

import itertools
from typing import Any

from conftest import explorer_page, repl, stored
from fake_openai import FakeReply

from rlm_core.analysis.timing import prompt_line, where_time_went


def test_root_calls_record_the_prefix_they_share_and_what_the_server_cached(
    fake: Any, fresh_app: None
) -> None:
    usage = {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920}
    cached = FakeReply(
        repl("print(1)"), usage={**usage, "prompt_tokens_details": {"cached_tokens": 850}}
    )
    result, server, _ = fake([repl("print(1)"), cached, repl("FINAL('x')")])
    nodes = stored(result.run_id)[1]
    lms = [n for n in nodes if n.kind == "lm"]
    first, second, third = lms
    assert "prefix_tokens" not in first.meta
    assert second.meta["prefix_tokens"] == first.tokens_in + first.tokens_out
    assert second.meta["cached_tokens"] == 850
    assert third.meta["prefix_tokens"] == 920
    line = prompt_line(second) or ""
    assert "900 tokens" in line and "850 served from the provider's cache" in line
    # the system prompt comes first and every turn only appends: a prefix cache can reuse it
    sent = [r["messages"] for r in server.requests if r["model"] == "root"]
    assert all(b[: len(a)] == a for a, b in itertools.pairwise(sent))
    totals = where_time_went(nodes)
    assert totals["root calls"] == 3 and totals["cached (reported)"] == 850
    shared = sum(min(n.meta.get("prefix_tokens", 0), n.tokens_in) for n in lms)
    assert totals["of which new"] == totals["root prompt tokens"] - shared
    page = explorer_page(run=result.run_id)
    assert not page.exception
    assert any("prompt: rlm-v1" in t.value for t in page.caption)
