"""ClawGate driven by the official `openai` Python SDK, the reference client."""

import json
from pathlib import Path

import openai
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclaw"


def test_non_streaming_completion_arrives_intact(client, mocks):
    resp = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello"}])
    assert resp.choices[0].message.content == "Hello from alpha"
    assert resp.usage.total_tokens == 13
    assert mocks[0].received[0]["body"]["model"] == "upstream-alpha"


def test_streaming_completion_arrives_chunk_by_chunk(client):
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hello"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from alpha"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert sum(1 for c in chunks if c.choices) >= 4


def test_routing_headers_are_visible_to_the_sdk(client):
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hello"}])
    assert raw.headers["x-clawgate-provider"] == "alpha"
    assert raw.headers["x-clawgate-layer"] == "fallback"
    assert raw.headers["x-clawgate-rule"] == "no-match"
    raw = client.chat.completions.with_raw_response.create(model="beta", messages=[{"role": "user", "content": "hello"}], stream=True)
    assert raw.headers["x-clawgate-provider"] == "beta"
    assert raw.headers["x-clawgate-layer"] == "direct"
    assert raw.headers["x-clawgate-rule"] == "explicit-model"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "Hello from beta"


def test_a_failing_provider_is_invisible_to_the_client(client, mocks):
    mocks[0].script.put(("status", 429, {"error": {"message": "rate limited"}}))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content == "Hello from beta"
    assert raw.headers["x-clawgate-attempts"] == "alpha,beta"
    mocks[0].script.put(("status", 500, {}))
    stream = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from beta"


def test_extra_fields_and_tools_reach_the_upstream_untouched(client, mocks):
    tools = [{"type": "function", "function": {"name": "read", "description": "Read a file",
              "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
    client.chat.completions.create(
        model="auto",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "read a"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{\"path\": \"a\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "contents"},
        ],
        tools=tools, tool_choice="auto", response_format={"type": "json_object"},
        extra_body={"reasoning_effort": "high", "vendor_flag": [1, 2]},
    )
    sent = mocks[0].received[0]["body"]
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["reasoning_effort"] == "high"
    assert sent["vendor_flag"] == [1, 2]
    assert sent["messages"][1]["content"] is None


def test_a_real_openclaw_request_streams_through_the_sdk(client, mocks):
    body = json.loads((FIXTURES / "turn-local-main.json").read_text())["body"]
    stream = client.chat.completions.create(**body)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from alpha"
    sent = mocks[0].received[0]["body"]
    assert len(sent["tools"]) == len(body["tools"]) >= 11
    assert sent["messages"] == body["messages"]


def test_bad_requests_raise_bad_request_errors_with_the_param(client, mocks):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[])
    assert err.value.status_code == 400
    assert err.value.param == "messages"
    assert err.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[{"role": "wizard", "content": "x"}])
    assert err.value.param == "messages[0].role"
    assert mocks[0].received == []


def test_an_upstream_client_error_surfaces_as_is(client, mocks):
    mocks[0].script.put(("status", 400, {"error": {"message": "context too long", "type": "invalid_request_error", "param": None, "code": "context_length_exceeded"}}))
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "context_length_exceeded"
    assert mocks[1].received == []


def test_when_all_providers_fail_the_sdk_gets_a_502_naming_them(client, mocks):
    mocks[0].script.put(("status", 500, {"error": {"message": "down"}}))
    mocks[1].script.put(("status", 503, {}))
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502
    assert "alpha: HTTP 500" in err.value.message and "beta: HTTP 503" in err.value.message


def test_a_stream_broken_midway_raises_in_the_sdk(client, mocks):
    mocks[0].script.put(("cut", 3))
    stream = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], stream=True)
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    assert "alpha" in str(err.value)
    assert mocks[1].received == []


def test_models_lists_auto_and_the_loaded_providers(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["auto", "alpha", "beta"]
