"""The official `openai` SDK's Responses API (`client.responses`) against ClawGate's
`/v1/responses`, translated to the OpenAI-compatible mocks' chat completions and back.
Each test checks what the SDK gets back and what the upstream received."""

import json

import openai
import pytest
from pydantic import BaseModel

from conftest import tool_call_id

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def last_body(mock):
    return mock.received[-1]["body"]


def test_a_text_response_arrives_with_usage_and_routing_headers(client, mocks):
    raw = client.responses.with_raw_response.create(model="auto", input="hello", instructions="Be brief.",
                                                    max_output_tokens=64, temperature=0.3)
    resp = raw.parse()
    assert resp.object == "response" and resp.status == "completed"
    assert resp.id.startswith("resp_")
    assert resp.output_text == "Hello from alpha"
    assert resp.usage.input_tokens == 10 and resp.usage.output_tokens == 3 and resp.usage.total_tokens == 13
    assert resp.instructions == "Be brief." and resp.max_output_tokens == 64
    assert raw.headers["x-clawgate-provider"] == "alpha"
    assert raw.headers["x-clawgate-layer"] == "fallback"
    assert "x-clawgate-lane" in raw.headers and "x-clawgate-affinity" in raw.headers
    body = last_body(mocks[0])
    assert body["model"] == "upstream-alpha"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.3


def test_a_streamed_response_sends_the_events_in_order(client, mocks):
    events = list(client.responses.create(model="auto", input="hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.content_part.added", "response.output_text.delta",
                 "response.output_text.done", "response.output_item.done"):
        assert kind in kinds, kind
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello from alpha"
    final = events[-1].response
    assert final.output_text == "Hello from alpha"
    assert final.usage is not None and final.usage.output_tokens == 3
    assert last_body(mocks[0])["stream"] is True

    # The SDK's stream helper accumulates the same events into the final response.
    with client.responses.stream(model="auto", input="hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello from alpha"


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_call_round_trip_through_previous_response_id(client, mocks, stream):
    mocks[0].script.put(("tools", [("get_weather", {"city": "Paris"})]))
    if stream:
        events = list(client.responses.create(model="auto", input="Weather in Paris?", tools=[WEATHER], stream=True))
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        assert json.loads(args) == {"city": "Paris"}
        first = events[-1].response
    else:
        first = client.responses.create(model="auto", input="Weather in Paris?", tools=[WEATHER])
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id == tool_call_id(0)
    sent = last_body(mocks[0])
    assert sent["tools"] == [{"type": "function", "function": {k: WEATHER[k] for k in ("name", "description", "parameters")}}]

    second = client.responses.create(
        model="auto", previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
    )
    assert second.output_text == "Hello from alpha"
    assert second.previous_response_id == first.id
    messages = last_body(mocks[0])["messages"]
    assert messages[0] == {"role": "user", "content": "Weather in Paris?"}
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21C"}


def test_a_function_call_round_trip_with_the_full_input(client, mocks):
    mocks[0].script.put(("tools", [("get_weather", {"city": "Oslo"})]))
    history = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.responses.create(model="auto", input=history, tools=[WEATHER], store=False)
    call = next(o for o in first.output if o.type == "function_call")
    history += first.output
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "snow"})
    second = client.responses.create(model="auto", input=history, tools=[WEATHER], store=False)
    assert second.output_text == "Hello from alpha"
    messages = last_body(mocks[0])["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2]["tool_call_id"] == call.call_id and messages[2]["content"] == "snow"


def test_a_second_turn_sees_the_first_and_stored_responses_can_be_read(client, mocks):
    first = client.responses.create(model="auto", input="My name is Ada.", instructions="Be kind.")
    raw = client.responses.with_raw_response.create(model="auto", previous_response_id=first.id,
                                                    input="What is my name?", instructions="Be kind.")
    assert raw.headers["x-clawgate-affinity"] == "hit"
    assert raw.headers["x-clawgate-provider"] == "alpha"
    messages = last_body(mocks[0])["messages"]
    assert [m["content"] for m in messages] == ["Be kind.", "My name is Ada.", "Hello from alpha", "What is my name?"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]

    stored = client.responses.retrieve(first.id)
    assert stored.id == first.id and stored.output_text == "Hello from alpha"
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)

    unstored = client.responses.create(model="auto", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_unknown_previous_response_ids_and_built_in_tools_are_bad_requests(client, mocks):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="auto", previous_response_id="resp_nope", input="hi")
    assert e.value.param == "previous_response_id"
    assert e.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="auto", input="news?", tools=[{"type": "web_search"}])
    assert e.value.param == "tools[0].type"
    assert not mocks[0].received and not mocks[1].received


class Weather(BaseModel):
    city: str
    temp_c: int


def test_structured_output_through_responses_parse(client, mocks):
    mocks[0].script.put(("answer", json.dumps({"city": "Paris", "temp_c": 21})))
    parsed = client.responses.parse(model="auto", input="Weather in Paris as JSON", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", temp_c=21)
    fmt = last_body(mocks[0])["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Weather" and fmt["json_schema"]["strict"] is True
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"city", "temp_c"}

    mocks[0].script.put(("answer", "{\"ok\": true}"))
    resp = client.responses.create(model="auto", input="JSON please", text={"format": {"type": "json_object"}},
                                   reasoning={"effort": "low"})
    assert json.loads(resp.output_text) == {"ok": True}
    body = last_body(mocks[0])
    assert body["response_format"] == {"type": "json_object"} and body["reasoning_effort"] == "low"


def test_a_failing_provider_falls_back_and_all_failing_is_an_openai_error(client, mocks):
    mocks[0].script.put(("status", 429, {"error": {"message": "rate limited"}}))
    raw = client.responses.with_raw_response.create(model="auto", input="hi")
    assert raw.parse().output_text == "Hello from beta"
    assert raw.headers["x-clawgate-attempts"] == "alpha,beta"
    mocks[0].script.put(("status", 500, {}))
    mocks[1].script.put(("status", 500, {}))
    with pytest.raises(openai.APIStatusError) as e:
        client.responses.create(model="auto", input="hi")
    assert e.value.status_code >= 500
    assert e.value.body["code"] == "all_providers_failed"
