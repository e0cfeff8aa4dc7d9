"""The official `anthropic` SDK talking to ClawGate's Messages API (`/v1/messages`), as Claude
Code does with ANTHROPIC_BASE_URL.

Behind the gate: `claude`, a mock speaking Anthropic's own wire format (native_mocks.py), to
which Anthropic clients are passed through; and `oai`, an OpenAI-compatible mock, to which
they are translated. Each test checks what the SDK gets back and what the upstream received."""

import base64
import json
from pathlib import Path

import anthropic
import pytest

from conftest import Gate, Mock, TRANSLATED_TIMEOUTS, provider_yaml, tool_call_id
from native_mocks import Answer, NativeMock, Raw

WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
CLAUDE_CODE = Path(__file__).resolve().parents[1] / "fixtures" / "claude-code"


class Gateway:
    """A gate in front of `claude` (anthropic) and `oai` (openai-compat), with this fallback
    chain, and an Anthropic client pointed at it."""

    def __init__(self, tmp_path, chain, api_key=None):
        self.claude = NativeMock("anthropic", "claude")
        self.oai = Mock("oai")
        server = "server:\n  host: 127.0.0.1\n  port: 0\n"
        if api_key:
            server += f"  api_key: {api_key}\n"
        config = (
            server + "providers:\n"
            f"  claude:\n    backend: anthropic\n    base_url: \"{self.claude.base_url}\"\n"
            f"    api_key: anthropic-test-key\n    model: claude-sonnet-4-5\n    timeout: {TRANSLATED_TIMEOUTS}\n"
            + provider_yaml("oai", self.oai)
            + f"    max_tokens: 8000\nfallback_chain: [{', '.join(chain)}]\n"
        )
        self.gate = Gate(config, tmp_path)
        self.client = self.make_client(api_key or "sk-ant-local")

    def make_client(self, key):
        return anthropic.Anthropic(base_url=self.gate.url, api_key=key, max_retries=0, timeout=30)

    def stop(self):
        self.client.close()
        self.gate.stop()
        self.claude.stop()
        self.oai.stop()


@pytest.fixture
def translated(tmp_path):
    g = Gateway(tmp_path, ["oai"])
    yield g
    g.stop()


@pytest.fixture
def passed(tmp_path):
    g = Gateway(tmp_path, ["claude"])
    yield g
    g.stop()


@pytest.fixture
def both(tmp_path):
    g = Gateway(tmp_path, ["claude", "oai"])
    yield g
    g.stop()


def ask(client, stream, **kw):
    """One request through the SDK: the final Message, and the text streamed when streaming."""
    if not stream:
        return client.messages.create(**kw), None
    with client.messages.stream(**kw) as s:
        text = "".join(s.text_stream)
        return s.get_final_message(), text


# ---------------------------------------------------------------------------------------------
# Translated: an Anthropic client on an OpenAI-compatible backend


@pytest.mark.parametrize("stream", [False, True])
def test_a_message_to_an_openai_backend_comes_back_as_an_anthropic_message(translated, stream):
    msg, text = ask(translated.client, stream, model="claude-opus-5-5", max_tokens=64000,
                    system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                    messages=[{"role": "user", "content": "Say hello"}],
                    temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["END"], metadata={"user_id": "u-7"})
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.id.startswith("msg_")
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from oai"
    assert msg.stop_reason == "end_turn"
    assert msg.model == "upstream-oai"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (10, 3)
    if stream:
        assert text == "Hello from oai"
    sent = translated.oai.received[-1]
    assert sent["path"] == "/v1/chat/completions"
    body = sent["body"]
    assert body["model"] == "upstream-oai"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    # Claude's limit is capped at the provider's own; top_k has no OpenAI field.
    assert body["max_tokens"] == 8000
    assert (body["temperature"], body["top_p"], body["stop"], body["user"]) == (0.2, 0.9, ["END"], "u-7")
    assert "top_k" not in body
    assert bool(body.get("stream")) == stream


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_use_round_trip_through_an_openai_backend(translated, stream):
    translated.oai.script.put(("tools", [("get_weather", {"city": "Paris"})]))
    question = [{"role": "user", "content": "Weather in Paris?"}]
    msg, _ = ask(translated.client, stream, model="auto", max_tokens=100, tools=[WEATHER], messages=question,
                 tool_choice={"type": "any"})
    assert msg.stop_reason == "tool_use"
    [call] = [b for b in msg.content if b.type == "tool_use"]
    # The OpenAI id, made valid for the Messages API (`:` is not allowed).
    assert call.id == tool_call_id(0).replace(":", "_")
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    first = translated.oai.received[-1]["body"]
    assert first["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city", "parameters": WEATHER["input_schema"]}}]
    assert first["tool_choice"] == "required"

    history = question + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21 °C, clear"}]},
    ]
    msg, _ = ask(translated.client, stream, model="auto", max_tokens=100, tools=[WEATHER], messages=history)
    assert msg.content[0].text == "Hello from oai"
    second = translated.oai.received[-1]["body"]["messages"]
    assert second[1]["role"] == "assistant"
    assert second[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(second[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert second[2] == {"role": "tool", "content": "21 °C, clear", "tool_call_id": call.id}


def test_a_streamed_tool_use_arrives_as_input_json_deltas(translated):
    translated.oai.script.put(("tools", [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]))
    kinds = []
    with translated.client.messages.stream(model="oai", max_tokens=100, tools=[WEATHER],
                                           messages=[{"role": "user", "content": "Paris and Oslo?"}]) as s:
        for event in s:
            if event.type == "content_block_delta":
                kinds.append(event.delta.type)
        msg = s.get_final_message()
    assert set(kinds) == {"input_json_delta"}
    assert [b.input for b in msg.content] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert msg.usage.output_tokens == 5


def test_an_image_goes_to_an_openai_backend_as_a_data_url(translated):
    translated.client.messages.create(model="oai", max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is this?"}]}])
    parts = translated.oai.received[-1]["body"]["messages"][0]["content"]
    assert parts == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is this?"},
    ]


def test_count_tokens_estimates_the_prompt(translated):
    small = translated.client.messages.count_tokens(model="auto", messages=[{"role": "user", "content": "hi"}])
    big = translated.client.messages.count_tokens(model="auto", system="x" * 4000, tools=[WEATHER],
                                                  messages=[{"role": "user", "content": "hi " * 400}])
    assert 1 <= small.input_tokens < big.input_tokens
    assert 1000 < big.input_tokens < 3000
    assert translated.oai.received == []


# ---------------------------------------------------------------------------------------------
# Passed through: an Anthropic client on an `anthropic` backend


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_backend_gets_the_request_as_sent_with_its_betas(passed, stream):
    passed.claude.script.put(Answer(text=("Hello", " there")))
    thinking = {"type": "enabled", "budget_tokens": 1024}
    msg, text = ask(passed.client.beta, stream, model="claude-opus-5-5", max_tokens=2048, thinking=thinking,
                    system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                    messages=[{"role": "user", "content": "Say hello"}], betas=["interleaved-thinking-2025-05-14"])
    assert msg.content[0].text == "Hello there"
    assert msg.model == "claude-sonnet-4-5"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (21, 7)
    sent = passed.claude.last()
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["x-api-key"] == "anthropic-test-key"
    assert sent["body"]["model"] == "claude-sonnet-4-5"
    assert sent["body"]["thinking"] == thinking
    assert sent["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_a_streamed_tool_use_passes_through(passed):
    passed.claude.script.put(Answer(text=("Checking.",), calls=(("get_weather", {"city": "Paris"}),)))
    with passed.client.messages.stream(model="claude", max_tokens=100, tools=[WEATHER],
                                       messages=[{"role": "user", "content": "Weather?"}]) as s:
        msg = s.get_final_message()
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[1].input == {"city": "Paris"}
    assert msg.content[1].id == "toolu_01Mock0000abcdef"
    assert passed.claude.last()["body"]["tools"] == [WEATHER]


def test_claude_codes_request_passes_through_and_falls_back_to_an_openai_backend(both):
    recorded = json.loads((CLAUDE_CODE / "tool-turn-2-tool-result.json").read_text())
    body = recorded["body"]
    headers = {k: v for k, v in recorded["headers"].items() if k.startswith("anthropic-") or k.startswith("x-")}
    headers.pop("x-api-key")
    both.claude.script.put(Raw(529, "anthropic/error-529-overloaded.json"))
    rest = {k: v for k, v in body.items() if k not in ("model", "max_tokens", "messages", "stream")}
    raw = both.client.messages.with_raw_response.create(
        model=body["model"], max_tokens=body["max_tokens"], messages=body["messages"], stream=True,
        extra_body=rest, extra_headers=headers)
    assert raw.headers["x-clawgate-attempts"] == "claude,oai"
    events = list(raw.parse())
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-1].type == "message_stop"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "Hello from oai"
    # The first try got the recorded request with only the model replaced.
    sent = both.claude.received[0]["body"]
    assert sent == {**body, "model": "claude-sonnet-4-5"}
    assert both.claude.received[0]["headers"]["anthropic-beta"] == recorded["headers"]["anthropic-beta"]


# ---------------------------------------------------------------------------------------------
# Errors: each raises the SDK's own exception


def test_errors_raise_the_sdks_own_exceptions(tmp_path):
    g = Gateway(tmp_path, ["oai"], api_key="gate-key")
    try:
        ok = dict(model="oai", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.AuthenticationError) as e:
            g.make_client("wrong-key").messages.create(**ok)
        assert e.value.body["error"]["type"] == "authentication_error"
        with pytest.raises(anthropic.BadRequestError) as e:
            g.client.messages.create(model="oai", max_tokens=10,
                                     messages=[{"role": "user", "content": [{"type": "hologram"}]}])
        assert "messages.0.content.0.type" in e.value.message
        g.oai.script.put(("status", 429, {"error": {"message": "slow down"}}))
        with pytest.raises(anthropic.RateLimitError):
            g.client.messages.create(**ok)
        g.oai.script.put(("status", 500, {"error": {"message": "boom"}}))
        with pytest.raises(anthropic.InternalServerError) as e:
            g.client.messages.create(**ok)
        assert e.value.status_code == 500
        g.oai.script.put(("status", 503, {"error": {"message": "overloaded"}}))
        with pytest.raises(anthropic.OverloadedError):
            g.client.messages.create(**ok)
        g.oai.script.put(("status", 400, {"error": {"message": "bad max_tokens", "type": "invalid_request_error"}}))
        with pytest.raises(anthropic.BadRequestError) as e:
            g.client.messages.create(**ok)
        assert e.value.body == {"type": "error", "error": {"type": "invalid_request_error", "message": "bad max_tokens"}}
    finally:
        g.stop()


def test_an_anthropic_overload_raises_overloaded_and_a_midstream_error_raises(passed):
    passed.claude.script.put(Raw(529, "anthropic/error-529-overloaded.json"))
    with pytest.raises(anthropic.OverloadedError):
        passed.client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    passed.claude.script.put(Raw(200, "anthropic/stream-error-midway.sse", "text/event-stream"))
    with pytest.raises(anthropic.APIStatusError) as e:
        with passed.client.messages.stream(model="claude", max_tokens=10,
                                           messages=[{"role": "user", "content": "hi"}]) as s:
            for _ in s:
                pass
    assert e.value.body["error"]["type"] == "overloaded_error"


def test_models_are_listed_in_anthropics_shape(translated):
    page = translated.client.models.list()
    assert [m.id for m in page.data] == ["auto", "claude", "oai"]
    assert all(m.type == "model" for m in page.data)
