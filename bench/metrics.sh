#!/usr/bin/env bash
# Metric ingestion: `vigie run` against Prometheus, scraping the same targets in the same run.
#
#   bench/metrics.sh [TARGETS] [SERIES_PER_TARGET] [SECONDS]     (default 20 × 2000, 60 s)
#
# Serves TARGETS copies of a Prometheus text page of SERIES_PER_TARGET gauges (python3's
# http.server, values that change at each request), then runs, one after the other for SECONDS
# each, with a 1 s scrape interval:
#   - vigie run with `[scrape] targets = [...]` (series store in SQLite, 5-minute rollups);
#   - Debian's prometheus with the same scrape config (TSDB with its WAL).
# For each: samples ingested (vigie: counted in series.sqlite after a clean stop; prometheus:
# prometheus_tsdb_head_samples_appended_total), the CPU time the process used (utime+stime),
# hence samples/s per core, the series count, and bytes per series in memory (RSS growth over the
# idle process, divided by series) and on disk. Absolute numbers on a shared machine are noise;
# read the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS="${1:-20}"
SERIES="${2:-2000}"
SECONDS_RUN="${3:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"

if ! command -v prometheus >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus >/dev/null
fi
cargo build --release -q --bin vigie
VIGIE="$CARGO_TARGET_DIR/release/vigie"

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The targets: one python process serving TARGETS ports.
cat > "$tmp/targets.py" <<'EOF'
import http.server, socketserver, sys, threading, random
series = int(sys.argv[1]); ports = [int(p) for p in sys.argv[2:]]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        lines = ["# TYPE bench_gauge gauge"]
        base = random.random()
        for i in range(series):
            lines.append('bench_gauge{shard="%d",instance_port="%d"} %.3f' % (i, self.server.server_port, base + i % 17))
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200); self.send_header("content-type", "text/plain; version=0.0.4")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
for p in ports:
    threading.Thread(target=S(("127.0.0.1", p), H).serve_forever, daemon=True).start()
threading.Event().wait()
EOF
ports=()
for _ in $(seq "$TARGETS"); do ports+=("$(free_port)"); done
python3 "$tmp/targets.py" "$SERIES" "${ports[@]}" & pids+=($!)
sleep 1
urls=()
for p in "${ports[@]}"; do urls+=("\"http://127.0.0.1:$p/metrics\""); done
url_list=$(IFS=,; echo "${urls[*]}")

cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

# --- vigie ---------------------------------------------------------------------------------
vport=$(free_port)
mkdir -p "$tmp/vigie/rules"
cp rules/saturation.yml rules/saturation.test.yml "$tmp/vigie/rules/"
cat > "$tmp/vigie/vigie.toml" <<EOF
[data]
dir = "data"
[server]
listen = "127.0.0.1:$vport"
[analyzer]
rules = "rules"
[alerting]
on_call = ["bench@localhost"]
[scrape]
interval = "1s"
timeout = "1s"
targets = [$url_list]
EOF
# The saturation rules alone would leave the event rule set empty: add one event rule file.
cp rules/availability.yml "$tmp/vigie/rules/"
"$VIGIE" run --config "$tmp/vigie/vigie.toml" 2> "$tmp/vigie.log" & vpid=$!; pids+=($vpid)
sleep 2
v_idle_rss=$(rss_kib $vpid)
v_cpu0=$(cpu_seconds $vpid)
sleep "$SECONDS_RUN"
v_cpu1=$(cpu_seconds $vpid)
v_rss=$(rss_kib $vpid)
kill -TERM $vpid; wait $vpid || true
# Measured before the count: opening the database (WAL mode) creates its -wal/-shm files and
# closing it removes them. A command substitution, so python has exited before anything else runs.
v_disk=$(du -sk "$tmp/vigie/data/series.sqlite"* | awk '{ s += $1 } END { print s }')
v_counts=$(python3 - "$tmp/vigie/data/series.sqlite" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("select coalesce(sum(samples),0) from chunks").fetchone()[0], c.execute("select count(*) from series").fetchone()[0])
EOF
)
read -r v_samples v_series <<< "$v_counts"

# --- prometheus ----------------------------------------------------------------------------
pport=$(free_port)
mkdir -p "$tmp/prom"
targets_yaml=$(printf '"127.0.0.1:%s",' "${ports[@]}")
cat > "$tmp/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: bench
    static_configs:
      - targets: [${targets_yaml%,}]
EOF
prometheus --config.file="$tmp/prom/prometheus.yml" --storage.tsdb.path="$tmp/prom/data" \
    --web.listen-address="127.0.0.1:$pport" 2> "$tmp/prom.log" & ppid=$!; pids+=($ppid)
sleep 2
p_idle_rss=$(rss_kib $ppid)
p_cpu0=$(cpu_seconds $ppid)
sleep "$SECONDS_RUN"
p_cpu1=$(cpu_seconds $ppid)
p_rss=$(rss_kib $ppid)
# Summed over the metric's label sets (2.42 labels samples_appended by `type`: float, histogram).
metric() {
    curl -s "http://127.0.0.1:$pport/metrics" |
        awk -v m="$1" '/^#/ { next } { n = $1; sub(/\{.*/, "", n) } n == m { s += $NF } END { printf "%.0f\n", s }'
}
p_samples=$(metric prometheus_tsdb_head_samples_appended_total)
p_series=$(metric prometheus_tsdb_head_series)
kill -TERM $ppid; wait $ppid || true
p_disk=$(du -sk "$tmp/prom/data" | awk '{ print $1 }')

# --- report --------------------------------------------------------------------------------
report() { # name samples series cpu0 cpu1 idle_rss rss disk_kib
    awk -v n="$1" -v s="$2" -v se="$3" -v c0="$4" -v c1="$5" -v r0="$6" -v r1="$7" -v d="$8" 'BEGIN {
        cpu = c1 - c0; if (cpu <= 0) cpu = 0.01;
        printf "%-12s %12.0f %9d %8.2f %16.0f %14.0f %14.1f\n", n, s, se, cpu, s / cpu,
            (r1 - r0) * 1024 / (se > 0 ? se : 1), d * 1024 / (s > 0 ? s : 1) }'
}
echo "$TARGETS targets × $SERIES series, 1 s interval, $SECONDS_RUN s each"
printf '%-12s %12s %9s %8s %16s %14s %14s\n' tool samples series "cpu s" "samples/s/core" "RAM B/series" "disk B/sample"
report vigie "$v_samples" "$v_series" "$v_cpu0" "$v_cpu1" "$v_idle_rss" "$v_rss" "$v_disk"
report prometheus "$p_samples" "$p_series" "$p_cpu0" "$p_cpu1" "$p_idle_rss" "$p_rss" "$p_disk"
awk -v vs="$v_samples" -v vc="$(awk -v a="$v_cpu1" -v b="$v_cpu0" 'BEGIN{print a-b}')" \
    -v ps="$p_samples" -v pc="$(awk -v a="$p_cpu1" -v b="$p_cpu0" 'BEGIN{print a-b}')" 'BEGIN {
    if (vc > 0 && pc > 0 && ps > 0) printf "samples/s per core, vigie / prometheus: %.2f\n", (vs / vc) / (ps / pc) }'
awk -v vr="$((v_rss - v_idle_rss))" -v vn="$v_series" -v pr="$((p_rss - p_idle_rss))" -v pn="$p_series" 'BEGIN {
    if (vn > 0 && pn > 0 && pr > 0) printf "RAM bytes per series, vigie / prometheus: %.2f\n", (vr / vn) / (pr / pn) }'
