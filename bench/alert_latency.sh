#!/usr/bin/env bash
# Alert latency: from the firing condition (an SQL-injection line appended to a followed Apache
# log) to the SMTP server accepting the on-call email, with Vigie's DEFAULT settings, against
# what Prometheus + Alertmanager defaults imply for the same path.
#
#   bench/alert_latency.sh [RUNS]      (default 10 runs)
#
# A real SMTP server (aiosmtpd) records the instant it accepts each message; the script writes
# the attack line and records the instant just before. Each run uses a new attacker address,
# so each line opens a new alert group (Vigie emails the first detection of a group at once).
# Prometheus + Alertmanager (defaults: scrape_interval 1m, evaluation_interval 1m, group_wait
# 30s, and a log exporter such as mtail scraped like any target) are not run: their latency is
# computed from those defaults — on average half a scrape + half an evaluation + group_wait
# (90 s), at worst a full scrape + a full evaluation + group_wait (150 s), plus the `for:`
# clause when a rule has one (not counted here). Target for Vigie: 5 s or less.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"

# Debian's Python, where python3-aiosmtpd installs (a pyenv python3 may come first on PATH).
PY=/usr/bin/python3
"$PY" -c 'import aiosmtpd' 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiosmtpd >/dev/null
}
cargo build --release --quiet --bin vigie
VIGIE="$CARGO_TARGET_DIR/release/vigie"

work="$(mktemp -d)"
cleanup() {
    # Wait for both to exit: vigie writes its stores until it has stopped.
    [ -n "${vigie_pid:-}" ] && { kill "$vigie_pid" 2>/dev/null; wait "$vigie_pid" 2>/dev/null; } || true
    [ -n "${smtp_pid:-}" ] && { kill "$smtp_pid" 2>/dev/null; wait "$smtp_pid" 2>/dev/null; } || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SMTP_PORT="$(free_port)"
WEB_PORT="$(free_port)"

# An SMTP handler that appends "<accept time> <subject>" for every message it accepts.
cat >"$work/latency_handler.py" <<'EOF'
import email, email.policy, time
class Handler:
    def __init__(self):
        self.log = open("accepted.log", "a", buffering=1)
    async def handle_DATA(self, server, session, envelope):
        m = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.log.write("%.6f %s\n" % (time.time(), m["subject"]))
        return "250 OK"
EOF
(cd "$work" && PYTHONPATH="$work" exec "$PY" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c latency_handler.Handler) &
smtp_pid=$!

mkdir -p "$work/data"
touch "$work/access.log"
"$VIGIE" analyze --test rules >/dev/null   # the default rules are sound
cp -r rules "$work/rules"
# Only what must be said: one source, the on-call address, the SMTP server. Everything else
# (batching, commit interval, outbox polling, resolve and repeat intervals) is the default.
cat >"$work/vigie.toml" <<EOF
[data]
dir = "data"
[server]
listen = "127.0.0.1:$WEB_PORT"
[[sources]]
id = "apache"
kind = "file"
path = "access.log"
format = "apache_combined"
start_at = "end"
[analyzer]
rules = "rules"
[alerting]
on_call = ["astreinte@ville.test"]
[alerting.smtp]
host = "127.0.0.1"
port = $SMTP_PORT
EOF
"$VIGIE" run --config "$work/vigie.toml" 2>"$work/vigie.log" &
vigie_pid=$!
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$WEB_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
sleep 1

latencies=()
for i in $(seq 1 "$RUNS"); do
    ip="203.0.113.$((i + 10))"
    before=$(wc -l <"$work/accepted.log" 2>/dev/null || echo 0)
    when="$(LC_ALL=C date -u '+%d/%b/%Y:%H:%M:%S +0000')"
    t0=$("$PY" -c 'import time; print("%.6f" % time.time())')
    echo "$ip - - [$when] \"GET /eleve/notes.php?id=1%27%20UNION%20ALL%20SELECT%20NULL-- HTTP/1.1\" 200 512 \"-\" \"sqlmap/1.8\"" >>"$work/access.log"
    for _ in $(seq 1 600); do
        now=$(wc -l <"$work/accepted.log" 2>/dev/null || echo 0)
        [ "$now" -gt "$before" ] && break
        sleep 0.02
    done
    line="$(grep -F "($ip)" "$work/accepted.log" | head -n 1 || true)"
    if [ -z "$line" ]; then
        echo "run $i: no email within 12 s (see $work/vigie.log)"; tail -n 20 "$work/vigie.log"; exit 1
    fi
    t1="${line%% *}"
    latencies+=("$("$PY" -c "print('%.3f' % ($t1 - $t0))")")
    echo "run $i: ${latencies[-1]} s  ${line#* }"
    sleep 1.5   # the next run starts from a quiet outbox poll phase, like a real first alert
done

"$PY" - "${latencies[@]}" <<'EOF'
import statistics, sys
v = sorted(float(x) for x in sys.argv[1:])
mean, worst = statistics.mean(v), v[-1]
median = statistics.median(v)
am_mean, am_worst = 30 + 30 + 30, 60 + 60 + 30
print()
print(f"vigie (defaults), {len(v)} runs: median {median:.2f} s, mean {mean:.2f} s, worst {worst:.2f} s  (target <= 5 s: {'met' if worst <= 5 else 'NOT met'})")
print(f"prometheus + alertmanager defaults (computed): mean {am_mean} s, worst {am_worst} s")
print(f"ratio: vigie is {am_mean / mean:.0f}x faster on average, {am_worst / worst:.0f}x in the worst case")
EOF
