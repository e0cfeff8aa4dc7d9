#!/usr/bin/env python3
"""Hot-reload measurements against a release ClawGate on loopback (one run):

1. time from a rule-file write to the new table serving (p50/p99 over 100 edits),
2. compile+swap time of 1,000 rules (`compile_ms` of POST /admin/reload; `took_ms` adds reading
   the files twice, 20 ms apart, to wait out half-written ones),
3. request latency during a reload storm versus quiet (wrk, same run).

Usage: bench/reload.py [--binary target/release/clawgate] [--mock target/release/examples/mock_upstream]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

IDS = ["deepseek-chat", "deepseek-reasoner", "gemini-flash-lite", "gemini-flash", "openrouter-fallback"]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def post(url):
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wrk(url, seconds, lua):
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", lua, url], capture_output=True, text=True).stdout
    return re.search(r"RESULT (.*)", out).group(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/clawgate")
    ap.add_argument("--mock", default="target/release/examples/mock_upstream")
    args = ap.parse_args()
    args.binary, args.mock = os.path.abspath(args.binary), os.path.abspath(args.mock)
    work = tempfile.mkdtemp()
    mock = subprocess.Popen([args.mock, "--port", "19101"], stderr=subprocess.DEVNULL)
    cfg = "server: { host: 127.0.0.1, port: 19190, log_level: warn }\nproviders:\n"
    for i in IDS:
        cfg += f"  {i}:\n    base_url: http://127.0.0.1:19101/v1\n    api_key: none\n    model: {i}\n"
    cfg += "fallback_chain: [deepseek-chat]\nmetrics: { enabled: false }\n"
    open(f"{work}/config.yaml", "w").write(cfg)
    os.mkdir(f"{work}/rules")
    rules = f"{work}/rules/10-bench.rules"
    open(rules, "w").write('layer static {\n  rule v0 when model == "bench" route deepseek-chat\n}\ndefault route deepseek-chat\n')
    gate = subprocess.Popen([args.binary, "--config", f"{work}/config.yaml", "--rules", f"{work}/rules"],
                            cwd=work, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:19190"
    try:
        for _ in range(100):
            try:
                get(base + "/health")
                break
            except Exception:
                time.sleep(0.05)

        # 1. write -> serving
        delays = []
        for i in range(1, 101):
            gen = get(base + "/health")["rules"]["generation"]
            t0 = time.perf_counter()
            open(rules, "w").write(f'layer static {{\n  rule v{i} when model == "bench" route deepseek-chat\n}}\ndefault route deepseek-chat\n')
            while get(base + "/health")["rules"]["generation"] == gen:
                time.sleep(0.002)
            delays.append((time.perf_counter() - t0) * 1000)
        print(f"write -> new table serving, 100 edits: p50 {pct(delays, 50):.0f} ms, p99 {pct(delays, 99):.0f} ms "
              f"(includes the {200} ms debounce and a 20 ms settle check)")

        # 2. 1,000 rules: compile + swap
        lines = ['keywords k { "alpha", "beta", "gamma delta" }', "layer heuristic {"]
        for i in range(1000):
            kind = i % 4
            cond = [f'model == "m{i}"', f'last_user contains "word{i}"', f"tokens > {i * 10} and score(k) >= 2",
                    f"last_user matches /item{i}[0-9]+/"][kind]
            lines.append(f"  rule r{i} when {cond} route {IDS[i % len(IDS)]}")
        lines += ["}", "default route deepseek-chat"]
        open(rules, "w").write("\n".join(lines) + "\n")
        time.sleep(0.6)
        reports = [post(base + "/admin/reload") for _ in range(10)]
        took = [r["took_ms"] for r in reports]
        compiled = [r["compile_ms"] for r in reports]
        h = get(base + "/health")["rules"]
        print(f"1,000 rules ({h['rules']} loaded): parse + check + compile + swap median {statistics.median(compiled):.1f} ms, "
              f"max {max(compiled):.1f} ms; whole reload with the settle re-read median {statistics.median(took):.1f} ms")

        # 3. latency quiet vs during a reload storm
        lua = f"{work}/post.lua"
        open(lua, "w").write('wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\n'
                             'wrk.body=\'{"model":"auto","messages":[{"role":"user","content":"hello"}]}\'\n'
                             'done=function(s,l,r) io.write(string.format("RESULT rps=%.0f p50=%.3fms p99=%.3fms max=%.3fms errors=%d\\n",'
                             's.requests/(s.duration/1e6), l:percentile(50)/1000, l:percentile(99)/1000, l.max/1000,'
                             's.errors.status+s.errors.connect+s.errors.read+s.errors.timeout)) end\n')
        print("quiet:       ", wrk(base + "/v1/chat/completions", 5, lua))
        stop = threading.Event()

        def storm():
            n = 0
            while not stop.is_set():
                n += 1
                open(rules, "w").write("\n".join(lines).replace("r0 when", f"s{n} when") + "\n")
                post(base + "/admin/reload")
        t = threading.Thread(target=storm)
        t.start()
        print("reload storm:", wrk(base + "/v1/chat/completions", 5, lua))
        stop.set()
        t.join()
    finally:
        gate.terminate()
        mock.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
