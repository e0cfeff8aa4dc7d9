"""Claude Code itself (npm `@anthropic-ai/claude-code`, its `claude -p` print mode) with
ANTHROPIC_BASE_URL pointing at ClawGate, completing a turn that uses a tool: the model (a mock)
asks to Read a file, Claude Code reads it and sends the result back, and the model's answer is
what `claude -p` prints. Once against an Anthropic upstream (passed through) and once against an
OpenAI-compatible one (Claude Code's traffic on a cheaper model: translated both ways).

Claude Code is installed from the npm registry into target/claude-code on first use (about
250 MB, its native binary comes as an npm package). Without Node.js and npm, or when the
install fails, the tests are skipped with the reason, unless CLAWGATE_REQUIRE_CLAUDE_CODE=1 (as CI
sets it, having installed Node.js and npm): then they fail."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, Gate, Mock, TRANSLATED_TIMEOUTS, provider_yaml
from native_mocks import Answer, NativeMock

VERSION = "2.1.197"
PREFIX = REPO / "target" / "claude-code"
SECRET = "the launch code is pineapple-42"


def unavailable(why):
    if os.environ.get("CLAWGATE_REQUIRE_CLAUDE_CODE") == "1":
        pytest.fail(f"Claude Code is required (CLAWGATE_REQUIRE_CLAUDE_CODE=1): {why}")
    pytest.skip(why)


def claude_binary():
    """Claude Code's `claude`, installed on first use; skips the test when it cannot be."""
    binary = PREFIX / "node_modules" / ".bin" / "claude"
    stamp = PREFIX / f"installed-{VERSION}"
    if binary.exists() and stamp.exists():
        return binary
    if shutil.which("npm") is None or shutil.which("node") is None:
        unavailable("Claude Code needs Node.js and npm (Debian: apt install nodejs npm)")
    PREFIX.mkdir(parents=True, exist_ok=True)
    lock = PREFIX / "install.lock"
    deadline = time.monotonic() + 600
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL)
            os.close(fd)
            break
        except FileExistsError:
            if binary.exists() and stamp.exists():
                return binary
            # A killed install leaves its lock behind: older than any install takes, it is stale.
            if time.time() - lock.stat().st_mtime > 600 or time.monotonic() > deadline:
                lock.unlink(missing_ok=True)
            time.sleep(1)
    try:
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX),
             f"@anthropic-ai/claude-code@{VERSION}"],
            capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not binary.exists():
            unavailable(f"npm could not install Claude Code: {done.stderr.strip()[-300:]}")
        check = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            unavailable(f"Claude Code does not run here: {check.stderr.strip()[-300:]}")
        stamp.write_text(check.stdout)
    finally:
        lock.unlink(missing_ok=True)
    return binary


def wants_tool_result(messages):
    """Whether the conversation's last message returns a tool's result (either API)."""
    if not messages:
        return False
    last = messages[-1]
    if last.get("role") == "tool":
        return True
    content = last.get("content")
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def tool_names(body):
    """Tool names of an Anthropic or an OpenAI request."""
    return [t.get("name") or (t.get("function") or {}).get("name") for t in body.get("tools") or []]


def gate_dir(tmp_path):
    d = tmp_path / "gate"
    d.mkdir()
    return d


def run_claude(gate, workdir, home):
    env = dict(os.environ, ANTHROPIC_BASE_URL=gate.url, ANTHROPIC_API_KEY="sk-ant-local", HOME=str(home),
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1",
               DISABLE_ERROR_REPORTING="1", DISABLE_AUTOUPDATER="1")
    return subprocess.run([str(claude_binary()), "-p", "What does note.txt say? Read it."],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def workdir(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "note.txt").write_text(SECRET + "\n")
    home = tmp_path / "home"
    home.mkdir()
    return work, home


def test_claude_code_completes_a_tool_turn_through_an_anthropic_upstream(tmp_path, workdir):
    claude_binary()
    work, home = workdir

    def respond(body):
        if wants_tool_result(body.get("messages")):
            results = json.dumps(body["messages"][-1]["content"])
            said = "pineapple-42" if "pineapple-42" in results else "nothing"
            return Answer(text=(f"The note says {said}.",))
        if "Read" in tool_names(body):
            return Answer(calls=(("Read", {"file_path": str(work / "note.txt")}),))
        return Answer(text=("ok",))

    upstream = NativeMock("anthropic", "claude", respond)
    config = ("server:\n  host: 127.0.0.1\n  port: 0\nproviders:\n"
              f"  claude:\n    backend: anthropic\n    base_url: \"{upstream.base_url}\"\n"
              f"    api_key: anthropic-test-key\n    model: claude-sonnet-4-5\n    timeout: {TRANSLATED_TIMEOUTS}\n"
              "fallback_chain: [claude]\n")
    gate = Gate(config, gate_dir(tmp_path))
    try:
        done = run_claude(gate, work, home)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "The note says pineapple-42." in done.stdout, (done.stdout, done.stderr[-2000:])
        turns = [r for r in upstream.received if r["path"].endswith("/messages")]
        # The tool's result reached the model: Claude Code really read the file.
        assert any(wants_tool_result(r["body"]["messages"]) for r in turns)
        # Passed through: Claude Code's own request reaches Anthropic's API, tools and all.
        assert all(r["headers"].get("x-api-key") == "anthropic-test-key" for r in turns)
        assert any(len(r["body"].get("tools") or []) > 10 for r in turns)
    finally:
        gate.stop()
        upstream.stop()


def test_claude_code_completes_a_tool_turn_on_an_openai_compatible_model(tmp_path, workdir):
    claude_binary()
    work, home = workdir

    def respond(body):
        if wants_tool_result(body.get("messages")):
            said = "pineapple-42" if "pineapple-42" in json.dumps(body["messages"][-1]) else "nothing"
            return ("answer", f"The note says {said}.")
        if "Read" in tool_names(body):
            return ("tools", [("Read", {"file_path": str(work / "note.txt")})])
        return ("answer", "ok")

    upstream = Mock("deepseek", respond)
    config = ("server:\n  host: 127.0.0.1\n  port: 0\nproviders:\n"
              + provider_yaml("deepseek", upstream)
              + "    max_tokens: 8000\nfallback_chain: [deepseek]\n")
    gate = Gate(config, gate_dir(tmp_path))
    try:
        done = run_claude(gate, work, home)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "The note says pineapple-42." in done.stdout, (done.stdout, done.stderr[-2000:])
        turns = [r["body"] for r in upstream.received]
        # Translated: the upstream saw OpenAI chat requests, the tool result as a `tool` message.
        assert any(m.get("role") == "tool" and "pineapple-42" in json.dumps(m)
                   for b in turns for m in b["messages"])
        assert any(t.get("type") == "function" for b in turns for t in b.get("tools") or [])
    finally:
        gate.stop()
        upstream.stop()
