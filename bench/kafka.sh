#!/usr/bin/env bash
# Scale-out throughput through a real Kafka-protocol broker (tansu, scripts/kafka.sh), same run:
#
#   bench/kafka.sh [EVENTS]      (default 100,000)
#
# 1. Producer throughput: Vigie's producer (rdkafka, bundled librdkafka; idempotent, acks=all,
#    lz4, linger 20 ms; one message per event, keyed by client address) against the reference
#    producer, Python confluent-kafka with its own bundled librdkafka, same settings, same
#    message size and keys, same broker, same topic layout (3 partitions).
# 2. End to end: a `vigie run --role collector` following an EVENTS-line Apache log and a
#    `vigie run --role archiver` writing the legal archive, as two processes through the
#    broker; events/s from the collector's start to the last record committed in the archive.
# Absolute numbers on a shared 2-core machine are noise; the ratio is what to read.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-100000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"
TOOLS="${VIGIE_TOOLS:-$HOME/.cache/vigie-tools}"

scripts/kafka.sh install
cargo build --release -q --bin vigie
cargo build --release -q -p bus --example produce
VIGIE="$CARGO_TARGET_DIR/release/vigie"
PRODUCE="$CARGO_TARGET_DIR/release/examples/produce"

# The reference producer: confluent-kafka from PyPI (its wheel bundles librdkafka), in a venv.
VENV="$TOOLS/bench-venv"
if ! "$VENV/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q confluent-kafka
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    scripts/kafka.sh stop "$tmp/broker" || true
    rm -rf "$tmp"
}
trap cleanup EXIT

BROKER=$(scripts/kafka.sh start "$tmp/broker")
scripts/kafka.sh topics "$BROKER" 3 bench.vigie bench.python vigie.events vigie.detections
echo "broker: tansu on $BROKER (SQLite storage), 3 partitions per topic; $EVENTS events"

echo "==> producer throughput"
vigie_json=$("$PRODUCE" "$BROKER" bench.vigie "$EVENTS" "$tmp/payload.bin")
echo "$vigie_json"
python_json=$("$VENV/bin/python" - "$BROKER" bench.python "$EVENTS" "$tmp/payload.bin" <<'EOF'
import json, sys, time
from confluent_kafka import Producer, version, libversion
broker, topic, count, payload_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
payload = open(payload_file, "rb").read()
p = Producer({"bootstrap.servers": broker, "enable.idempotence": True, "acks": "all",
              "compression.type": "lz4", "linger.ms": 20, "message.timeout.ms": 300000})
keys = [f"198.51.100.{n % 200 + 1}".encode() for n in range(200)]
state = {"ok": 0, "failed": 0}
def done(err, msg):
    state["failed" if err else "ok"] += 1
start = time.perf_counter()
for n in range(count):
    while True:
        try:
            p.produce(topic, payload, keys[n % 200], on_delivery=done)
            break
        except BufferError:
            p.poll(0.005)
    p.poll(0)
p.flush(300)
secs = time.perf_counter() - start
ck = version() if isinstance(version(), str) else version()[0]  # a string in 2.x, a tuple before
print(json.dumps({"producer": f"python confluent-kafka {ck} (librdkafka {libversion()[0]})",
                  "messages": count, "seconds": round(secs, 3), "per_second": round(count / secs),
                  "all_acknowledged": state["ok"] == count}))
EOF
)
echo "$python_json"
python3 - "$vigie_json" "$python_json" "$(wc -c <"$tmp/payload.bin")" <<'EOF'
import json, sys
v, p, size = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
assert v["all_acknowledged"] and p["all_acknowledged"], "a producer lost messages"
print(f"producer ratio vigie/python: {v['per_second'] / p['per_second']:.2f}x "
      f"({v['per_second']:.0f} vs {p['per_second']:.0f} messages/s, {size}-byte messages for both)")
EOF

echo "==> end to end: collector -> kafka -> archiver"
stamp=$(date -u +%d/%b/%Y:%H:%M:%S)
python3 - "$tmp/access.log" "$EVENTS" "$stamp" <<'EOF'
import sys
path, count, stamp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "w") as f:
    for n in range(count):
        f.write(f'198.51.100.{n % 200 + 1} - - [{stamp} +0000] "GET /ent/page/{n} HTTP/1.1" 200 {n % 5000} "-" '
                '"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"\n')
EOF
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
config() { # config ROLE PORT [SOURCE]
    cat <<EOF
[roles]
run = "$1"
[data]
dir = "$tmp/$1"
[server]
listen = "127.0.0.1:$2"
[analyzer]
rules = "$PWD/rules"
[alerting]
on_call = ["astreinte@ville.example"]
[kafka]
brokers = "$BROKER"
${3:-}
EOF
}
ap=$(port); cp=$(port)
config archiver "$ap" > "$tmp/archiver.toml"
config collector "$cp" "$(printf '[[sources]]\nid = "ent"\nkind = "file"\npath = "%s"\nformat = "apache_combined"' "$tmp/access.log")" > "$tmp/collector.toml"
metric() { # metric PORT NAME: sum of the samples of NAME
    curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m {s += $2} END {print s + 0}'
}
RUST_LOG=warn "$VIGIE" run --config "$tmp/archiver.toml" 2>"$tmp/archiver.log" & pids+=($!)
start=$(date +%s.%N)
RUST_LOG=warn "$VIGIE" run --config "$tmp/collector.toml" 2>"$tmp/collector.log" & pids+=($!)
while [ "$(metric "$ap" vigie_archive_records_total)" -lt "$EVENTS" ]; do
    sleep 0.2
    kill -0 "${pids[0]}" "${pids[1]}" || { cat "$tmp/archiver.log" "$tmp/collector.log" >&2; exit 1; }
done
end=$(date +%s.%N)
produced=$(metric "$cp" vigie_kafka_produced_total)
python3 -c "import sys; e, s = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); print(f'end to end: {e} events archived in {s:.2f} s = {e / s:.0f} events/s (collector produced {sys.argv[4]})')" \
    "$EVENTS" "$start" "$end" "$produced"
