#!/usr/bin/env bash
# ClawGate's added latency, throughput, first-byte time and memory, against the upstream called
# directly and against a plain reverse proxy, all measured in one run on this machine.
#
#   bench/load.sh [--reference nginx] [--peer litellm] [--rates "500 1000 5000"]
#                 [--duration 10s] [--repeat 1] [--long 60] [--no-memory]
#
# Starts the release mock upstream (examples/mock_upstream.rs) and a release ClawGate whose
# providers are all that mock, then measures with wrk (fixed rates are held by wrk's per-request
# delay over a fixed connection count, each delay drawn at random around the mean so that the
# connections do not move in step; saturation is closed-loop):
#   - direct to the mock, through nginx (--reference nginx, a keep-alive reverse proxy of the
#     same mock), through ClawGate with a direct provider id, through LiteLLM's proxy
#     (--peer litellm, installed from PyPI into a throwaway virtualenv), at each rate and at
#     saturation, with a small body;
#   - the same with a real 64 KB OpenClaw request (tools, streamed), ClawGate deciding with `auto`
#     and the stock rules;
#   - time to a stream's first byte, direct vs through each proxy (the upstream then waits
#     before its next chunk, so the first byte cannot hide behind the rest);
#   - ClawGate's RSS idle, with 1,000 concurrent streams, after them, and its slope over a long
#     saturating run.
# With --repeat N the rate and saturation runs are repeated N times, the paths taking turns, and
# every cell is the median of its N runs (on a noisy machine one run's ratios mislead).
# Prints one table per section with ratios to the direct path. Loopback only; ClawGate runs
# with metrics on (a temp database), as users run it. Set SKIP_BUILD=1 to reuse the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

REFERENCE="" PEER="" RATES="500 1000 5000" DURATION=10s REPEAT=1 LONG=60 MEMORY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reference) REFERENCE="$2"; shift 2 ;;
    --peer) PEER="$2"; shift 2 ;;
    --rates) RATES="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --long) LONG="$2"; shift 2 ;;
    --no-memory) MEMORY=""; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -z "$REFERENCE" ] || [ "$REFERENCE" = nginx ] || { echo "--reference: only nginx" >&2; exit 2; }
[ -z "$PEER" ] || [ "$PEER" = litellm ] || { echo "--peer: only litellm" >&2; exit 2; }
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "--repeat: a positive count" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }
if [ -n "$REFERENCE" ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "nginx is required for --reference nginx: apt-get install -y nginx-light" >&2; exit 2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --example mock_upstream --bin clawgate
MOCK=19001 SLOW=19002 GATE=19090 NGX=19091 LLM=19092
# Every request carries this bearer key: LiteLLM's proxy refuses to start without a master key;
# the mock, nginx and ClawGate (no server.api_key) ignore it.
KEY="sk-bench-$RANDOM$RANDOM"
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  # shellcheck disable=SC2046 # one pid per word
  kill $(jobs -p) 2>/dev/null || true
  if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_up() { # url log
  for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "did not start: $1" >&2; tail -20 "$2" >&2; return 1
}

# --- the upstreams: a fast one, and a slow streamer (100 chunks, 100 ms apart: 10 s streams)
target/release/examples/mock_upstream --port "$MOCK" 2>"$work/mock.log" &
target/release/examples/mock_upstream --port "$SLOW" --chunks 100 --chunk-delay-ms 100 2>"$work/slow.log" &

# --- ClawGate: the stock provider ids, all played by the mock, so the stock rules route as usual
{
  echo "server: { host: 127.0.0.1, port: $GATE, log_level: warn }"
  echo "providers:"
  for id in deepseek-chat deepseek-reasoner gemini-flash-lite gemini-flash openrouter-fallback; do
    printf '  %s:\n    backend: openai-compat\n    base_url: http://127.0.0.1:%s/v1\n    api_key: none\n    model: %s\n' "$id" "$MOCK" "$id"
  done
  printf '  slow-stream:\n    backend: openai-compat\n    base_url: http://127.0.0.1:%s/v1\n    api_key: none\n    model: slow\n    timeout: { read_s: 60 }\n' "$SLOW"
  echo "fallback_chain: [deepseek-chat, deepseek-reasoner, gemini-flash, openrouter-fallback]"
  # As in the stock config, the database lives outside the config's directory (which is watched).
  echo "metrics: { enabled: true, db_path: $work/db/clawgate.db }"
} >"$work/config.yaml"
CLAWGATE_LOG_LEVEL=warn target/release/clawgate --config "$work/config.yaml" --rules rules 2>"$work/gate.log" &
GATE_PID=$!
wait_up "http://127.0.0.1:$GATE/health" "$work/gate.log" || exit 1
sleep 1
IDLE_RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$GATE_PID/status")

# --- nginx: a keep-alive reverse proxy of the same mocks, unbuffered (as SSE needs)
if [ -n "$REFERENCE" ]; then
  mkdir -p "$work/nginx"
  cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  client_max_body_size 20m;
  client_body_buffer_size 1m;
  upstream mock { server 127.0.0.1:$MOCK; keepalive 128; }
  upstream slow { server 127.0.0.1:$SLOW; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    location /slow/ { proxy_pass http://slow/; }
    location / { proxy_pass http://mock; }
  }
}
NGINX
  "$NGINX" -c "$work/nginx.conf" -p "$work/nginx" 2>"$work/nginx/start.log" &
  wait_up "http://127.0.0.1:$NGX/v1/models" "$work/nginx/start.log" || true
fi

# --- LiteLLM's proxy, from PyPI, in a throwaway virtualenv
if [ -n "$PEER" ]; then
  venv=${LITELLM_VENV:-$HOME/.cache/clawgate-bench/litellm-venv}
  if [ ! -x "$venv/bin/litellm" ]; then
    echo "installing litellm[proxy] into $venv ..." >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'litellm[proxy]' >&2
  fi
  cat >"$work/litellm.yaml" <<YAML
model_list:
  - model_name: deepseek-chat
    litellm_params: { model: openai/deepseek-chat, api_base: "http://127.0.0.1:$MOCK/v1", api_key: none }
  - model_name: slow
    litellm_params: { model: openai/slow, api_base: "http://127.0.0.1:$SLOW/v1", api_key: none }
litellm_settings: { telemetry: false, drop_params: true }
YAML
  LITELLM_MASTER_KEY=$KEY LITELLM_TELEMETRY=False LITELLM_LOG=ERROR "$venv/bin/litellm" \
    --config "$work/litellm.yaml" --host 127.0.0.1 --port "$LLM" --num_workers 1 >"$work/litellm.log" 2>&1 &
  wait_up "http://127.0.0.1:$LLM/health/liveliness" "$work/litellm.log" || { echo "litellm did not start: leaving it out" >&2; PEER=""; }
fi

# --- request bodies
small='{"model":"deepseek-chat","messages":[{"role":"user","content":"Say hello"}]}'
printf '%s' "$small" >"$work/small.json"
python3 - "$work/openclaw.json" <<'PY'
import json, sys
rec = json.load(open("tests/fixtures/openclaw/turn-local-main.json"))
body = rec.get("body", rec)
body["model"] = "auto"
open(sys.argv[1], "w").write(json.dumps(body))
PY
printf '%s' '{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"Tell a long story"}]}' >"$work/slow.json"

# wrk script: $1 body file, $2 per-request delay in ms (0: closed loop)
mk_lua() {
  cat >"$work/wrk-$3.lua" <<LUA
local f = io.open("$1", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
local pause = $2
-- Each pause is drawn from [pause/2, 3*pause/2] (the same mean, so the same rate). A fixed
-- pause keeps the connections in step, so requests would arrive in bursts of one per
-- connection and p50 would measure how fast a burst is worked off, not what a request adds.
if pause > 0 then function delay() return math.random(math.floor(pause / 2), math.floor(pause * 3 / 2)) end end
done = function(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.3f %.3f %.3f %.3f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, errs))
end
LUA
}

declare -A P50 P99 RPS
# measure LABEL KEY URL BODY RATE CONNS: one wrk run, kept for its row; RATE "sat" = closed loop
measure() {
  local label=$1 key=$2 url=$3 body=$4 rate=$5 conns=$6 pause=0 name
  [ "$rate" = sat ] || pause=$(awk -v c="$conns" -v r="$rate" 'BEGIN { printf "%d", c * 1000 / r }')
  name="$key-$rate"
  mk_lua "$body" "$pause" "$name"
  [ -f "$work/runs-$name" ] || printf '%s\t%s\t%s\n' "$name" "$label" "$rate" >>"$work/rows"
  wrk -t1 -c"$conns" -d"$DURATION" --timeout 10s -s "$work/wrk-$name.lua" "$url" |
    grep '^RESULT' >>"$work/runs-$name" || echo "RESULT 0 0 0 0 0 -1" >>"$work/runs-$name"
}
# rows: one table row per measured path and rate, each cell the median of its runs (errors
# summed), in the order first measured; then forgets them for the next table
rows() {
  local name label rate rps p50 p90 p99 max errs
  while IFS=$'\t' read -r name label rate; do
    read -r rps p50 p90 p99 max errs < <(awk '
      { for (i = 2; i <= 6; i++) v[i, NR] = $i; errs += $7 }
      END {
        for (i = 2; i <= 6; i++) {
          n = 0; for (r = 1; r <= NR; r++) col[++n] = v[i, r]
          for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++) if (col[b] + 0 < col[a] + 0) { t = col[a]; col[a] = col[b]; col[b] = t }
          m = (n % 2) ? col[(n + 1) / 2] : (col[n / 2] + col[n / 2 + 1]) / 2
          fmt = (i == 2) ? "%.0f " : "%.3f "
          printf fmt, m
        }
        print errs
      }' "$work/runs-$name")
    P50[$name]=$p50 P99[$name]=$p99 RPS[$name]=$rps
    printf '| %-30s | %6s | %7s | %7s | %7s | %7s | %8s | %s |\n' "$label" "$rate" "$rps" "$p50" "$p90" "$p99" "$max" "$errs"
  done <"$work/rows"
  rm -f "$work/rows"
}
header() {
  echo
  echo "### $1"
  echo
  echo "| path                           |   rate |   req/s | p50 ms  | p90 ms  | p99 ms  |   max ms | errors |"
  echo "|--------------------------------|--------|---------|---------|---------|---------|----------|--------|"
}
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (a - b) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

conns_for() { case "$1" in sat) echo 32 ;; *) awk -v r="$1" 'BEGIN { c = int(r / 62.5); if (c < 4) c = 4; print c }' ;; esac; }

echo "# ClawGate load run: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')$( [ "$REPEAT" = 1 ] || echo ", medians of $REPEAT runs")"
echo "(load generator, mock upstream and proxies all on this machine; loopback only)"

URL_D="http://127.0.0.1:$MOCK/v1/chat/completions"
URL_N="http://127.0.0.1:$NGX/v1/chat/completions"
URL_G="http://127.0.0.1:$GATE/v1/chat/completions"
URL_L="http://127.0.0.1:$LLM/v1/chat/completions"

header "Small body (direct provider id), fixed rates and saturation"
for _ in $(seq "$REPEAT"); do
  for rate in $RATES sat; do
    c=$(conns_for "$rate")
    measure "direct (mock)" d "$URL_D" "$work/small.json" "$rate" "$c"
    [ -z "$REFERENCE" ] || measure "nginx reverse proxy" n "$URL_N" "$work/small.json" "$rate" "$c"
    measure "clawgate" g "$URL_G" "$work/small.json" "$rate" "$c"
  done
done
if [ -n "$PEER" ]; then
  measure "litellm proxy" l "$URL_L" "$work/small.json" 50 4
  measure "litellm proxy" l "$URL_L" "$work/small.json" sat 8
  measure "clawgate" g "$URL_G" "$work/small.json" 50 4
  measure "direct (mock)" d "$URL_D" "$work/small.json" 50 4
fi
rows

header "OpenClaw request (64 KB, 12 tools, streamed; clawgate: model auto, stock rules)"
for _ in $(seq "$REPEAT"); do
  for rate in 1000 sat; do
    c=$(conns_for "$rate")
    measure "direct (mock)" od "$URL_D" "$work/openclaw.json" "$rate" "$c"
    [ -z "$REFERENCE" ] || measure "nginx reverse proxy" on "$URL_N" "$work/openclaw.json" "$rate" "$c"
    measure "clawgate auto" og "$URL_G" "$work/openclaw.json" "$rate" "$c"
  done
done
rows

echo
echo "### Added latency and throughput, relative"
echo
echo "| measure | clawgate | nginx | clawgate / nginx | target |"
echo "|---|---|---|---|---|"
for rate in $RATES; do
  for q in 50 99; do
    if [ "$q" = 50 ]; then g=${P50[g-$rate]} d=${P50[d-$rate]} n=${P50[n-$rate]:-}; else g=${P99[g-$rate]} d=${P99[d-$rate]} n=${P99[n-$rate]:-}; fi
    ga=$(added "$g" "$d")
    if [ -n "$n" ]; then na=$(added "$n" "$d"); r=$(ratio "$ga" "$na"); else na="-"; r="-"; fi
    echo "| added p$q at $rate req/s (ms) | $ga | $na | $r | ≤ 1.25 × nginx |"
  done
done
gs=${RPS[g-sat]} ds=${RPS[d-sat]} ns=${RPS[n-sat]:-}
echo "| saturation req/s (÷ direct) | $gs ($(ratio "$gs" "$ds")) | ${ns:--} ($( [ -n "$ns" ] && ratio "$ns" "$ds" || echo -)) | $( [ -n "$ns" ] && ratio "$gs" "$ns" || echo -) | ≥ 0.90 × nginx |"
gs=${RPS[og-sat]} ds=${RPS[od-sat]} ns=${RPS[on-sat]:-}
echo "| OpenClaw body, saturation req/s (÷ direct) | $gs ($(ratio "$gs" "$ds")) | ${ns:--} ($( [ -n "$ns" ] && ratio "$ns" "$ds" || echo -)) | $( [ -n "$ns" ] && ratio "$gs" "$ns" || echo -) | |"
if [ -n "$PEER" ]; then
  echo "| litellm: added p50 at 50 req/s (ms) | clawgate $(added "${P50[g-50]}" "${P50[d-50]}") | litellm $(added "${P50[l-50]}" "${P50[d-50]}") | | |"
  echo "| litellm: saturation req/s | clawgate ${RPS[g-sat]} | litellm ${RPS[l-sat]} | clawgate / litellm $(ratio "${RPS[g-sat]}" "${RPS[l-sat]}") | ≥ 100× |"
fi

# --- time to first byte of a stream: the slow mock sends its first event at once, then waits
echo
echo "### Stream time to first byte (200 sequential streams each; ms)"
echo
ttfb() { # url model
  python3 - "$1" "$2" "$KEY" <<'PY'
import http.client, json, statistics, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
body = json.dumps({"model": sys.argv[2], "stream": True, "messages": [{"role": "user", "content": "hi"}]})
out = []
for i in range(200):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    t = time.perf_counter()
    c.request("POST", u.path, body, {"Content-Type": "application/json", "Authorization": "Bearer " + sys.argv[3]})
    r = c.getresponse()
    r.read1(1)  # the first body byte
    out.append((time.perf_counter() - t) * 1000)
    c.close()
out.sort()
print(f"{statistics.median(out):.3f} {out[int(len(out) * 0.99) - 1]:.3f}")
PY
}
echo "| path | p50 | p99 | added p50 |"
echo "|---|---|---|---|"
read -r td td99 <<<"$(ttfb "http://127.0.0.1:$SLOW/v1/chat/completions" slow)"
echo "| direct (mock) | $td | $td99 | |"
if [ -n "$REFERENCE" ]; then
  read -r tn tn99 <<<"$(ttfb "http://127.0.0.1:$NGX/slow/v1/chat/completions" slow)"
  echo "| nginx | $tn | $tn99 | $(added "$tn" "$td") |"
fi
read -r tg tg99 <<<"$(ttfb "http://127.0.0.1:$GATE/v1/chat/completions" slow-stream)"
echo "| clawgate | $tg | $tg99 | $(added "$tg" "$td") (target < 1 ms) |"
if [ -n "$PEER" ]; then
  read -r tl tl99 <<<"$(ttfb "http://127.0.0.1:$LLM/v1/chat/completions" slow)"
  echo "| litellm | $tl | $tl99 | $(added "$tl" "$td") |"
fi

# --- memory
if [ -n "$MEMORY" ]; then
  rss() { awk '/^VmRSS/ { print $2 }' "/proc/$GATE_PID/status"; }
  echo
  echo "### ClawGate memory (RSS, MB)"
  echo
  before=$(rss)
  # 1,000 concurrent 10-second streams, sampled every half second
  mk_lua "$work/slow.json" 0 streams
  wrk -t2 -c1000 -d20s --timeout 30s -s "$work/wrk-streams.lua" "$URL_G" >"$work/streams.out" 2>&1 &
  wrk_pid=$!
  peak=0 open_max=0
  while kill -0 "$wrk_pid" 2>/dev/null; do
    r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
    o=$(ss -Htn state established "( sport = :$GATE )" 2>/dev/null | wc -l); [ "$o" -gt "$open_max" ] && open_max=$o
    sleep 0.5
  done
  sleep 12  # let the last streams finish
  after=$(rss)
  # a long saturating run: RSS every 2 s, least-squares slope over the second half
  mk_lua "$work/openclaw.json" 0 long
  wrk -t1 -c32 -d"${LONG}s" -s "$work/wrk-long.lua" "$URL_G" >/dev/null 2>&1 &
  wrk_pid=$!
  : >"$work/rss.txt"
  t0=$(date +%s.%N)
  while kill -0 "$wrk_pid" 2>/dev/null; do
    echo "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }') $(rss)" >>"$work/rss.txt"
    sleep 2
  done
  slope=$(awk -v half="$((LONG / 2))" '$1 >= half { n++; sx += $1; sy += $2; sxy += $1 * $2; sxx += $1 * $1 }
    END { if (n > 2) printf "%.1f", (n * sxy - sx * sy) / (n * sxx - sx * sx) * 60; else print "n/a" }' "$work/rss.txt")
  last=$(tail -1 "$work/rss.txt" | awk '{ print $2 }')
  mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
  echo "| measure | RSS | target |"
  echo "|---|---|---|"
  echo "| idle, after start-up | $(mb "$IDLE_RSS") | < 20 |"
  echo "| before the streams (after the runs above) | $(mb "$before") | |"
  echo "| peak with 1,000 concurrent streams ($open_max client connections open at most) | $(mb "$peak") | < 60 |"
  echo "| after the streams | $(mb "$after") | |"
  echo "| end of a ${LONG} s saturating OpenClaw run | $(mb "$last") | |"
  echo "| slope over its second half | $slope KB/min | ~0 |"
  grep -E "requests in|Non-2xx|Socket errors" "$work/streams.out" | sed 's/^/    streams: /'
fi
