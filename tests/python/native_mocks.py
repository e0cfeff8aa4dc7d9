"""Mock Gemini and Anthropic servers on 127.0.0.1 (stdlib only) that speak the real wire
formats: Gemini `models/{model}:generateContent` and `:streamGenerateContent?alt=sse` with
`x-goog-api-key`; Anthropic `/messages` with `x-api-key` and `anthropic-version`, streaming
message_start, content_block_start/delta/stop, ping, message_delta and message_stop.

A test scripts what the next requests get (`mock.script.put(reply)`): an `Answer` (text
pieces and function calls, rendered as a whole response or as a stream depending on what the
request asked for), a `Raw` body (e.g. a recorded error from tests/fixtures), or nothing, which
answers "Hello from <name>". Every request is recorded in `mock.received` for the test to
check field by field."""

import json
import queue
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# How long a held stream waits for the test to say it saw the first delta.
HOLD_TIMEOUT_S = 10.0


@dataclass
class Answer:
    """What the model says: `text` pieces (one stream event each), then function calls as
    (name, args) pairs. `finish` is the native finish/stop reason (default: the natural one)."""

    text: tuple = ()
    calls: tuple = ()
    finish: Optional[str] = None
    # Streams only: after `hold_after` events, wait for `gate` (set by the test) before
    # sending the rest; `held_ok` records whether it was set within HOLD_TIMEOUT_S.
    hold_after: Optional[int] = None
    gate: Optional[threading.Event] = None
    held_ok: Optional[bool] = None
    usage: dict = field(default_factory=lambda: {"prompt": 21, "completion": 7})


@dataclass
class Raw:
    """Exactly this status and body (a fixture path under tests/fixtures, or bytes)."""

    status: int
    body: object
    content_type: str = "application/json"

    def data(self):
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        if isinstance(self.body, str):
            return (FIXTURES / self.body).read_bytes()
        return json.dumps(self.body).encode()


def send_body(handler, status, content_type, data):
    """Answer one request with `data` (bytes) and a content-length."""
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def serve(handler_class):
    """A threaded HTTP server on 127.0.0.1, any port, serving in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def sse(data, event=None):
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


# ---------------------------------------------------------------------------------------------
# Gemini


def gemini_response(ans, model):
    parts = []
    if ans.text:
        parts.append({"text": "".join(ans.text)})
    parts += [{"functionCall": {"name": n, "args": a}} for n, a in ans.calls]
    candidate = {"content": {"role": "model", "parts": parts}, "index": 0} if parts else {"index": 0}
    candidate["finishReason"] = ans.finish or "STOP"
    return {"candidates": [candidate], "usageMetadata": gemini_usage(ans), "modelVersion": model, "responseId": "resp-mock"}


def gemini_usage(ans):
    p, c = ans.usage["prompt"], ans.usage["completion"]
    return {"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p + c}


def gemini_stream(ans, model):
    """One event per text piece, then one with the calls; the last carries finishReason."""
    pieces = [[{"text": t}] for t in ans.text]
    if ans.calls:
        pieces.append([{"functionCall": {"name": n, "args": a}} for n, a in ans.calls])
    events = []
    for i, parts in enumerate(pieces or [[]]):
        # A candidate with nothing to say (a safety stop) has no `content` at all.
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0} if parts else {"index": 0}
        last = i == max(len(pieces), 1) - 1
        if last:
            candidate["finishReason"] = ans.finish or "STOP"
        usage = gemini_usage(ans) if last else {"promptTokenCount": ans.usage["prompt"], "totalTokenCount": ans.usage["prompt"]}
        events.append(sse({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": "resp-mock"}))
    return events


# ---------------------------------------------------------------------------------------------
# Anthropic


def tool_id(n):
    return f"toolu_01Mock{n:04d}abcdef"


def anthropic_response(ans, model):
    content = []
    if ans.text:
        content.append({"type": "text", "text": "".join(ans.text)})
    content += [{"type": "tool_use", "id": tool_id(i), "name": n, "input": a} for i, (n, a) in enumerate(ans.calls)]
    stop = ans.finish or ("tool_use" if ans.calls else "end_turn")
    return {
        "id": "msg_01Mock", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": ans.usage["prompt"], "output_tokens": ans.usage["completion"]},
    }


def anthropic_stream(ans, model):
    events = [sse({"type": "message_start", "message": {
        "id": "msg_01Mock", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": ans.usage["prompt"], "output_tokens": 1}}}, "message_start")]
    index = 0
    if ans.text:
        events.append(sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"))
        events.append(sse({"type": "ping"}, "ping"))
        for t in ans.text:
            events.append(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}, "content_block_delta"))
        events.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        index = 1
    for i, (name, args) in enumerate(ans.calls):
        events.append(sse({"type": "content_block_start", "index": index,
                           "content_block": {"type": "tool_use", "id": tool_id(i), "name": name, "input": {}}}, "content_block_start"))
        text = json.dumps(args)  # as the API streams it: `{"city": "Paris"}`, in pieces
        events.append(sse({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}}, "content_block_delta"))
        for at in range(0, len(text), 7):
            events.append(sse({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": text[at:at + 7]}}, "content_block_delta"))
        events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        index += 1
    stop = ans.finish or ("tool_use" if ans.calls else "end_turn")
    events.append(sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                       "usage": {"output_tokens": ans.usage["completion"]}}, "message_delta"))
    events.append(sse({"type": "message_stop"}, "message_stop"))
    return events


# ---------------------------------------------------------------------------------------------
# The servers


class NativeMock:
    """`kind` is "gemini" or "anthropic"."""

    def __init__(self, kind, name, responder=None):
        self.kind = kind
        self.name = name
        # `responder(body)`: the reply for a request by its content (an agent's side calls come
        # in no fixed order); `None` falls back to the script.
        self.responder = responder
        self.script = queue.Queue()
        self.received = []
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are separate writes: no Nagle, or the peer's delayed ACK
            # can hold an answer back ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                headers = {k.lower(): v for k, v in self.headers.items()}
                mock.received.append({"path": self.path, "headers": headers, "body": body})
                if mock.kind == "gemini" and ":batchEmbedContents" in self.path:
                    vectors = [{"values": [round(len(r["content"]["parts"][0]["text"]) / 100, 2), 0.5]}
                               for r in body["requests"]]
                    return self.send_bytes(200, "application/json", json.dumps({"embeddings": vectors}).encode())
                reply = mock.responder(body) if mock.responder else None
                if reply is None:
                    try:
                        reply = mock.script.get_nowait()
                    except queue.Empty:
                        reply = Answer(text=(f"Hello from {mock.name}",))
                if isinstance(reply, Raw):
                    return self.send_bytes(reply.status, reply.content_type, reply.data())
                if mock.kind == "gemini":
                    model = self.path.split("/models/", 1)[-1].split(":", 1)[0]
                    stream = ":streamGenerateContent" in self.path
                    render = gemini_stream if stream else gemini_response
                else:
                    model = body.get("model")
                    stream = bool(body.get("stream"))
                    render = anthropic_stream if stream else anthropic_response
                if not stream:
                    return self.send_bytes(200, "application/json", json.dumps(render(reply, model)).encode())
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for i, event in enumerate(render(reply, model)):
                    if reply.hold_after is not None and i == reply.hold_after:
                        reply.held_ok = reply.gate.wait(HOLD_TIMEOUT_S)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def send_bytes(self, status, content_type, data):
                send_body(self, status, content_type, data)

        self.server = serve(Handler)

    @property
    def base_url(self):
        # What precedes /models/{model}:generateContent or /messages.
        suffix = "/v1beta" if self.kind == "gemini" else "/v1"
        return f"http://127.0.0.1:{self.server.server_address[1]}{suffix}"

    def last(self):
        return self.received[-1]

    def stop(self):
        self.server.shutdown()
