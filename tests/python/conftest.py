"""Fixtures: a scriptable OpenAI-compatible upstream (stdlib HTTP server on 127.0.0.1) and a
real `clawgate` process configured to use it. Tests talk to ClawGate with the official
`openai` SDK, exactly as a user's agent would."""

import json
import os
import queue
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from native_mocks import NativeMock, send_body, serve

REPO = Path(__file__).resolve().parents[2]


def sse_events(model, text, include_usage):
    def chunk(delta, finish=None):
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    words = text.split(" ")
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
    events.append(chunk({}, "stop"))
    if include_usage:
        events.append({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 10 + len(words)},
        })
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


def tool_call_id(i):
    return f"call_{i}_mock:01"


def tool_calls_message(calls):
    return [{"id": tool_call_id(i), "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, (n, a) in enumerate(calls)]


def sse_tool_events(model, calls, include_usage):
    """A streamed answer calling `calls` ((name, args) pairs), arguments in 8-byte pieces."""
    def chunk(delta, finish=None):
        return {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": None})]
    for i, (name, args) in enumerate(calls):
        events.append(chunk({"tool_calls": [{"index": i, "id": tool_call_id(i), "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
        text = json.dumps(args)
        for at in range(0, len(text), 8):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": text[at:at + 8]}}]}))
    events.append(chunk({}, "tool_calls"))
    if include_usage:
        events.append({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


def embedding_of(text, n=3):
    """A made-up vector for `text`, the same every time."""
    return [round((len(text) + i) / 10, 2) for i in range(n)]


def openai_embeddings(body):
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [{"object": "embedding", "embedding": embedding_of(str(t)), "index": i} for i, t in enumerate(inputs)]
    return {"object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}}


class Mock:
    """An OpenAI-compatible upstream. `script` holds behaviours for the next requests:
    ("answer", text), ("tools", [(name, args), ...]), ("status", code, body), ("cut", n_events)."""

    def __init__(self, name, responder=None):
        self.name = name
        # `responder(body)`: the behaviour for a request by its content (an agent's side calls
        # come in no fixed order); `None` falls back to the script.
        self.responder = responder
        self.script = queue.Queue()
        self.received = []
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                mock.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path.endswith("/embeddings"):
                    return self.send_json(200, openai_embeddings(body))
                behavior = mock.responder(body) if mock.responder else None
                if behavior is None:
                    try:
                        behavior = mock.script.get_nowait()
                    except queue.Empty:
                        behavior = ("answer", f"Hello from {mock.name}")
                model = body.get("model", "unknown")
                stream = bool(body.get("stream"))
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                kind = behavior[0]
                if kind == "status":
                    self.send_json(behavior[1], behavior[2])
                elif kind == "tools" and not stream:
                    self.send_json(200, {
                        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                            "role": "assistant", "content": None, "tool_calls": tool_calls_message(behavior[1])}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    })
                elif kind == "answer" and not stream:
                    self.send_json(200, {
                        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": behavior[1]}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
                    })
                else:
                    text = behavior[1] if kind == "answer" else "one two three four five six"
                    if kind == "tools":
                        events = sse_tool_events(model, behavior[1], usage)
                    else:
                        events = sse_events(model, text, usage)
                    cut = behavior[1] if kind == "cut" else None
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for i, event in enumerate(events):
                        if cut is not None and i == cut:
                            # Half a chunk, then the connection drops.
                            self.wfile.write(b"40\r\ndata: {\"id")
                            self.wfile.flush()
                            time.sleep(0.05)
                            self.connection.shutdown(socket.SHUT_RDWR)
                            self.close_connection = True
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                        time.sleep(0.01)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()

            def send_json(self, status, payload):
                send_body(self, status, "application/json", json.dumps(payload).encode())

        self.server = serve(Handler)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self):
        self.server.shutdown()


def clawgate_binary():
    explicit = os.environ.get("CLAWGATE_BIN")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        path = REPO / "target" / profile / "clawgate"
        if path.exists():
            return str(path)
    pytest.fail("clawgate binary not found: run `cargo build` or set CLAWGATE_BIN")


class Gate:
    def __init__(self, config_text, tmp_path, rules_dir=None):
        (tmp_path / "config.yaml").write_text(config_text)
        rules = rules_dir or (tmp_path / "rules")
        rules.mkdir(exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "clawgate=info"}
        self.proc = subprocess.Popen(
            [clawgate_binary(), "--config", str(tmp_path / "config.yaml"), "--rules", str(rules), "--port", "0",
             "--db", str(tmp_path / "clawgate.db")],
            cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        self.log = []
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.proc.kill()
        raise RuntimeError("clawgate did not start:\n" + "".join(self.log))

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def provider_yaml(pid, mock):
    return (
        f"  {pid}:\n    backend: openai-compat\n    base_url: \"{mock.base_url}\"\n    api_key: sk-test-{pid}\n"
        f"    model: upstream-{pid}\n    timeout: {{connect_s: 1, read_s: 5, first_byte_s: 2, idle_s: 2}}\n"
    )


@pytest.fixture
def mocks():
    made = [Mock("alpha"), Mock("beta")]
    yield made
    for m in made:
        m.stop()


@pytest.fixture
def gate(mocks, tmp_path):
    alpha, beta = mocks
    config = (
        "server:\n  host: 127.0.0.1\n  port: 0\nproviders:\n"
        + provider_yaml("alpha", alpha)
        + provider_yaml("beta", beta)
        + "fallback_chain: [alpha, beta]\n"
    )
    g = Gate(config, tmp_path)
    yield g
    g.stop()


@pytest.fixture
def client(gate):
    from openai import OpenAI

    return OpenAI(base_url=gate.url + "/v1", api_key="local", max_retries=0, timeout=20)


# ---------------------------------------------------------------------------------------------
# Native backends: ClawGate in front of a mock Gemini and a mock Anthropic (native_mocks.py).

TRANSLATED_TIMEOUTS = "{connect_s: 1, read_s: 15, first_byte_s: 5, idle_s: 15}"


class Native:
    """A gate whose chain is gem (google-genai) → claude (anthropic) → oai (openai-compat)."""

    def __init__(self, tmp_path):
        from openai import OpenAI

        self.gem = NativeMock("gemini", "gem")
        self.claude = NativeMock("anthropic", "claude")
        self.oai = Mock("oai")
        config = (
            "server:\n  host: 127.0.0.1\n  port: 0\nproviders:\n"
            f"  gem:\n    backend: google-genai\n    base_url: \"{self.gem.base_url}\"\n"
            f"    api_key: gemini-test-key\n    model: gemini-2.5-flash\n    timeout: {TRANSLATED_TIMEOUTS}\n"
            f"  claude:\n    backend: anthropic\n    base_url: \"{self.claude.base_url}\"\n"
            f"    api_key: anthropic-test-key\n    model: claude-sonnet-4-5\n    timeout: {TRANSLATED_TIMEOUTS}\n"
            + provider_yaml("oai", self.oai)
            + "fallback_chain: [gem, claude, oai]\n"
        )
        self.gate = Gate(config, tmp_path)
        self.client = OpenAI(base_url=self.gate.url + "/v1", api_key="local", max_retries=0, timeout=30)

    def mock(self, provider):
        return {"gem": self.gem, "claude": self.claude}[provider]

    def stop(self):
        self.client.close()
        self.gate.stop()
        for m in (self.gem, self.claude, self.oai):
            m.stop()


@pytest.fixture
def native(tmp_path):
    n = Native(tmp_path)
    yield n
    n.stop()
