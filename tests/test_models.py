"""LiteLLMClient over real HTTP against the fake OpenAI-compatible server: results, cost, faults."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fake_openai import FakeOpenAIServer, FakeReply, Responder, ScriptedResponder, by_model

from rlm_core.errors import ModelError
from rlm_core.models.facts import context_window, price_per_token
from rlm_core.models.litellm_client import LiteLLMClient, load_litellm
from rlm_core.models.model import Model
from rlm_core.models.resolve import model_for
from rlm_core.types import Completion

KEY = "sk-test-SECRET0123456789abcdef"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the tests, please."},
]

ServerFactory = Callable[..., FakeOpenAIServer]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    servers: list[FakeOpenAIServer] = []

    def start(responder: Responder | str = "ok") -> FakeOpenAIServer:
        srv = FakeOpenAIServer(responder)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


class Client:
    """Each model name bound as the engine binds it (models.resolve), with these options."""

    def __init__(self, options: dict) -> None:
        self.options = options

    def model(self, name: str) -> Model:
        if name.startswith("demo/"):
            return model_for(name, api_base=self.options.get("api_base"), api_key=KEY)
        return LiteLLMClient(name, **self.options)

    def complete(self, name: str, messages: list[dict[str, str]], **kwargs: object) -> Completion:
        return self.model(name).complete(messages, **kwargs)  # type: ignore[arg-type]


def client_for(srv: FakeOpenAIServer | None, **kwargs: object) -> Client:
    options: dict = {"api_key": KEY, "backoff_s": 0.01, "retries": 3, "timeout_s": 30.0}
    options.update(kwargs)
    if srv is not None:
        options.setdefault("api_base", srv.base_url)
    return Client(options)


def fail(client: Client, model: str = "openai/whatever", **kwargs: object) -> str:
    with pytest.raises(ModelError) as info:
        client.complete(model, MESSAGES, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert KEY not in message and "SECRET" not in message
    return message


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_plain_completion(serve: ServerFactory) -> None:
    srv = serve("Hello, tests!")
    client = client_for(srv, temperature=0.2)
    result = client.complete("openai/whatever", MESSAGES, max_output_tokens=50)
    assert result.text == "Hello, tests!"
    assert result.model == "openai/whatever"
    chars = sum(len(m["content"]) for m in MESSAGES)
    assert (result.tokens_in, result.tokens_out) == (chars // 4 + 1, len("Hello, tests!") // 4 + 1)
    assert result.finish_reason == "stop"
    assert 0 < result.latency_s < 10
    [body] = srv.requests
    assert body["model"] == "whatever"
    assert body["messages"] == MESSAGES
    assert body["max_tokens"] == 50 and body["temperature"] == 0.2
    assert srv.request_headers[0].get("Authorization") == f"Bearer {KEY}"


def test_known_price_model_cost_comes_from_the_table(serve: ServerFactory) -> None:
    srv = serve(
        lambda body: FakeReply("priced", usage={"prompt_tokens": 1000, "completion_tokens": 500})
    )
    result = client_for(srv).complete("openai/gpt-4o-mini", MESSAGES)
    cost_in, cost_out = load_litellm().cost_per_token(
        model="openai/gpt-4o-mini", prompt_tokens=1000, completion_tokens=500
    )
    assert result.cost_usd is not None and result.cost_usd > 0
    assert result.cost_usd == pytest.approx(cost_in + cost_out)
    prices = price_per_token("openai/gpt-4o-mini")
    assert prices is not None and prices[0] > 0 and prices[1] > 0
    assert context_window("openai/gpt-4o-mini") == 128_000


def test_unknown_model_cost_is_none_not_zero(serve: ServerFactory) -> None:
    result = client_for(serve("hi")).complete("openai/whatever", MESSAGES)
    assert result.cost_usd is None
    assert price_per_token("openai/whatever") is None
    assert context_window("openai/whatever") is None
    # Neither helper may raise, whatever it is given.
    for model in ("nosuch/model", "", "ollama_chat/not-a-model", "demo"):
        assert price_per_token(model) is None
        assert context_window(model) is None


def test_provider_reported_cost_wins(serve: ServerFactory) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "cost": 0.0123}
    srv = serve(lambda body: FakeReply("x", usage=usage))
    assert client_for(srv).complete("openai/whatever", MESSAGES).cost_usd == pytest.approx(0.0123)
    header = {"x-litellm-response-cost": "0.25"}
    srv2 = serve(lambda body: FakeReply("x", headers=header))
    assert client_for(srv2).complete("openai/gpt-4o-mini", MESSAGES).cost_usd == pytest.approx(0.25)


def test_rate_limit_honours_retry_after(serve: ServerFactory) -> None:
    limited = FakeReply("slow down", status=429, headers={"Retry-After": "1"})
    srv = serve(ScriptedResponder([limited, "made it"]))
    started = time.monotonic()
    result = client_for(srv).complete("openai/whatever", MESSAGES)
    waited = time.monotonic() - started
    assert result.text == "made it"
    assert srv.request_count == 2
    assert 0.9 <= waited < 5


def test_rate_limit_gives_up_after_retries(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply("quota exceeded", status=429))
    message = fail(client_for(srv, retries=2))
    assert srv.request_count == 3
    assert message.startswith("Rate limited for openai/whatever (HTTP 429) after 2 retries")


def test_server_error_is_retried_then_reported(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply("the backend fell over", status=500))
    message = fail(client_for(srv, retries=3))
    assert srv.request_count == 4
    assert message.startswith("The provider returned an error for openai/whatever after 3 retries")
    assert "HTTP 500" in message and "the backend fell over" in message


def test_server_error_then_success(serve: ServerFactory) -> None:
    srv = serve(ScriptedResponder([FakeReply(status=503), FakeReply(status=502), "fine"]))
    assert client_for(srv).complete("openai/whatever", MESSAGES).text == "fine"
    assert srv.request_count == 3


def test_auth_error_is_not_retried(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply(f"Incorrect API key provided: {KEY}", status=401))
    message = fail(client_for(srv))
    assert srv.request_count == 1
    assert message == "Authentication failed for openai/whatever: check the API key (HTTP 401)."


@pytest.mark.parametrize("status", [400, 404])
def test_client_errors_are_not_retried(serve: ServerFactory, status: int) -> None:
    srv = serve(lambda body: FakeReply(f"nope, key={KEY}", status=status))
    message = fail(client_for(srv))
    assert srv.request_count == 1
    assert f"openai/whatever (HTTP {status})" in message


def test_connection_refused(serve: ServerFactory) -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1"
    message = fail(client_for(None, api_base=base, retries=1), model="openai/x")
    assert message == f"Cannot reach {base} for openai/x after 1 retry: connection refused."


def test_malformed_json_is_an_error(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply(raw_body="{not json"))
    message = fail(client_for(srv, retries=1))
    assert srv.request_count == 2
    assert "malformed response for openai/whatever" in message


def test_empty_choices_is_an_error(serve: ServerFactory) -> None:
    empty = '{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}'
    srv = serve(lambda body: FakeReply(raw_body=empty))
    message = fail(client_for(srv, retries=1))
    assert srv.request_count == 2
    assert "no choices" in message


def test_null_content_becomes_empty_text(serve: ServerFactory) -> None:
    choice = (
        '{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "stop"}'
    )
    head = '"id": "x", "object": "chat.completion", "created": 0, "model": "m"'
    body = f'{{{head}, "choices": [{choice}]}}'
    result = client_for(serve(lambda _: FakeReply(raw_body=body))).complete("openai/m", MESSAGES)
    assert result.text == ""


def test_finish_reason_length_is_kept(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply("cut off mid", finish_reason="length"))
    result = client_for(srv).complete("openai/whatever", MESSAGES)
    assert (result.text, result.finish_reason) == ("cut off mid", "length")


def test_unknown_provider(serve: ServerFactory) -> None:
    srv = serve("never asked")
    message = fail(client_for(srv), model="nosuch/model")
    assert message.startswith("Unknown model 'nosuch/model': litellm does not know this provider.")
    assert srv.request_count == 0


def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    message = fail(client_for(None, api_key=None), model="anthropic/claude-sonnet-4-5")
    assert message.startswith(
        "Missing API key for anthropic/claude-sonnet-4-5: set ANTHROPIC_API_KEY"
    )


def test_hung_server_times_out(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply(hang=True))
    started = time.monotonic()
    message = fail(client_for(srv, retries=1, timeout_s=1))
    assert time.monotonic() - started < 6
    assert message == "No answer from openai/whatever within 1 s after 1 retry."
    assert srv.request_count == 2


def test_calls_run_concurrently(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply(f"echo {body['messages'][-1]['content']}", delay_s=0.5))
    client = client_for(srv)
    client.complete("openai/whatever", MESSAGES)  # first call pays litellm's one-off set-up
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(16)]
        results = list(pool.map(lambda m: client.complete("openai/whatever", m), prompts))
    assert time.monotonic() - started < 1.5
    assert [r.text for r in results] == [f"echo q{i}" for i in range(16)]


def test_by_model_routes_on_the_served_name(serve: ServerFactory) -> None:
    srv = serve(by_model({"a": lambda body: "from a", "b": lambda body: "from b"}))
    client = client_for(srv)
    assert client.complete("openai/b", MESSAGES).text == "from b"
    assert client.complete("openai/a", MESSAGES).text == "from a"
    assert "(HTTP 404)" in fail(client, model="openai/c")


def test_demo_models_never_get_the_api_base_or_key(serve: ServerFactory) -> None:
    srv = serve("should not be asked")
    result = client_for(srv).complete("demo/sub", [{"role": "user", "content": "hi"}])
    assert result.model == "demo/sub"
    assert srv.request_count == 0


def test_fake_server_closes_with_requests_still_hanging(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply(hang=True))
    client = client_for(srv, retries=0, timeout_s=30)
    pool = ThreadPoolExecutor(4)
    futures = [pool.submit(client.complete, "openai/x", MESSAGES) for _ in range(4)]
    deadline = time.monotonic() + 10
    while srv.request_count < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    srv.close()
    assert time.monotonic() - started < 2
    for future in futures:
        with pytest.raises(ModelError):
            future.result(timeout=10)
    pool.shutdown()


def test_fake_server_overlaps_64_requests(serve: ServerFactory) -> None:
    srv = serve(lambda body: FakeReply("late", delay_s=0.5))
    data = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()

    def post(_: int) -> str:
        request = urllib.request.Request(
            f"{srv.base_url}/chat/completions", data, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.load(response)["choices"][0]["message"]["content"])

    started = time.monotonic()
    with ThreadPoolExecutor(64) as pool:
        assert list(pool.map(post, range(64))) == ["late"] * 64
    assert time.monotonic() - started < 3
    assert srv.request_count == 64
