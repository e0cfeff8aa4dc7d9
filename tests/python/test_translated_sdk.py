"""The `openai` SDK talking to Gemini and Claude through ClawGate's native backends.

The mocks (native_mocks.py) speak Google's and Anthropic's own wire formats; each test checks
what the SDK gets back and, field by field, what the upstream received."""

import base64
import json
import threading

import openai
import pydantic
import pytest

from native_mocks import Answer, Raw

BOTH = ["gem", "claude"]
STREAM = [False, True]

SYSTEM = "You are terse."
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"], "additionalProperties": False}}}
# A 1x1 transparent PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
PNG_B64 = base64.b64encode(PNG).decode()


def collect(stream):
    """Everything a client assembles from a stream: text, tool calls by index, finish reason,
    usage, and the chunks themselves."""
    out = {"content": "", "calls": {}, "finish": None, "usage": None, "chunks": []}
    for chunk in stream:
        out["chunks"].append(chunk)
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            d = choice.delta
            out["content"] += d.content or ""
            for tc in d.tool_calls or []:
                call = out["calls"].setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    call["id"] = tc.id
                if tc.function and tc.function.name:
                    call["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    call["arguments"] += tc.function.arguments
            if choice.finish_reason:
                out["finish"] = choice.finish_reason
    out["calls"] = [out["calls"][i] for i in sorted(out["calls"])]
    return out


def ask(client, model, messages, stream, **kw):
    """One chat through the SDK, as {content, calls, finish, usage} whether streamed or not."""
    if stream:
        return collect(client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}, **kw))
    resp = client.chat.completions.create(model=model, messages=messages, **kw)
    msg = resp.choices[0].message
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in msg.tool_calls or []]
    return {"content": msg.content or "", "calls": calls, "finish": resp.choices[0].finish_reason,
            "usage": resp.usage, "response": resp}


# ---------------------------------------------------------------------------------------------
# 1. Plain and streamed chat


@pytest.mark.parametrize("stream", STREAM)
def test_a_chat_with_gemini_is_sent_as_generate_content_and_answered_in_openai_shape(native, stream):
    native.gem.script.put(Answer(text=("Hello", " there", "!")))
    got = ask(native.client, "gem", [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello."}],
              stream, temperature=0.3, top_p=0.9, max_tokens=50, stop=["END"], seed=7)
    assert got["content"] == "Hello there!"
    assert got["finish"] == "stop"
    assert (got["usage"].prompt_tokens, got["usage"].completion_tokens, got["usage"].total_tokens) == (21, 7, 28)
    if not stream:
        assert got["response"].model == "gemini-2.5-flash"
        assert got["response"].id.startswith("chatcmpl-")

    sent = native.gem.last()
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    assert sent["path"] == f"/v1beta/models/gemini-2.5-flash:{method}"
    assert sent["headers"]["x-goog-api-key"] == "gemini-test-key"
    assert sent["headers"]["content-type"] == "application/json"
    assert "authorization" not in sent["headers"]
    assert sent["body"] == {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello."}]}],
        "generationConfig": {"temperature": 0.3, "topP": 0.9, "maxOutputTokens": 50, "stopSequences": ["END"], "seed": 7},
    }


@pytest.mark.parametrize("stream", STREAM)
def test_a_chat_with_claude_is_sent_as_messages_and_answered_in_openai_shape(native, stream):
    native.claude.script.put(Answer(text=("Hello", " there", "!")))
    got = ask(native.client, "claude", [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello."}],
              stream, temperature=1.7, top_p=0.9, max_tokens=50, stop=["END", "  "], user="u-42")
    assert got["content"] == "Hello there!"
    assert got["finish"] == "stop"
    assert (got["usage"].prompt_tokens, got["usage"].completion_tokens, got["usage"].total_tokens) == (21, 7, 28)
    if not stream:
        assert got["response"].model == "claude-sonnet-4-5"

    sent = native.claude.last()
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "anthropic-test-key"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["content-type"] == "application/json"
    assert "authorization" not in sent["headers"]
    expected = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello.", "cache_control": {"type": "ephemeral"}}]}],
        # Whitespace-only stop sequences are refused by the API; temperature is clamped to
        # Anthropic's 0..1 and wins over top_p (recent models refuse both).
        "stop_sequences": ["END"],
        "temperature": 1.0,
        "metadata": {"user_id": "u-42"},
    }
    if stream:
        expected["stream"] = True
    assert sent["body"] == expected


# ---------------------------------------------------------------------------------------------
# 2. Tool-call round trip


def tool_round_trip(native, provider, stream):
    """Ask, get a tool call, answer it, get text. Returns what was sent upstream each time."""
    mock = native.mock(provider)
    question = [{"role": "user", "content": "Weather in Paris?"}]
    mock.script.put(Answer(calls=(("get_weather", {"city": "Paris"}),)))
    first = ask(native.client, provider, question, stream, tools=[WEATHER_TOOL])
    assert first["finish"] == "tool_calls"
    assert first["content"] == ""
    assert len(first["calls"]) == 1
    call = first["calls"][0]
    assert call["id"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}

    mock.script.put(Answer(text=("It is 21 °C", " and clear in Paris.")))
    history = question + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21, "sky": "clear"}'},
    ]
    second = ask(native.client, provider, history, stream, tools=[WEATHER_TOOL])
    assert second["content"] == "It is 21 °C and clear in Paris."
    assert second["finish"] == "stop"
    assert second["calls"] == []
    return call["id"], mock.received[0]["body"], mock.received[1]["body"]


@pytest.mark.parametrize("stream", STREAM)
def test_a_gemini_function_call_round_trips_as_tool_calls_and_a_function_response(native, stream):
    call_id, first, second = tool_round_trip(native, "gem", stream)
    assert call_id.startswith("call_")
    # The tool's schema, cleaned of what Gemini refuses (additionalProperties).
    assert first["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                       "required": ["city"]}}]}]
    assert second["contents"][0] == {"role": "user", "parts": [{"text": "Weather in Paris?"}]}
    model_turn = second["contents"][1]
    assert model_turn["role"] == "model"
    assert [p["functionCall"] for p in model_turn["parts"]] == [{"name": "get_weather", "args": {"city": "Paris"}}]
    # The tool result goes back under the function's name (OpenAI's tool message only has the id).
    assert second["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21, "sky": "clear"}}}]}
    assert len(second["contents"]) == 3


@pytest.mark.parametrize("stream", STREAM)
def test_a_claude_tool_use_round_trips_as_tool_calls_and_a_tool_result(native, stream):
    call_id, first, second = tool_round_trip(native, "claude", stream)
    assert call_id == "toolu_01Mock0000abcdef"
    assert first["tools"] == [{"name": "get_weather", "description": "Current weather for a city",
                               "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert second["messages"][0]["role"] == "user"
    assert second["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}]}
    result = second["messages"][2]
    assert result["role"] == "user"
    assert [(b["type"], b["tool_use_id"], b["content"]) for b in result["content"]] == [
        ("tool_result", call_id, '{"temp_c": 21, "sky": "clear"}')]
    assert len(second["messages"]) == 3


@pytest.mark.parametrize("provider", BOTH)
def test_parallel_tool_calls_are_answered_together_in_one_turn(native, provider):
    mock = native.mock(provider)
    question = [{"role": "user", "content": "Weather in Paris and Oslo?"}]
    mock.script.put(Answer(calls=(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"}))))
    first = ask(native.client, provider, question, True, tools=[WEATHER_TOOL])
    calls = first["calls"]
    assert [json.loads(c["arguments"])["city"] for c in calls] == ["Paris", "Oslo"]
    assert len({c["id"] for c in calls}) == 2
    history = question + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]}]
    history += [{"role": "tool", "tool_call_id": c["id"], "content": f"{t} degrees"} for c, t in zip(calls, (21, 4))]
    history.append({"role": "user", "content": "Which is warmer?"})
    mock.script.put(Answer(text=("Paris.",)))
    assert ask(native.client, provider, history, False, tools=[WEATHER_TOOL])["content"] == "Paris."
    sent = mock.last()["body"]
    if provider == "gem":
        # Both results and the next question in one user turn, right after the model's calls.
        assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
        assert sent["contents"][2]["parts"] == [
            {"functionResponse": {"name": "get_weather", "response": {"content": "21 degrees"}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": "4 degrees"}}},
            {"text": "Which is warmer?"},
        ]
    else:
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        blocks = sent["messages"][2]["content"]
        # tool_result blocks must lead the user turn that follows the tool_use turn.
        assert [(b["type"], b.get("tool_use_id"), b.get("content") or b.get("text")) for b in blocks] == [
            ("tool_result", calls[0]["id"], "21 degrees"),
            ("tool_result", calls[1]["id"], "4 degrees"),
            ("text", None, "Which is warmer?"),
        ]


# ---------------------------------------------------------------------------------------------
# 3. Images


def image_question():
    return [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]}]


def test_an_image_reaches_gemini_as_inline_data(native):
    resp = native.client.chat.completions.create(model="gem", messages=image_question())
    assert resp.choices[0].message.content == "Hello from gem"
    parts = native.gem.last()["body"]["contents"][0]["parts"]
    assert parts == [{"text": "What is in this picture?"}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == PNG


def test_an_image_reaches_claude_as_a_base64_image_block(native):
    resp = native.client.chat.completions.create(model="claude", messages=image_question())
    assert resp.choices[0].message.content == "Hello from claude"
    blocks = native.claude.last()["body"]["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": "What is in this picture?"}
    assert blocks[1]["type"] == "image"
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG_B64}


def test_a_remote_image_url_is_refused_for_gemini_with_a_bad_request(native):
    with pytest.raises(openai.BadRequestError) as err:
        native.client.chat.completions.create(model="gem", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "gem" in err.value.message
    assert native.gem.received == []


# ---------------------------------------------------------------------------------------------
# 4. JSON mode and structured output


class City(pydantic.BaseModel):
    name: str
    population: int


class Weather(pydantic.BaseModel):
    city: City
    temp_c: float
    sky: str


WEATHER_JSON = '{"city": {"name": "Paris", "population": 2100000}, "temp_c": 21.5, "sky": "clear"}'


def test_json_mode_asks_gemini_for_a_json_mime_type(native):
    native.gem.script.put(Answer(text=('{"ok": true}',)))
    resp = native.client.chat.completions.create(
        model="gem", messages=[{"role": "user", "content": "Answer in JSON."}], response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content) == {"ok": True}
    config = native.gem.last()["body"]["generationConfig"]
    assert config == {"responseMimeType": "application/json"}


def test_a_pydantic_response_format_reaches_gemini_as_a_clean_response_schema(native):
    native.gem.script.put(Answer(text=(WEATHER_JSON,)))
    resp = native.client.chat.completions.parse(
        model="gem", messages=[{"role": "user", "content": "Weather in Paris?"}], response_format=Weather)
    parsed = resp.choices[0].message.parsed
    assert parsed == Weather(city=City(name="Paris", population=2100000), temp_c=21.5, sky="clear")
    config = native.gem.last()["body"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    # The SDK sends a strict schema with $defs/$ref, titles and additionalProperties: false;
    # Gemini's responseSchema takes none of those, so the reference is inlined, titles become
    # descriptions and the rest is dropped.
    assert config["responseSchema"] == {
        "type": "object",
        "properties": {
            "city": {"type": "object", "properties": {"name": {"type": "string", "description": "Name"},
                                                      "population": {"type": "integer", "description": "Population"}},
                     "required": ["name", "population"], "description": "City"},
            "temp_c": {"type": "number", "description": "Temp C"},
            "sky": {"type": "string", "description": "Sky"},
        },
        "required": ["city", "temp_c", "sky"],
        "description": "Weather",
    }


def test_json_mode_reaches_claude_as_a_system_instruction(native):
    native.claude.script.put(Answer(text=('{"ok": true}',)))
    resp = native.client.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Answer in JSON."}],
        response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content) == {"ok": True}
    system = native.claude.last()["body"]["system"]
    assert system[0] == {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    assert system[1]["text"].startswith("Respond with a single valid JSON object and nothing else")
    assert "response_format" not in native.claude.last()["body"]


def test_a_pydantic_response_format_reaches_claude_as_the_schema_in_the_system_prompt(native):
    native.claude.script.put(Answer(text=(WEATHER_JSON,)))
    resp = native.client.chat.completions.parse(
        model="claude", messages=[{"role": "user", "content": "Weather in Paris?"}], response_format=Weather)
    assert resp.choices[0].message.parsed.city.name == "Paris"
    (rule,) = native.claude.last()["body"]["system"]
    assert "(named `Weather`)" in rule["text"]
    schema = json.loads(rule["text"].split("JSON Schema:\n", 1)[1])
    assert schema["properties"]["city"] == {"$ref": "#/$defs/City"}
    assert set(schema["$defs"]["City"]["properties"]) == {"name", "population"}


# ---------------------------------------------------------------------------------------------
# 5. Streamed and whole answers agree


@pytest.mark.parametrize("provider", BOTH)
def test_streamed_deltas_add_up_to_the_non_streamed_answer(native, provider):
    def answer():
        return Answer(text=("The weather", " in Paris", " is mild — ", "let me check ✨."),
                      calls=(("get_weather", {"city": "Paris", "units": "celsius"}),
                             ("get_time", {"tz": "Europe/Paris", "fmt": {"h24": True}})))

    mock = native.mock(provider)
    messages = [{"role": "user", "content": "Weather and time in Paris?"}]
    mock.script.put(answer())
    whole = ask(native.client, provider, messages, False, tools=[WEATHER_TOOL])
    mock.script.put(answer())
    streamed = ask(native.client, provider, messages, True, tools=[WEATHER_TOOL])
    assert mock.received[0]["body"].get("contents") == mock.received[1]["body"].get("contents")

    assert streamed["content"] == whole["content"] == "The weather in Paris is mild — let me check ✨."
    assert streamed["finish"] == whole["finish"] == "tool_calls"
    assert [c["name"] for c in streamed["calls"]] == [c["name"] for c in whole["calls"]] == ["get_weather", "get_time"]
    # Same arguments (the text may differ in spacing: Anthropic streams its own JSON text).
    assert [json.loads(c["arguments"]) for c in streamed["calls"]] == [json.loads(c["arguments"]) for c in whole["calls"]]
    assert streamed["usage"].model_dump() == whole["usage"].model_dump()
    if provider == "claude":
        assert [c["id"] for c in streamed["calls"]] == [c["id"] for c in whole["calls"]]
    else:
        # Gemini sends no ids: ClawGate mints distinct ones each time.
        ids = [c["id"] for c in streamed["calls"] + whole["calls"]]
        assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 4


# ---------------------------------------------------------------------------------------------
# 6. No buffering: the first words reach the SDK while the upstream is still writing


@pytest.mark.parametrize("provider", BOTH)
def test_the_first_words_arrive_while_the_model_is_still_writing(native, provider):
    gate = threading.Event()
    # Gemini: the first event is the first text. Anthropic: message_start,
    # content_block_start, ping, then the first text_delta.
    first_events = 1 if provider == "gem" else 4
    held = Answer(text=("First words.", " Then", " the rest."), hold_after=first_events, gate=gate)
    native.mock(provider).script.put(held)
    stream = native.client.chat.completions.create(
        model=provider, messages=[{"role": "user", "content": "Tell me a long story."}], stream=True)
    text = ""
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content and not gate.is_set():
                assert choice.delta.content == "First words."
                gate.set()  # only now may the mock send the rest
            text += choice.delta.content or ""
    assert held.held_ok, "the first delta did not reach the SDK until the upstream had finished"
    assert text == "First words. Then the rest."


# ---------------------------------------------------------------------------------------------
# 7. Errors


@pytest.mark.parametrize("stream", STREAM)
def test_gemini_quota_exhaustion_falls_back_to_the_next_provider(native, stream):
    native.gem.script.put(Raw(429, "gemini/error-429.json"))
    raw = native.client.chat.completions.with_raw_response.create(
        model="gem", messages=[{"role": "user", "content": "hi"}], stream=stream)
    assert raw.headers["x-clawgate-provider"] == "claude"
    assert raw.headers["x-clawgate-attempts"] == "gem,claude"
    resp = raw.parse()
    text = collect(resp)["content"] if stream else resp.choices[0].message.content
    assert text == "Hello from claude"
    assert len(native.gem.received) == 1 and len(native.claude.received) == 1


@pytest.mark.parametrize(("stream", "reply"), [(False, "http-529"), (True, "http-529"), (True, "stream-error-event")])
def test_claude_overload_falls_back_to_the_next_provider(native, stream, reply):
    if reply == "stream-error-event":
        # 200, then `event: error` overloaded_error before any content.
        native.claude.script.put(Raw(200, "anthropic/stream-error-overloaded.sse", "text/event-stream"))
    else:
        native.claude.script.put(Raw(529, "anthropic/error-529-overloaded.json"))
    raw = native.client.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "user", "content": "hi"}], stream=stream)
    assert raw.headers["x-clawgate-provider"] == "gem"
    assert raw.headers["x-clawgate-attempts"] == "claude,gem"
    resp = raw.parse()
    text = collect(resp)["content"] if stream else resp.choices[0].message.content
    assert text == "Hello from gem"


INVALID = {
    "gem": ("gemini/error-400-invalid-argument.json", "should be non-empty for OBJECT type"),
    "claude": ("anthropic/error-400-invalid-request.json", "unexpected `tool_use_id` found in `tool_result` blocks"),
}


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("provider", BOTH)
def test_an_invalid_request_raises_bad_request_with_the_upstreams_message(native, provider, stream):
    fixture, words = INVALID[provider]
    native.mock(provider).script.put(Raw(400, fixture))
    with pytest.raises(openai.BadRequestError) as err:
        native.client.chat.completions.create(model=provider, messages=[{"role": "user", "content": "hi"}], stream=stream)
    assert err.value.status_code == 400
    assert words in err.value.message
    assert provider in err.value.message
    # The request itself is wrong: no other provider is bothered with it.
    others = [m for m in (native.gem, native.claude, native.oai) if m is not native.mock(provider)]
    assert all(m.received == [] for m in others)


SAFETY = {
    "gem": [Answer(finish="SAFETY"), Raw(200, "gemini/response-prompt-blocked.json")],
    "claude": [Answer(finish="refusal")],
}


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("provider", BOTH)
def test_a_safety_block_ends_with_content_filter(native, provider, stream):
    replies = list(SAFETY[provider])
    if provider == "gem" and stream:
        replies[1] = Raw(200, "gemini/stream-prompt-blocked.sse", "text/event-stream")
    for reply in replies:
        native.mock(provider).script.put(reply)
        got = ask(native.client, provider, [{"role": "user", "content": "something nasty"}], stream)
        assert got["finish"] == "content_filter", reply
        assert got["content"] == ""
    assert native.oai.received == []
