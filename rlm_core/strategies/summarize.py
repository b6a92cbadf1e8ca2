"""Summarize until it fits (the paper's compaction baseline): split the document, summarize
every part with the sub model concurrently, repeat on the notes until they fit, then answer.

It always ends: each round must shrink the text by a fixed factor and the rounds are capped;
whatever is still too long after that is cut like the plain model's prompt, and reported.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from rlm_core.engine.provenance import spans_in
from rlm_core.models.facts import CHARS_PER_TOKEN, count_tokens, window_tokens
from rlm_core.models.scripted import NOT_FOUND
from rlm_core.strategies.base import OUTPUT_RESERVE_TOKENS, Baseline, fit, with_marker
from rlm_core.strategies.single import HEADER, chunk_bounds
from rlm_core.types import new_id

SHRINK = 0.8
"""A round must leave at most this fraction of its input, or the summarizing stops."""
SUMMARY_PROMPT = """\
Question: {question}
Summarize the text below for someone who must answer the question later without seeing it. \
Keep every fact, name and number that could matter for the question; drop the rest. If nothing \
in it matters, reply {none}.

Text (part {part} of {parts}, round {round}):
{text}"""


class Summarize(Baseline):
    """Notes of notes until they fit the root model's window; the answer comes from the notes."""

    strategy = "summarize"
    defaults: ClassVar[dict[str, Any]] = {
        "part_chars": None,
        "max_rounds": 4,
        "window_tokens": None,
    }

    def answer(self) -> str | None:
        root, sub = self.root_model, self.config.sub_model
        window, _ = window_tokens(root, self.options["window_tokens"])
        header = HEADER.format(question=self.question, what="notes") + (
            "The notes were written by summarizing a longer document part by part.\n\nNotes:\n"
        )
        budget = window - OUTPUT_RESERVE_TOKENS - count_tokens(root, header)
        part_chars = self.options["part_chars"] or self._part_chars(sub)
        max_rounds = max(1, int(self.options["max_rounds"]))
        text, rounds, calls, stop = self.text, 0, 0, "fits"
        while count_tokens(root, text) > budget:
            if rounds >= max_rounds:
                stop = "max_rounds"
                break
            rounds += 1
            self.rec.iterations = rounds
            bounds = chunk_bounds(text, max(200, int(part_chars)))
            notes = self._round(text, bounds, rounds)
            calls += len(bounds)
            kept_notes = [
                f"[notes on part {i}]\n{n.strip()}"
                for i, n in enumerate(notes, 1)
                if n.strip() and n.strip().upper() != NOT_FOUND
            ]
            shorter = "\n\n".join(kept_notes) or "(no part had anything relevant)"
            if len(shorter) > len(text) * SHRINK:
                stop = "did_not_shrink"
                text = min(shorter, text, key=len)
                break
            text = shorter
        kept = fit(root, text, budget - 40)
        dropped = len(text) - len(kept)
        self.rec.node.meta.update(summary_rounds=rounds, summary_stop=stop, truncated_chars=dropped)
        line = (
            f"{rounds} round(s) of summaries ({calls} sub-model calls) turned "
            f"{len(self.text):,} characters into {len(text):,}."
            if rounds
            else "The whole document fit in the window; nothing was summarized."
        )
        if dropped:
            line += f" The notes were still too long: {dropped:,} characters were cut."
        self.note(line)
        meta = {
            "iteration": rounds + 1,
            "rounds": rounds,
            "stop": stop,
            "truncated_chars": dropped,
            "window_tokens": window,
        }
        spans = spans_in(kept, self.run.index) if rounds else self.spans(0, len(kept))
        messages = [{"role": "user", "content": header + with_marker(kept, dropped)}]
        answer, node = self.ask("lm", messages, spans=spans, meta=meta)
        return self.final(answer.strip(), node)

    def _part_chars(self, sub: str) -> int:
        window, _ = window_tokens(sub, self.options["window_tokens"])
        # half the sub model's window: the prompt, and room for the notes it writes
        return max(1_000, (window - OUTPUT_RESERVE_TOKENS) * CHARS_PER_TOKEN // 2)

    def _round(self, text: str, bounds: list[tuple[int, int]], round_no: int) -> list[str]:
        """Every part summarized at once (like llm_query_batched), notes in document order."""
        batch, n = new_id(), len(bounds)
        self.rec.seqs.hold(batch, n)

        def one(i: int) -> str:
            a, b = bounds[i]
            prompt = SUMMARY_PROMPT.format(
                question=self.question,
                none=NOT_FOUND,
                part=i + 1,
                parts=n,
                round=round_no,
                text=text[a:b],
            )
            # round 1 reads the document itself; later rounds read notes, found verbatim or not
            spans = self.spans(a, b) if round_no == 1 else spans_in(text[a:b], self.run.index)
            meta = {
                "round": round_no,
                "part": i + 1,
                "batch": batch,
                "batch_index": i,
                "batch_size": n,
            }
            answer, _ = self.ask(
                "llm_query", [{"role": "user", "content": prompt}], spans=spans, meta=meta
            )
            return answer

        with ThreadPoolExecutor(min(n, self.config.concurrency)) as pool:
            return list(pool.map(one, range(n)))
