#!/usr/bin/env bash
# Added latency of ClawGate over calling the upstream directly, measured in one run with wrk.
#
#   bench/load.sh [RATE ...]      default rates: 500 1000; plus saturation
#
# Starts the release mock upstream (examples/mock_upstream.rs) and a release ClawGate whose only
# provider is that mock, then for each rate runs wrk2-style constant load with wrk (open loop
# is approximated by a fixed connection count and duration) against: the mock directly, ClawGate
# with a direct provider id, and ClawGate with `auto`. Prints p50/p90/p99 and requests/s.
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --example mock_upstream --bin clawgate
MOCK_PORT=${MOCK_PORT:-19001}
GATE_PORT=${GATE_PORT:-19090}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

target/release/examples/mock_upstream --port "$MOCK_PORT" 2>"$work/mock.log" &
{
  echo "server: { host: 127.0.0.1, port: $GATE_PORT, log_level: warn }"
  echo "providers:"
  # The stock provider ids, all played by the mock, so the stock rules route as they would.
  for id in deepseek-chat deepseek-reasoner gemini-flash-lite gemini-flash openrouter-fallback; do
    printf '  %s:\n    backend: openai-compat\n    base_url: http://127.0.0.1:%s/v1\n    api_key: none\n    model: %s\n' "$id" "$MOCK_PORT" "$id"
  done
  echo "fallback_chain: [deepseek-chat, deepseek-reasoner, gemini-flash, openrouter-fallback]"
  echo "metrics: { enabled: false }"
} > "$work/config.yaml"
mkdir -p "$work/rules"
RULES_DIR=${RULES_DIR:-rules}
CLAWGATE_LOG_LEVEL=warn target/release/clawgate --config "$work/config.yaml" --rules "$RULES_DIR" 2>"$work/gate.log" &
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$GATE_PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$GATE_PORT/health" >/dev/null || { cat "$work/gate.log"; exit 1; }

body_small='{"model":"MODEL","messages":[{"role":"user","content":"Say hello"}]}'
mk_lua() { # $1 model
  local b=${body_small/MODEL/$1}
  cat > "$work/$1.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$b'
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50=%.3f p90=%.3f p99=%.3f max=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA
}
mk_lua deepseek-chat
mk_lua auto

run() { # name url lua threads conns
  local line
  line=$(wrk -t"$4" -c"$5" -d"$DURATION" -s "$3" "$2" | grep RESULT)
  printf '%-28s %s\n' "$1" "${line#RESULT }"
}

echo "wrk: $CONNS connections, $DURATION per path; latencies in ms"
run "direct (mock)"              "http://127.0.0.1:$MOCK_PORT/v1/chat/completions"  "$work/deepseek-chat.lua" 1 "$CONNS"
run "clawgate, direct id"         "http://127.0.0.1:$GATE_PORT/v1/chat/completions"  "$work/deepseek-chat.lua" 1 "$CONNS"
run "clawgate, auto (rules)"      "http://127.0.0.1:$GATE_PORT/v1/chat/completions"  "$work/auto.lua" 1 "$CONNS"
echo "single connection (latency, no queueing):"
run "direct (mock) c=1"          "http://127.0.0.1:$MOCK_PORT/v1/chat/completions"  "$work/deepseek-chat.lua" 1 1
run "clawgate, direct id c=1"   "http://127.0.0.1:$GATE_PORT/v1/chat/completions"  "$work/deepseek-chat.lua" 1 1
echo "clawgate RSS after load: $(ps -o rss= -p "$(pgrep -f "target/release/clawgate --config $work" | head -1)") KiB"
