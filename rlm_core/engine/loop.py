"""The RLM loop (Algorithm 1 of the paper), readable top to bottom.

One RLM (the root, or a child started by `rlm_query`) with its own REPL: the root model writes
code, the REPL runs it, the truncated output goes back, until FINAL. Recording is the
Recorder's job (recorder.py), sub-calls are SubCalls' (subcalls.py); this file only sequences.
"""

from __future__ import annotations

from typing import Any

from rlm_core.engine import fits, guesses, prompts
from rlm_core.engine.parsing import TextFinal, answer_in, code_blocks, text_final
from rlm_core.engine.positions import Pieces
from rlm_core.engine.recorder import Recorder
from rlm_core.engine.subcalls import SubCalls
from rlm_core.errors import LimitExceeded
from rlm_core.repl.sandbox import Repl
from rlm_core.types import Node

PARTIAL_ANSWER_NAMES = ("answer", "final_answer", "result")


class RLMLoop:
    """Algorithm 1 over one Recorder. `note` is added to the system prompt and `subcalls=False`
    disables the sub-call functions (the ablation without sub-calls)."""

    def __init__(self, rec: Recorder, *, note: str = "", subcalls: bool = True) -> None:
        self.rec, self.note = rec, note
        self.calls = SubCalls(rec, self._child, allowed=subcalls)
        self._last_lm: Node | None = None
        self._took_back: dict[str, int] = {}
        """For the next root call's node: the messages taken back and the engine's turn."""

    def run(self) -> str | None:
        """Run to FINAL and return the answer; limits and cancellation raise."""
        rec, repls = self.rec, list[Repl]()

        def body() -> str | None:
            # started once the run node is journaled: a kill while the sandbox starts (its
            # first start probes the machine) leaves an interrupted run, a failure an error
            repls.append(rec.run.repl(rec.context_ref, self.calls.handle))
            rec.node.meta["isolation"] = repls[0].isolation
            return self._loop(repls[0])

        try:
            return rec.recorded(body, lambda: self._partial_answer(repls[0]) if repls else None)
        finally:
            for repl in repls:
                repl.close()

    def _loop(self, repl: Repl) -> str | None:
        rec, cfg = self.rec, self.rec.run.config
        name = rec.node.meta["prompt"]
        window = fits.window_of(cfg.sub_model, cfg)
        self.calls.windows[cfg.sub_model] = window
        small = name == prompts.SMALL_PROMPT_NAME
        own = fits.window_of(rec.model.name, cfg) or (fits.SMALL_MODEL_WINDOW if small else None)
        rec.output_chars = rec.run.output_chars or fits.output_chars(cfg.max_output_chars, own)
        rec.node.meta["output_chars"] = rec.output_chars
        system = prompts.system_prompt(rec.output_chars, window, name) + self.note
        messages = prompts.opening(rec.context, rec.question, system, name)
        sent, previous_blocks = 0, list[str]()
        streak = 0  # where the refused guesses since the last cell begin in `messages`
        evidence = guesses.Evidence(rec.question)
        for iteration in range(1, cfg.max_iterations + 1):
            rec.iterations = iteration
            response = self._ask_root(messages, sent, iteration)
            sent = len(messages)
            blocks = code_blocks(response)
            tag = None if blocks else text_final(response)
            # A small model answers an empty search, or output that never mentions what was
            # asked, with a made-up value, as text or as a cell holding only FINAL(<literal>);
            # that answer is refused (and recorded) so it searches again. Answers naming
            # variables or expressions come from the REPL, not from thin air.
            guess = self._guess(blocks, tag, evidence.defined) if small else None
            if guess is not None and (why := evidence.refuse(guess)) is not None:
                rec.node.meta.setdefault("refused_guesses", []).append(iteration)
                if evidence.stuck() and (search := evidence.search()) is not None:
                    # refused twice in a row: a small model copies the refusals it is shown, so
                    # they go (with any turn between them), and it is shown the search it was
                    # handed as a turn of its own
                    self._took_back = {"took_back": evidence.in_a_row, "engine_turn": streak}
                    del messages[streak:]
                    sent, self._last_lm = streak, None  # no longer a prefix of the next prompt
                    messages += self._search_for(repl, search, evidence, iteration)
                else:
                    streak = len(messages) if evidence.in_a_row == 1 else streak
                    messages += self._turn(response, [], why)
                continue
            if not blocks:
                if tag is not None:
                    return self._text_final(repl, tag, iteration)
                messages += self._turn(response, [], prompts.NO_CODE_FEEDBACK)
                continue
            blind_before = len(self.calls.blind)
            views = []
            for index, code in enumerate(blocks, 1):
                result, node = rec.cell(repl, code, iteration, index)
                if result.final is not None:
                    final = result.final
                    sources = rec.nodes_of(final.get("sources", []))
                    return rec.final(final["value"], final.get("var"), node, sources)
                views.append(node.model_view or "")
            shown = [prompts.cell_feedback(i, view) for i, view in enumerate(views, 1)]
            notes = []
            if evidence.saw(blocks, views) and small:
                notes.append(prompts.FOUND_NOTHING)
            if len(self.calls.blind) > blind_before:
                notes.append(guesses.BLIND_SUBCALL)
            if text_final(response):
                notes.append(prompts.IGNORED_TEXT_FINAL)
                rec.node.meta.setdefault("ignored_text_finals", []).append(iteration)
            if blocks == previous_blocks:  # small models loop on one cell otherwise
                again = small and guesses.repeated(rec.question, views)
                notes.append(again or prompts.REPEATED_CODE)
            previous_blocks = blocks
            messages += self._turn(response, shown, "\n".join(notes))
            rec.progress()
        # Out of turns: one last question, then the run ends as a limit with what it said.
        messages.append({"role": "user", "content": prompts.LAST_CHANCE})
        response = self._ask_root(messages, sent, cfg.max_iterations + 1)
        tag = text_final(response)
        partial = answer_in(response)
        if tag and tag.var:
            partial = self._quiet_value(repl, tag.var) or partial
        elif (
            small
            and (guess := self._guess([], tag, evidence.defined)) is not None
            and (why := evidence.last_chance(guess))
        ):
            # a value refused as a guess, or one no output ever showed, is no answer (larger
            # models are trusted with it, as with their answers in the loop)
            rec.node.meta["last_chance"] = {"reply": guess, "taken": False, "why": why}
            partial = prompts.NOT_FOUND
        raise LimitExceeded("max_iterations", f"{cfg.max_iterations} iterations used", partial)

    def _search_for(
        self, repl: Repl, code: str, evidence: guesses.Evidence, iteration: int
    ) -> list[dict[str, str]]:
        """Run the search a stuck small model was handed (recorded as run for it), as a turn."""
        _, node = self.rec.cell(repl, code, iteration, 1, {"ran_for_model": True})
        view = node.model_view or ""
        note = prompts.FOUND_NOTHING if evidence.saw([code], [view]) else ""
        turn = guesses.fenced(code)
        self.rec.last_response = turn  # the refused guess is no partial answer
        return self._turn(turn, [prompts.cell_feedback(1, view)], note)

    @staticmethod
    def _guess(blocks: list[str], tag: TextFinal | None, defined: set[str]) -> str | None:
        """The value a reply answers with when it is written out, not computed: a literal text
        FINAL (or words that only parse as an expression), or cells that are each nothing but
        FINAL(<literal>)."""
        if not blocks:
            if tag is None or tag.var is not None:
                return None
            value = tag.value or ""
            return value if tag.literal or guesses.words_not_code(value, defined) else None
        values = [guesses.literal_final(code) for code in blocks]
        return values[0] if all(v is not None for v in values) else None

    def _turn(self, response: str, shown: list[str], extra: str) -> list[dict[str, str]]:
        """The messages a turn adds: the root's reply, then what came of it."""
        return [
            {"role": "assistant", "content": response},
            {"role": "user", "content": self._feedback(shown, extra)},
        ]

    def _ask_root(self, messages: list[dict[str, str]], sent: int, iteration: int) -> str:
        meta: dict[str, Any] = {"iteration": iteration, "messages_before": sent, **self._took_back}
        self._took_back = {}
        if self._last_lm is not None and self._last_lm.tokens_in is not None:
            # every turn only appends, so this call starts with the last one's prompt and reply:
            # what a server's prefix cache can reuse (the rest it must read anew)
            meta["prefix_tokens"] = self._last_lm.tokens_in + (self._last_lm.tokens_out or 0)
        text, self._last_lm = self.rec.ask("lm", self.rec.model, messages, sent=sent, meta=meta)
        return text

    def _feedback(self, shown: list[str], extra: str) -> str:
        rec = self.rec
        variables = list(rec.last_variables)
        return prompts.turn_feedback(shown, rec.question, variables, extra, rec.node.meta["prompt"])

    def _text_final(self, repl: Repl, tag: TextFinal, iteration: int) -> str:
        """A FINAL written as text: an expression or a variable name is looked up in the REPL,
        as a cell of its own; a literal (or an expression the REPL cannot evaluate) is the
        answer as written."""
        rec = self.rec
        if tag.expression or tag.var is not None:
            code = f"FINAL_VAR({tag.var!r})" if tag.var else f"FINAL({tag.value})"
            result, node = rec.cell(repl, code, iteration, 0)
            node.meta["from_text_tag"] = True
            if result.final is not None:
                sources = rec.nodes_of(result.final.get("sources", []))
                return rec.final(result.final["value"], tag.var, node, sources)
            if tag.var is not None:
                missing = f"(FINAL_VAR named a variable that does not exist: {tag.var})"
                return rec.final(missing, tag.var, node, [])
        # no REPL value to follow: the results the text repeats verbatim are its sources
        value = tag.value or ""
        found = [
            n.node_id for n in rec.sub_nodes if len(out := n.output or "") >= 8 and out in value
        ]
        return rec.final(value, None, None, found)

    def _quiet_value(self, repl: Repl, name: str) -> str | None:
        """A variable's value read without tracing (used only to salvage a partial answer)."""
        try:
            result = repl.execute(f"print({name})", timeout_s=5)
        except Exception:  # a partial answer is a courtesy: a broken REPL must not hide the stop
            return None
        return result.stdout.strip() or None if not result.error else None

    def _partial_answer(self, repl: Repl) -> str | None:
        for name in PARTIAL_ANSWER_NAMES:
            if name in self.rec.last_variables:
                value = self._quiet_value(repl, name)
                if value:
                    return value
        return answer_in(self.rec.last_response)

    def _child(
        self, context: Any, question: str, node: Node, pieces: Pieces
    ) -> tuple[str | None, str]:
        """A child RLM at depth + 1 under `node`: its own REPL, its own root model; `pieces`
        are where its context sits in the original."""
        parent = self.rec
        child = Recorder(
            parent.run,
            context,
            question,
            depth=parent.depth + 1,
            parent=node.node_id,
            pieces=pieces,
        )
        try:
            return RLMLoop(child).run(), child.node.node_id
        except LimitExceeded as exc:
            if exc.limit != "max_iterations":
                raise
            return exc.partial_answer, child.node.node_id
