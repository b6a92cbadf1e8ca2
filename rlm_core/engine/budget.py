"""The tree-wide limits on calls, tokens and cost, held against code that tries to break them.

A call's tokens and cost are reserved before it is sent: its input counted with the model's
tokenizer, its answer capped (`max_output_tokens`) at what the limits leave. A batch reserves
for all of its calls before any is sent. What calls in flight hold cannot be spent twice, so
concurrent calls, batched or from threads, cannot overshoot together; a request that does not
fit waits while calls in flight may still give back what they did not use, and is refused (the
limit fires) once nothing is in flight.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rlm_core.config import RLMConfig
from rlm_core.errors import LimitExceeded, ModelError, RunCancelled, again
from rlm_core.models.facts import estimate_tokens, output_limit, price_per_token, token_bound
from rlm_core.types import Completion

Messages = list[dict[str, str]]
MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat format adds around each message (role, separators), as OpenAI documents."""
MIN_OUTPUT_TOKENS = 16
"""A call is sent only when its answer may have at least this many tokens."""
DEFAULT_OUTPUT_TOKENS = 8_192
"""The cap on one answer when a limit needs one and litellm does not know the model's own."""
WAIT_S = 0.2


@dataclass
class Usage:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False

    def add(self, c: Completion) -> None:
        self.tokens_in += c.tokens_in or 0
        self.tokens_out += c.tokens_out or 0
        if c.cost_usd is None:
            self.cost_unknown = True
        else:
            self.cost_usd += c.cost_usd

    @property
    def cost(self) -> float | None:
        """None when any call's cost was unknown (never counted as zero)."""
        return None if self.cost_unknown else self.cost_usd


@dataclass(frozen=True)
class Ticket:
    """What one call may use: held from before it is sent until its usage is known."""

    held: bool = False
    """Tokens and cost are held for it (a token or cost limit is set)."""
    input_tokens: int = 0
    tokens: int = 0
    """Input plus the answer's cap."""
    cost_usd: float = 0.0
    max_output_tokens: int | None = None
    """The cap the model is called with; None when no limit needs one."""
    price: tuple[float, float] = (0.0, 0.0)


def check_cost_limit(config: RLMConfig, models: Iterable[str] = ()) -> None:
    """A cost limit needs a price for every model the run may call (the config's, or the
    `models` an evaluation runs): refuse it up front."""
    if config.max_cost_usd is None:
        return
    names = models or (config.root_model, config.sub_model, config.child_root_model)
    unpriced = [m for m in dict.fromkeys(n for n in names if n) if price_per_token(m) is None]
    if unpriced:
        raise ModelError(
            f"max_cost_usd is set, but the price of {', '.join(unpriced)} is unknown (litellm's "
            "price table does not list it), so the cost limit could not hold: choose a priced "
            "model or remove the cost limit."
        )


LIVE_TOTALS_S = 0.5
"""How often, at most, a running run's totals are rewritten as its calls finish."""


@dataclass
class Budget:
    """The limits and what has been used of them; `reserve` before a call, `settle` after."""

    config: RLMConfig
    usage: Usage = field(default_factory=Usage)
    counted_tokens: int = 0
    """Tokens used, with estimates where the provider reported none (what the limit sees)."""
    counted_cost: float = 0.0
    held_tokens: int = 0
    held_cost: float = 0.0
    in_flight: int = 0
    calls_held: int = 0
    """Calls reserved and not yet sent: they count against max_llm_calls; `usage.calls` counts
    the calls that were sent (what the run shows as model calls, in flight ones included, so a
    run stopped mid-batch counts the calls it paid for)."""
    fired: LimitExceeded | None = None
    """The first refusal: every later request is refused too, so nothing runs past a limit."""
    on_usage: Callable[[], None] | None = None
    """Told of new usage at most every LIVE_TOTALS_S (the root rewrites its run node)."""
    _told: float = 0.0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def metered(self) -> bool:
        return self.config.max_tokens is not None or self.config.max_cost_usd is not None

    def reserve(
        self, model: str, calls: list[Messages], check: Callable[[], None] = lambda: None
    ) -> list[Ticket]:
        """Tickets for all `calls` to `model`, or LimitExceeded for all of them. `check` is the
        run's clock: a Stop or the run's timeout ends the wait for calls in flight."""
        self._reserve_calls(len(calls))
        if not self.metered:
            return [Ticket() for _ in calls]
        try:
            return self._hold(model, calls, check)
        except (LimitExceeded, RunCancelled):
            with self._cond:
                self.calls_held -= len(calls)  # refused calls are never made
            raise

    def _hold(self, model: str, calls: list[Messages], check: Callable[[], None]) -> list[Ticket]:
        price = self._price(model)
        cap = output_limit(model) or DEFAULT_OUTPUT_TOKENS
        # counted before taking the lock: a tokenizer pass can take a while
        inputs = [prompt_tokens(model, messages, self.config.max_tokens) for messages in calls]
        with self._cond:
            while True:
                if self.fired is not None:
                    raise again(self.fired)
                tickets, why = self._fit(inputs, price, cap)
                if tickets is not None:
                    self.held_tokens += sum(t.tokens for t in tickets)
                    self.held_cost += sum(t.cost_usd for t in tickets)
                    self.in_flight += len(tickets)
                    return tickets
                if not self.in_flight:
                    self.fired = why
                    raise why
                self._cond.wait(WAIT_S)  # calls in flight may give back what they did not use
                check()

    def sent(self) -> None:
        """A reserved call goes to the model: it is a call made from now on."""
        with self._cond:
            self.calls_held -= 1
            self.usage.calls += 1

    def settle(self, ticket: Ticket, done: Completion | None, *, sent: bool = True) -> None:
        """The call is over: give back its ticket and count what it used (`done` is None for a
        call that failed, which counts as a call only; one never `sent` counts for nothing)."""
        with self._cond:
            if not sent:
                self.calls_held -= 1
            if done is not None:
                self.usage.add(done)
                used_in = ticket.input_tokens if done.tokens_in is None else done.tokens_in
                used_out = (
                    estimate_tokens(done.text) if done.tokens_out is None else done.tokens_out
                )
                self.counted_tokens += used_in + used_out
                cost = done.cost_usd
                if cost is None:  # unreported: the table's price still counts against the limit
                    cost = ticket.price[0] * used_in + ticket.price[1] * used_out
                self.counted_cost += cost
            if ticket.held:
                self.held_tokens -= ticket.tokens
                self.held_cost -= ticket.cost_usd
                self.in_flight -= 1
                self._cond.notify_all()
            now = time.monotonic()
            tell = self.on_usage is not None and now - self._told >= LIVE_TOTALS_S
            if tell:
                self._told = now
        if tell and self.on_usage is not None:  # outside the lock: other calls go on meanwhile
            self.on_usage()

    def _reserve_calls(self, n: int) -> None:
        limit = self.config.max_llm_calls
        with self._cond:
            if self.fired is not None:
                raise again(self.fired)
            made = self.usage.calls + self.calls_held
            if limit is not None and made + n > limit:
                self.fired = LimitExceeded("max_llm_calls", f"{limit} model calls made")
                if made < limit:
                    self.fired = LimitExceeded(
                        "max_llm_calls",
                        f"a batch of {n} calls was refused: {limit - made} of "
                        f"max_llm_calls={limit} are left",
                    )
                raise self.fired
            self.calls_held += n

    def _price(self, model: str) -> tuple[float, float]:
        if self.config.max_cost_usd is None:
            return 0.0, 0.0
        price = price_per_token(model)
        if price is None:  # check_cost_limit refuses such runs; a model named later lands here
            raise LimitExceeded("max_cost_usd", f"the price of {model} is unknown")
        return price

    def _fit(
        self, inputs: list[int], price: tuple[float, float], cap: int
    ) -> tuple[list[Ticket] | None, LimitExceeded]:
        """Tickets when every call fits with an answer of at least MIN_OUTPUT_TOKENS; else the
        refusal that says what did not fit."""
        cfg, n, total = self.config, len(inputs), sum(inputs)
        what = "the prompt" if n == 1 else f"the batch of {n} prompts"
        out = float(cap)
        refusal = LimitExceeded("max_tokens")
        if cfg.max_tokens is not None:
            left = cfg.max_tokens - self.counted_tokens - self.held_tokens
            out = min(out, (left - total) / n)
            refusal = LimitExceeded(
                "max_tokens",
                f"{what} is about {total:,} tokens, plus at least {MIN_OUTPUT_TOKENS} per "
                f"answer; {max(left, 0):,} of max_tokens={cfg.max_tokens:,} are left",
            )
        if cfg.max_cost_usd is not None:
            left_usd = cfg.max_cost_usd - self.counted_cost - self.held_cost
            by_cost = (left_usd - price[0] * total) / (price[1] * n) if price[1] else math.inf
            if by_cost < out:
                out = by_cost
                least = price[0] * total + price[1] * MIN_OUTPUT_TOKENS * n
                refusal = LimitExceeded(
                    "max_cost_usd",
                    f"{what} would cost at least ${least:.4f}; ${max(left_usd, 0):.4f} of "
                    f"max_cost_usd=${cfg.max_cost_usd:g} is left",
                )
        if out < MIN_OUTPUT_TOKENS:
            return None, refusal
        answer = int(out)
        tickets = [
            Ticket(
                held=True,
                input_tokens=tokens,
                tokens=tokens + answer,
                cost_usd=price[0] * tokens + price[1] * answer,
                max_output_tokens=answer,
                price=price,
            )
            for tokens in inputs
        ]
        return tickets, refusal


def prompt_tokens(model: str, messages: Messages, room: int | None) -> int:
    """Input tokens of one call, never fewer than the model will count (see `token_bound`)."""
    text = "\n".join(str(m.get("content") or "") for m in messages)
    cap = None if room is None else max(room, 1)
    return token_bound(model, text, cap=cap) + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)
