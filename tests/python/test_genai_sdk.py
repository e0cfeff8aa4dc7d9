"""The official `google-genai` SDK talking to ClawGate's Gemini API
(`/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`), as OpenClaw's
`google-generative-ai` transport does with its base URL pointed at ClawGate.

Behind the gate: `gem`, a mock speaking Gemini's own wire format (native_mocks.py), to which
Gemini clients are passed through; and `oai`, an OpenAI-compatible mock, to which they are
translated. Each test checks what the SDK gets back and what the upstream received."""

import base64
import json

import pytest
from google import genai
from google.genai import errors, types

from conftest import Gate, Mock, TRANSLATED_TIMEOUTS, provider_yaml, tool_call_id
from native_mocks import Answer, NativeMock, Raw

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
KEY = "gate-key"
WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Current weather for a city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]),
)


class Gateway:
    """A gate (with an API key) in front of `gem` (google-genai) and `oai` (openai-compat),
    with this fallback chain, and a `google-genai` client pointed at it."""

    def __init__(self, tmp_path, chain):
        self.gem = NativeMock("gemini", "gem")
        self.oai = Mock("oai")
        config = (
            f"server:\n  host: 127.0.0.1\n  port: 0\n  api_key: {KEY}\nproviders:\n"
            f"  gem:\n    backend: google-genai\n    base_url: \"{self.gem.base_url}\"\n"
            f"    api_key: gemini-test-key\n    model: gemini-2.5-flash\n    timeout: {TRANSLATED_TIMEOUTS}\n"
            + provider_yaml("oai", self.oai)
            + f"fallback_chain: [{', '.join(chain)}]\n"
        )
        self.gate = Gate(config, tmp_path)
        self.client = self.make_client(KEY)

    def make_client(self, key):
        return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=self.gate.url, timeout=30_000))

    def stop(self):
        self.gate.stop()
        self.gem.stop()
        self.oai.stop()


@pytest.fixture
def translated(tmp_path):
    g = Gateway(tmp_path, ["oai"])
    yield g
    g.stop()


@pytest.fixture
def passed(tmp_path):
    g = Gateway(tmp_path, ["gem"])
    yield g
    g.stop()


def ask(client, stream, **kw):
    """One request through the SDK: the final response (for a stream, its last chunk), and the
    text (for a stream, the chunks' text joined)."""
    if not stream:
        r = client.models.generate_content(**kw)
        return r, r.text
    chunks = list(client.models.generate_content_stream(**kw))
    return chunks[-1], "".join(c.text or "" for c in chunks)


def headers_of(response):
    return {k.lower(): v for k, v in (response.sdk_http_response.headers or {}).items()}


# ---------------------------------------------------------------------------------------------
# Translated: a Gemini client on an OpenAI-compatible backend


@pytest.mark.parametrize("stream", [False, True])
def test_text_to_an_openai_backend_comes_back_as_a_gemini_response(translated, stream):
    config = types.GenerateContentConfig(
        system_instruction="Be brief.", max_output_tokens=300, temperature=0.2, top_p=0.9, top_k=40,
        stop_sequences=["END"])
    r, text = ask(translated.client, stream, model="auto", contents="Say hello", config=config)
    assert text == "Hello from oai"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.prompt_token_count == 10
    assert r.usage_metadata.candidates_token_count == 3
    assert r.model_version == "upstream-oai"
    if not stream:
        h = headers_of(r)
        assert h["x-clawgate-provider"] == "oai"
        assert h["x-clawgate-layer"] and h["x-clawgate-lane"] and h["x-clawgate-affinity"]
    sent = translated.oai.received[-1]
    assert sent["path"] == "/v1/chat/completions"
    body = sent["body"]
    assert body["model"] == "upstream-oai"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop"]) == (300, 0.2, 0.9, ["END"])
    assert "top_k" not in body
    assert bool(body.get("stream")) == stream


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_call_round_trip_through_an_openai_backend(translated, stream):
    translated.oai.script.put(("tools", [("get_weather", {"city": "Paris"})]))
    tools = [types.Tool(function_declarations=[WEATHER])]
    config = types.GenerateContentConfig(
        tools=tools, tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")))
    question = types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")])
    r, _ = ask(translated.client, stream, model="auto", contents=[question], config=config)
    [call] = r.function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    assert call.id == tool_call_id(0)
    first = translated.oai.received[-1]["body"]
    assert first["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert first["tool_choice"] == "required"

    history = [
        question,
        r.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(
            name="get_weather", response={"output": "21 °C, clear"})]),
    ]
    r, text = ask(translated.client, stream, model="auto", contents=history, config=types.GenerateContentConfig(tools=tools))
    assert text == "Hello from oai"
    second = translated.oai.received[-1]["body"]["messages"]
    assert second[1]["role"] == "assistant"
    assert second[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(second[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert second[2] == {"role": "tool", "content": "21 °C, clear", "tool_call_id": call.id}


def test_an_image_goes_to_an_openai_backend_as_a_data_url(translated):
    image = types.Part.from_bytes(data=base64.b64decode(PNG_B64), mime_type="image/png")
    translated.client.models.generate_content(model="oai", contents=[image, "What is this?"])
    parts = translated.oai.received[-1]["body"]["messages"][0]["content"]
    assert parts == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "text", "text": "What is this?"},
    ]


def test_json_output_is_asked_for_with_a_schema(translated):
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema=types.Schema(type="OBJECT", properties={"n": types.Schema(type="INTEGER")}))
    translated.client.models.generate_content(model="auto", contents="A number", config=config)
    fmt = translated.oai.received[-1]["body"]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"] == {"type": "object", "properties": {"n": {"type": "integer"}}}


# ---------------------------------------------------------------------------------------------
# Errors in Google's shape: the SDK raises its own exceptions


def test_errors_are_the_sdks_client_and_server_errors(translated):
    bad = translated.make_client("wrong-key")
    with pytest.raises(errors.ClientError) as e:
        bad.models.generate_content(model="auto", contents="hi")
    assert (e.value.code, e.value.status) == (401, "UNAUTHENTICATED")

    translated.oai.script.put(("status", 400, {"error": {"message": "context too long", "type": "invalid_request_error"}}))
    with pytest.raises(errors.ClientError) as e:
        translated.client.models.generate_content(model="auto", contents="hi")
    assert (e.value.code, e.value.status) == (400, "INVALID_ARGUMENT")
    assert "context too long" in e.value.message

    translated.oai.script.put(("status", 500, {"error": {"message": "boom"}}))
    with pytest.raises(errors.ServerError) as e:
        translated.client.models.generate_content(model="auto", contents="hi")
    assert (e.value.code, e.value.status) == (500, "INTERNAL")

    translated.oai.script.put(("status", 429, {"error": {"message": "slow down"}}))
    with pytest.raises(errors.ClientError) as e:
        translated.client.models.generate_content(model="auto", contents="hi")
    assert (e.value.code, e.value.status) == (429, "RESOURCE_EXHAUSTED")


# ---------------------------------------------------------------------------------------------
# Passed through: a Gemini client on a `google-genai` backend


@pytest.mark.parametrize("stream", [False, True])
def test_a_gemini_backend_gets_the_request_as_sent(passed, stream):
    passed.gem.script.put(Answer(text=("Hello", " there")))
    config = types.GenerateContentConfig(
        system_instruction="Be brief.", max_output_tokens=100, top_k=40,
        safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")],
        thinking_config=types.ThinkingConfig(thinking_budget=0))
    r, text = ask(passed.client, stream, model="auto", contents="Say hello", config=config)
    assert text == "Hello there"
    assert r.model_version == "gemini-2.5-flash"
    assert r.usage_metadata.prompt_token_count == 21
    sent = passed.gem.last()
    want = "/v1beta/models/gemini-2.5-flash:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")
    assert sent["path"] == want
    assert sent["headers"]["x-goog-api-key"] == "gemini-test-key"
    body = sent["body"]
    assert body["generationConfig"]["topK"] == 40
    # As the SDK wrote it (this version spells thinkingConfig's fields in snake case).
    assert body["generationConfig"]["thinkingConfig"] in ({"thinkingBudget": 0}, {"thinking_budget": 0})
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]


def test_a_gemini_backends_refusal_reaches_the_client_as_google_wrote_it(passed):
    refusal = {"error": {"code": 400, "message": "Invalid value at 'contents'", "status": "INVALID_ARGUMENT"}}
    passed.gem.script.put(Raw(400, refusal))
    with pytest.raises(errors.ClientError) as e:
        passed.client.models.generate_content(model="auto", contents="hi")
    assert (e.value.code, e.value.status, e.value.message) == (400, "INVALID_ARGUMENT", "Invalid value at 'contents'")


def test_a_failing_gemini_backend_falls_back_to_a_translated_one(tmp_path):
    g = Gateway(tmp_path, ["gem", "oai"])
    try:
        g.gem.script.put(Raw(503, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}))
        r = g.client.models.generate_content(model="auto", contents="hi")
        assert r.text == "Hello from oai"
        h = headers_of(r)
        assert h["x-clawgate-provider"] == "oai"
        assert h["x-clawgate-attempts"] == "gem,oai"
    finally:
        g.stop()
