#!/usr/bin/env python3
"""Added latency of translation, end to end, in one run: the same client sends the same
OpenClaw turn (tests/fixtures/openclaw/turn-local-main.json, ~60 KB, 12 tools) through one
ClawGate to a mock speaking OpenAI chat completions (pass-through), Gemini (google-genai) and
Anthropic, streamed and not, interleaved round-robin so drift hits every mode alike.

The mocks (tests/python/native_mocks.py, plus an OpenAI one here) answer the same short text
from pre-rendered bytes. Printed: p50 and mean per mode, and each translated mode minus the
pass-through one with the same `stream`. Loopback only; nothing is asserted.

Usage: bench/translate_e2e.py [--binary target/release/clawgate] [-n 400]
"""

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))
from native_mocks import NativeMock  # noqa: E402

TEXT = "Hello! I'm ready to help with your workspace."


def openai_mock():
    whole = json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28}}).encode()
    chunks = []
    for i, w in enumerate(TEXT.split(" ")):
        delta = {"content": w if i == 0 else " " + w}
        chunks.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    chunks.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle plus the peer's
        # delayed ACK adds ~40 ms to every answer.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            if body.get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for e in events:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(e), e))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(whole)))
                self.end_headers()
                self.wfile.write(whole)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "target" / "release" / "clawgate"))
    ap.add_argument("-n", type=int, default=400, help="requests per mode")
    args = ap.parse_args()

    from native_mocks import Answer
    words = TEXT.split(" ")
    pieces = tuple(w if i == 0 else " " + w for i, w in enumerate(words))
    gem, claude = NativeMock("gemini", "gem"), NativeMock("anthropic", "claude")
    # Every request gets the same answer.
    for m in (gem, claude):
        m.script.get_nowait = lambda: Answer(text=pieces)  # type: ignore[assignment]
        m.received = type("Discard", (), {"append": lambda self, x: None})()
    oai = openai_mock()

    work = Path(tempfile.mkdtemp())
    (work / "rules").mkdir()
    timeouts = "{connect_s: 1, read_s: 10, first_byte_s: 10, idle_s: 10}"
    (work / "config.yaml").write_text(
        "server: { host: 127.0.0.1, port: 0, log_level: warn }\nproviders:\n"
        f"  oai:\n    backend: openai-compat\n    base_url: http://127.0.0.1:{oai.server_address[1]}/v1\n"
        f"    api_key: none\n    model: m\n    timeout: {timeouts}\n"
        f"  gem:\n    backend: google-genai\n    base_url: {gem.base_url}\n    api_key: k\n    model: gemini-2.5-flash\n    timeout: {timeouts}\n"
        f"  claude:\n    backend: anthropic\n    base_url: {claude.base_url}\n    api_key: k\n    model: claude-sonnet-4-5\n    timeout: {timeouts}\n"
        "fallback_chain: [oai]\nmetrics: { enabled: false }\n")
    proc = subprocess.Popen(
        [args.binary, "--config", str(work / "config.yaml"), "--rules", str(work / "rules"), "--port", "0"],
        cwd=work, env={"PATH": os.environ.get("PATH", ""), "RUST_LOG": "clawgate=info"},
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url = None
    for line in proc.stderr:
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if m:
            url = (m.group(1), int(m.group(2)))
            break
    if not url:
        sys.exit("clawgate did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()

    body = json.loads((REPO / "tests/fixtures/openclaw/turn-local-main.json").read_text())["body"]
    modes = [(model, stream) for stream in (False, True) for model in ("oai", "gem", "claude")]
    payloads = {}
    for model, stream in modes:
        b = dict(body, model=model, stream=stream)
        b.pop("stream_options", None)
        payloads[(model, stream)] = json.dumps(b).encode()
    conn = http.client.HTTPConnection(*url)
    headers = {"content-type": "application/json"}

    def once(mode):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", payloads[mode], headers)
        resp = conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - t0
        assert resp.status == 200 and resp.getheader("x-clawgate-provider") == mode[0], (mode, resp.status, data[:300])
        return elapsed

    for _ in range(30):  # warm-up
        for mode in modes:
            once(mode)
    times = {mode: [] for mode in modes}
    for _ in range(args.n):
        for mode in modes:
            times[mode].append(once(mode))
    proc.terminate()
    proc.wait()

    print(f"{args.n} requests per mode, body {len(payloads[('oai', False)])} bytes, {len(body.get('tools', []))} tools")
    print(f"{'mode':<18} {'p50 µs':>8} {'mean µs':>8} {'+p50 vs oai':>12}")
    for model, stream in modes:
        t = times[(model, stream)]
        p50 = statistics.median(t) * 1e6
        base = statistics.median(times[("oai", stream)]) * 1e6
        label = f"{model} {'stream' if stream else 'whole'}"
        extra = "" if model == "oai" else f"{p50 - base:+.0f}"
        print(f"{label:<18} {p50:>8.0f} {statistics.mean(t) * 1e6:>8.0f} {extra:>12}")


if __name__ == "__main__":
    main()
