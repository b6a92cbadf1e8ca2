"""One-call baselines: the plain model with the document stuffed into its window (cut to fit,
and marked so), and RAG: BM25 picks the top-k chunks and one call answers from them."""

from __future__ import annotations

from typing import Any, ClassVar

from rlm_core.engine.spans import merge_spans
from rlm_core.models.facts import context_window, count_tokens, window_tokens
from rlm_core.strategies.base import OUTPUT_RESERVE_TOKENS, Baseline, with_marker

HEADER = "Question: {question}\nAnswer from the {what} below; reply with the answer only.\n\n"


def does_not_fit(model: str, document: str, question: str) -> str | None:
    """Why the whole document cannot go to the plain model uncut (None: it fits, or the window
    is unknown and only the provider can tell)."""
    window = context_window(model, load=True)
    if window is None:
        return None
    if len(document) > 8 * window:
        # no tokenizer packs 8 characters into a token: skip counting 100 M characters
        return f"about {len(document) // 4:,} tokens, the window is {window:,}"
    header = HEADER.format(question=question, what="document") + "Document:\n"
    needed = count_tokens(model, header + document, cap=window) + OUTPUT_RESERVE_TOKENS
    return f"about {needed:,} tokens needed, the window is {window:,}" if needed > window else None


class Plain(Baseline):
    """The whole context in one call; what does not fit the window is cut and reported."""

    strategy = "plain"
    defaults: ClassVar[dict[str, Any]] = {"window_tokens": None}

    def answer(self) -> str | None:
        model = self.root_model
        window, source = window_tokens(model, self.options["window_tokens"])
        header = HEADER.format(question=self.question, what="document") + "Document:\n"
        budget = window - OUTPUT_RESERVE_TOKENS - count_tokens(model, header)
        kept, dropped = self.fit_document(model, budget)
        assumed = " (assumed: the model's window is unknown)" if source == "assumed" else ""
        if dropped:
            self.note(
                f"The document was cut to fit the window of {window:,} tokens{assumed}: the last "
                f"{dropped:,} of {len(self.text):,} characters were never shown to the model."
            )
        else:
            self.note(f"The whole document fit in the window{assumed}.")
        self.rec.iterations = 1
        meta = {
            "iteration": 1,
            "window_tokens": window,
            "window_source": source,
            "truncated_chars": dropped,
            "document_chars": len(self.text),
        }
        messages = [{"role": "user", "content": header + with_marker(kept, dropped)}]
        text, node = self.ask("lm", messages, spans=self.spans(0, len(kept)), meta=meta)
        return self.final(text.strip(), node)


def chunk_bounds(text: str, size: int) -> list[tuple[int, int]]:
    """[start, end) chunks of about `size` chars, ending at a line or word break when one is near
    (a record or sentence cut in half retrieves badly)."""
    bounds, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            floor = start + size * 4 // 5
            brk = text.rfind("\n", floor, end)
            if brk < 0:
                brk = text.rfind(" ", floor, end)
            end = brk + 1 if brk >= 0 else end
        bounds.append((start, end))
        start = end
    return bounds


def bm25_top(chunks: list[str], query: str, k: int) -> list[tuple[int, float]]:
    """(chunk index, BM25 score) of the k best chunks, best first."""
    if not chunks:
        return []
    import bm25s  # lazily: it pulls in numpy

    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(chunks, stopwords="en", show_progress=False), show_progress=False
    )
    # the query as strings, not ids: ids from a second tokenize call use their own vocabulary
    words = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)
    docs, scores = retriever.retrieve(words, k=min(k, len(chunks)), show_progress=False)
    return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True)]


class Rag(Baseline):
    """Retrieval-augmented generation: the top-k BM25 chunks are all the model ever sees."""

    strategy = "rag"
    defaults: ClassVar[dict[str, Any]] = {"chunk_chars": 1000, "top_k": 5, "window_tokens": None}

    def answer(self) -> str | None:
        model = self.root_model
        size, k = max(100, int(self.options["chunk_chars"])), max(1, int(self.options["top_k"]))
        bounds = chunk_bounds(self.text, size)
        ranked = bm25_top([self.text[a:b] for a, b in bounds], self.question, k)
        window, _ = window_tokens(model, self.options["window_tokens"])
        header = HEADER.format(question=self.question, what="excerpts") + (
            "The excerpts were retrieved from a longer document by keyword search (BM25); the "
            "rest of the document is not shown.\n\n"
        )
        budget = window - OUTPUT_RESERVE_TOKENS - count_tokens(model, header)
        excerpts: list[str] = []
        used: list[dict[str, Any]] = []
        for rank, (index, score) in enumerate(ranked, 1):
            a, b = bounds[index]
            piece = f"[excerpt {rank}, characters {a:,}-{b:,}]\n{self.text[a:b]}\n\n"
            if count_tokens(model, "".join(excerpts) + piece) > budget:
                break  # lower-ranked chunks that do not fit are dropped, and counted below
            excerpts.append(piece)
            used.append(
                {"rank": rank, "chunk": index, "score": round(score, 4), "start": a, "end": b}
            )
        spans = merge_spans([span for u in used for span in self.spans(u["start"], u["end"])])
        seen = sum(e - s for s, e in spans)
        self.note(
            f"BM25 retrieved {len(used)} of {len(bounds):,} chunks of about {size:,} characters; "
            f"the model saw {seen:,} of {len(self.text):,} characters "
            f"({seen / max(1, len(self.text)):.0%})."
        )
        self.rec.iterations = 1
        meta = {
            "iteration": 1,
            "chunks": len(bounds),
            "chunk_chars": size,
            "top_k": k,
            "retrieved": used,
            "dropped_for_window": len(ranked) - len(used),
        }
        messages = [{"role": "user", "content": header + "".join(excerpts).rstrip()}]
        text, node = self.ask("lm", messages, spans=spans, meta=meta)
        return self.final(text.strip(), node)
