"""Every client API (chat completions, Messages, Responses, Gemini) × every backend, for a plain answer, a streamed one and a tool call: a new
client API or backend cannot silently miss a combination.

One gate fronts three upstream mocks, each speaking its own provider's wire format: `oai`
(OpenAI-compatible chat completions), `gem` (Google's generateContent and
streamGenerateContent) and `ant` (Anthropic's Messages). The request names the backend's
provider id as its model, so it goes straight there; each client API is spoken by its official
SDK. A case checks what the SDK got back."""

import pytest

import anthropic
import openai
from google import genai
from google.genai import types

from conftest import Gate, Mock, TRANSLATED_TIMEOUTS, provider_yaml
from native_mocks import Answer, NativeMock

TEXT = "matrix says hello"
CALL = ("get_weather", {"city": "Paris"})
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

BACKENDS = ["oai", "gem", "ant"]
KINDS = ["plain", "stream", "tool"]


class Upstreams:
    def __init__(self, tmp):
        self.oai = Mock("oai")
        self.gem = NativeMock("gemini", "gem")
        self.ant = NativeMock("anthropic", "ant")
        config = (
            "server:\n  host: 127.0.0.1\n  port: 0\nproviders:\n"
            + provider_yaml("oai", self.oai) + "    max_tokens: 512\n"
            + f"  gem:\n    backend: google-genai\n    base_url: \"{self.gem.base_url}\"\n"
            f"    api_key: gemini-test-key\n    model: gemini-2.5-flash\n    timeout: {TRANSLATED_TIMEOUTS}\n"
            + f"  ant:\n    backend: anthropic\n    base_url: \"{self.ant.base_url}\"\n"
            f"    api_key: anthropic-test-key\n    model: claude-sonnet-4-5\n    max_tokens: 512\n"
            f"    timeout: {TRANSLATED_TIMEOUTS}\n"
            "fallback_chain: []\n"
        )
        self.gate = Gate(config, tmp)

    def script(self, backend, kind):
        """The next answer of `backend`: text, or a call of get_weather."""
        if backend == "oai":
            self.oai.script.put(("tools", [CALL]) if kind == "tool" else ("answer", TEXT))
        else:
            reply = Answer(calls=(CALL,)) if kind == "tool" else Answer(text=("matrix ", "says ", "hello"))
            getattr(self, backend).script.put(reply)

    def stop(self):
        self.gate.stop()
        self.oai.stop()
        self.gem.stop()
        self.ant.stop()


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    u = Upstreams(tmp_path_factory.mktemp("matrix"))
    yield u
    u.stop()


def openai_client(gate):
    return openai.OpenAI(base_url=f"{gate.url}/v1", api_key="sk-local", max_retries=0, timeout=30)


def chat(gate, backend, kind):
    """(text, [(tool name, args)]) from chat completions."""
    import json
    client = openai_client(gate)
    kwargs = {"model": backend, "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if kind == "tool":
        kwargs["tools"] = [{"type": "function", "function": {"name": CALL[0], "parameters": PARAMS}}]
    if kind == "stream":
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs)
                       if c.choices)
        return text, []
    msg = client.chat.completions.create(**kwargs).choices[0].message
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]
    return msg.content or "", calls


def messages(gate, backend, kind):
    """(text, [(tool name, input)]) from Anthropic Messages."""
    client = anthropic.Anthropic(base_url=gate.url, api_key="sk-ant-local", max_retries=0, timeout=30)
    kwargs = {"model": backend, "max_tokens": 100, "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if kind == "tool":
        kwargs["tools"] = [{"name": CALL[0], "input_schema": PARAMS}]
    if kind == "stream":
        with client.messages.stream(**kwargs) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert final.stop_reason == "end_turn"
        return text, []
    msg = client.messages.create(**kwargs)
    text = "".join(b.text for b in msg.content if b.type == "text")
    calls = [(b.name, b.input) for b in msg.content if b.type == "tool_use"]
    return text, calls


def responses(gate, backend, kind):
    """(text, [(function name, args)]) from the Responses API."""
    import json
    client = openai_client(gate)
    kwargs = {"model": backend, "input": "Weather in Paris?"}
    if kind == "tool":
        kwargs["tools"] = [{"type": "function", "name": CALL[0], "parameters": PARAMS}]
    if kind == "stream":
        events = list(client.responses.create(stream=True, **kwargs))
        assert events[-1].type == "response.completed"
        return "".join(e.delta for e in events if e.type == "response.output_text.delta"), []
    resp = client.responses.create(**kwargs)
    calls = [(o.name, json.loads(o.arguments)) for o in resp.output if o.type == "function_call"]
    return resp.output_text, calls


def gemini(gate, backend, kind):
    """(text, [(function name, args)]) from the Gemini API."""
    client = genai.Client(api_key="local", http_options=types.HttpOptions(base_url=gate.url, timeout=30_000))
    config = None
    if kind == "tool":
        decl = types.FunctionDeclaration(name=CALL[0], parameters=types.Schema(
            type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))
        config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])])
    if kind == "stream":
        chunks = list(client.models.generate_content_stream(model=backend, contents="Weather in Paris?"))
        return "".join(c.text or "" for c in chunks), []
    r = client.models.generate_content(model=backend, contents="Weather in Paris?", config=config)
    calls = [(c.name, dict(c.args)) for c in r.function_calls or []]
    return (r.text or "") if not calls else "", calls


INGRESSES = {"openai-chat": chat, "anthropic-messages": messages, "openai-responses": responses,
             "gemini": gemini}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ingress", list(INGRESSES))
def test_every_client_api_reaches_every_backend(upstreams, ingress, backend, kind):
    upstreams.script(backend, kind)
    text, calls = INGRESSES[ingress](upstreams.gate, backend, kind)
    if kind == "tool":
        assert calls == [CALL], (ingress, backend, text)
    else:
        assert text == TEXT, (ingress, backend, calls)
