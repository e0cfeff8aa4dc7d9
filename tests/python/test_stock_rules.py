"""Every stock rule, end to end: the official SDK sends the request, ClawGate routes it with the
stock rules/ directory, and the X-ClawGate-* headers say where it went."""

import json
from pathlib import Path

import pytest
from openai import OpenAI

from conftest import REPO, Gate, Mock, provider_yaml

FIXTURES = REPO / "tests" / "fixtures" / "openclaw"
STOCK_IDS = ["deepseek-chat", "deepseek-reasoner", "gemini-flash-lite", "gemini-flash", "openrouter-fallback"]
TOOLS = [{"type": "function", "function": {"name": "read", "parameters": {"type": "object", "properties": {}}}}]
LONG = "lorem ipsum dolor sit amet " * 8000  # ~216k characters, ~54k tokens


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    mock = Mock("stock")
    config = "server:\n  port: 0\nproviders:\n" + "".join(provider_yaml(pid, mock) for pid in STOCK_IDS)
    config += "fallback_chain: [deepseek-chat, deepseek-reasoner, gemini-flash, openrouter-fallback]\n"
    gate = Gate(config, tmp_path_factory.mktemp("stock"), rules_dir=REPO / "rules")
    client = OpenAI(base_url=gate.url + "/v1", api_key="local", max_retries=0, timeout=30)
    yield client
    gate.stop()
    mock.stop()


def openclaw(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())["body"]


def user(text, **extra):
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


CASES = [
    # (name, request, layer, rule, provider)
    ("openclaw heartbeat turn", openclaw("heartbeat"), "static", "heartbeat", "gemini-flash-lite"),
    ("openclaw sub-agent's trivial task", openclaw("subagent-child"), "heuristic", "trivial-task", "gemini-flash-lite"),
    ("openclaw main turn with the ds alias", openclaw("turn-local-main"), "static", "explicit-chat", "deepseek-chat"),
    ("model hint: cheap", {**user("status?"), "model": "cheap"}, "static", "heartbeat", "gemini-flash-lite"),
    ("alias r1", {**user("hello"), "model": "r1"}, "static", "explicit-reasoner", "deepseek-reasoner"),
    ("alias flash", {**user("hello"), "model": "flash"}, "static", "explicit-flash", "gemini-flash"),
    ("alias ds", {**user("hello"), "model": "ds"}, "static", "explicit-chat", "deepseek-chat"),
    ("alias lite", {**user("hello"), "model": "lite"}, "static", "lite", "gemini-flash-lite"),
    ("alias or", {**user("hello"), "model": "or"}, "static", "or", "openrouter-fallback"),
    ("sub-agent header", {**user("process the file"), "extra_headers": {"x-openclaw-source": "subagent-42"}}, "heuristic", "subagent", "deepseek-chat"),
    ("maths", user("Prove the theorem step by step using induction"), "heuristic", "reasoning", "deepseek-reasoner"),
    ("code", user("debug this race condition and refactor the architecture"), "heuristic", "reasoning", "deepseek-reasoner"),
    ("greeting", user("hello there"), "heuristic", "simple-query", "gemini-flash-lite"),
    ("'this' is not 'hi'", user("Is this correct? I know the answer now, nothing else matters here."), "default", "default", "deepseek-chat"),
    ("tools", user("search my files for the report", tools=TOOLS), "default", "default", "deepseek-chat"),
    ("image", {"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe the picture"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
     "heuristic", "vision", "gemini-flash"),
    ("long context", user(LONG), "heuristic", "long-context", "gemini-flash"),
    ("anything else", user("Summarise the quarterly report for the board in three paragraphs, focusing on revenue, "
                            "hiring and the product roadmap, and keep the tone neutral and factual throughout. " * 3),
     "default", "default", "deepseek-chat"),
]


@pytest.mark.parametrize("name,request_body,layer,rule,provider", CASES, ids=[c[0] for c in CASES])
def test_stock_rule_routes_as_intended(stock, name, request_body, layer, rule, provider):
    body = dict(request_body)
    extra_headers = body.pop("extra_headers", None)
    body.pop("stream_options", None)
    stream = body.pop("stream", False)
    raw = stock.chat.completions.with_raw_response.create(**body, stream=stream, extra_headers=extra_headers)
    assert (raw.headers["x-clawgate-layer"], raw.headers["x-clawgate-rule"], raw.headers["x-clawgate-provider"]) == (layer, rule, provider)
    parsed = raw.parse()
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) == "Hello from stock"
    else:
        assert parsed.choices[0].message.content == "Hello from stock"


def test_a_provider_id_as_model_bypasses_the_rules(stock):
    raw = stock.chat.completions.with_raw_response.create(**{**user("Prove the theorem step by step"), "model": "gemini-flash"})
    assert (raw.headers["x-clawgate-layer"], raw.headers["x-clawgate-rule"], raw.headers["x-clawgate-provider"]) == ("direct", "explicit-model", "gemini-flash")
