#!/usr/bin/env bash
# What recording metrics costs a request: the same wrk load against two release ClawGates that
# differ only in `metrics.enabled` (on: a fresh redb file in a temp directory; off: counters
# only), in one run, alternating between them so that drift on a shared machine hits both.
#
#   bench/metrics_overhead.sh           ROUNDS=2 DURATION=10s CONNS=16 by default
#
# Starts the release mock upstream (examples/mock_upstream.rs), then for each round runs wrk with
# CONNS connections (throughput and tail under load) and with one connection (latency without
# queueing) against each gate. Prints p50/p90/p99 (ms) and requests/s per run, and at the end
# what the metrics gate wrote: events, drops, batches and the database size. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --example mock_upstream --bin clawgate
MOCK_PORT=${MOCK_PORT:-19101}
ON_PORT=${ON_PORT:-19191}
OFF_PORT=${OFF_PORT:-19192}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
ROUNDS=${ROUNDS:-2}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

target/release/examples/mock_upstream --port "$MOCK_PORT" 2>"$work/mock.log" &

config() { # $1 port, $2 metrics line
  echo "server: { host: 127.0.0.1, port: $1, log_level: warn }"
  echo "providers:"
  for id in deepseek-chat deepseek-reasoner gemini-flash-lite gemini-flash openrouter-fallback; do
    printf '  %s:\n    backend: openai-compat\n    base_url: http://127.0.0.1:%s/v1\n    api_key: none\n    model: %s\n    pricing: { input: 0.27, output: 1.10 }\n' "$id" "$MOCK_PORT" "$id"
  done
  echo "fallback_chain: [deepseek-chat, deepseek-reasoner, gemini-flash, openrouter-fallback]"
  echo "$2"
}
config "$ON_PORT" "metrics: { enabled: true, db_path: $work/on.db, retention_days: 0 }" > "$work/on.yaml"
config "$OFF_PORT" "metrics: { enabled: false }" > "$work/off.yaml"
target/release/clawgate --config "$work/on.yaml" --rules rules 2>"$work/on.log" &
target/release/clawgate --config "$work/off.yaml" --rules rules 2>"$work/off.log" &
for port in "$ON_PORT" "$OFF_PORT"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$work"/*.log; exit 1; }
done

# `auto`, so that every request goes through the rules as a real client's would.
cat > "$work/auto.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"auto","messages":[{"role":"user","content":"Say hello"}]}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50=%.3f p90=%.3f p99=%.3f max=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA

run() { # name port conns
  local line
  line=$(wrk -t1 -c"$3" -d"$DURATION" -s "$work/auto.lua" "http://127.0.0.1:$2/v1/chat/completions" | grep RESULT)
  printf '%-26s %s\n' "$1" "${line#RESULT }"
}

# Warm both up (connections, allocator, page cache) before measuring.
DURATION=2s run "warm-up metrics on" "$ON_PORT" "$CONNS" >/dev/null
DURATION=2s run "warm-up metrics off" "$OFF_PORT" "$CONNS" >/dev/null

echo "wrk: model auto, $DURATION per run, $ROUNDS rounds; latencies in ms"
for round in $(seq "$ROUNDS"); do
  # Alternate which goes first.
  if [ $((round % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
  for which in $order; do
    port=$ON_PORT; [ "$which" = off ] && port=$OFF_PORT
    run "r$round metrics $which c=$CONNS" "$port" "$CONNS"
  done
  for which in $order; do
    port=$ON_PORT; [ "$which" = off ] && port=$OFF_PORT
    run "r$round metrics $which c=1" "$port" 1
  done
done

metric() { curl -sf "http://127.0.0.1:$ON_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
sleep 0.5 # let the writer commit its last batch
written=$(metric clawgate_metrics_events_written_total)
echo "metrics gate: events written $written, dropped $(metric clawgate_metrics_events_dropped_total), batches $(metric clawgate_metrics_batches_total), write errors $(metric clawgate_metrics_write_errors_total)"
size=$(stat -c %s "$work/on.db")
echo "database: $size bytes = $(awk -v s="$size" -v n="$written" 'BEGIN { printf "%.0f", (n > 0 ? s / n : 0) }') bytes/event"
for which in on off; do
  pid=$(pgrep -f "target/release/clawgate --config $work/$which.yaml" | head -1)
  echo "clawgate metrics $which RSS after load: $(ps -o rss= -p "$pid") KiB"
done
