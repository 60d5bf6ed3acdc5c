#!/usr/bin/env bash
# Load-generator throughput: `vigie loadtest` against oha (crates.io) and wrk (Debian), same
# run, same local target, equal concurrency (one kept-alive connection per virtual user).
#
#   bench/loadtest.sh [SECONDS] [CONCURRENCY...]     (default: 10 s at 100, 1000 and 10000)
#
# The target is the loadtest crate's hello_server example (hyper, HTTP/1.1 keep-alive), on
# one core; each generator gets the other. Prints requests/s for each tool and vigie's ratio
# to the faster of the other two (the goal: >= 0.80). On a shared 2-core machine absolute
# numbers are noise; read the ratios, and run it when the machine is otherwise idle.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
shift || true
LEVELS=("$@")
[ ${#LEVELS[@]} -gt 0 ] || LEVELS=(100 1000 10000)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"
TOOLS="$HOME/.cache/vigie-tools"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
[ -x "$TOOLS/bin/oha" ] || cargo install --locked --root "$TOOLS" oha
OHA="$TOOLS/bin/oha"

cargo build --release -q --bin vigie
cargo build --release -q -p loadtest --example hello_server
VIGIE="$CARGO_TARGET_DIR/release/vigie"
SERVER="$CARGO_TARGET_DIR/release/examples/hello_server"

# 10,000 client sockets in one process, 10,000 server sockets in another.
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 "$SERVER" "127.0.0.1:$PORT" 1 > "$tmp/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do grep -q listening "$tmp/server.log" && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/"
GEN="taskset -c 1"

vigie_rps() {
    $GEN "$VIGIE" loadtest --url "$URL" --users "$1" --duration "${SECONDS_EACH}s" --max-rate none \
        --timeout 30s --json --quiet > "$tmp/vigie.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f %d" % (r["responses_per_second"], r["errors"]))' "$tmp/vigie.json"
}
oha_rps() {
    $GEN "$OHA" -z "${SECONDS_EACH}s" -c "$1" --no-tui --output-format json "$URL" > "$tmp/oha.json"
    python3 -c '
import json,sys
r=json.load(open(sys.argv[1]))
codes=r.get("statusCodeDistribution",{})
ok=sum(v for k,v in codes.items() if k.startswith("2"))
err=sum(r.get("errorDistribution",{}).values())
print("%.0f %d" % (ok / r["summary"]["total"], err))' "$tmp/oha.json"
}
wrk_rps() {
    local threads=1
    $GEN wrk -t "$threads" -c "$1" -d "${SECONDS_EACH}s" --timeout 30s "$URL" > "$tmp/wrk.txt"
    local rps errs
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$tmp/wrk.txt")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10; f=1} END {if (!f) print 0}' "$tmp/wrk.txt")
    echo "$rps $errs"
}

printf '%-12s %14s %14s %14s %10s %s\n' connections "vigie req/s" "oha req/s" "wrk req/s" ratio "(errors v/o/w)"
for c in "${LEVELS[@]}"; do
    read -r v ve <<< "$(vigie_rps "$c")"
    sleep 2
    read -r o oe <<< "$(oha_rps "$c")"
    sleep 2
    read -r w we <<< "$(wrk_rps "$c")"
    sleep 2
    best=$(( o > w ? o : w ))
    ratio=$(awk -v a="$v" -v b="$best" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf '%-12s %14s %14s %14s %9sx %s\n' "$c" "$v" "$o" "$w" "$ratio" "($ve/$oe/$we)"
done
echo
echo "ratio = vigie / max(oha, wrk); target >= 0.80"
