#!/usr/bin/env bash
# A real Kafka-protocol broker for the scale-out tests and benchmarks: tansu (crates.io), an
# Apache-Kafka-compatible broker in Rust, with SQLite storage so that it survives restarts.
#
#   scripts/kafka.sh install               build tansu into $VIGIE_TOOLS (once; ~10 minutes)
#   scripts/kafka.sh start DIR [PORT]      start a broker whose data, log and pid live in DIR;
#                                          prints the bootstrap address (127.0.0.1:PORT)
#   scripts/kafka.sh topics ADDR PARTS T.. create topics T.. with PARTS partitions each
#   scripts/kafka.sh stop DIR              stop (SIGKILL) the broker started in DIR (by its pid file)
#   scripts/kafka.sh bin                   print the path of the tansu binary
#
# Apache Kafka itself cannot be downloaded on these machines; Debian's librdkafka 2.0.2 fails
# tansu's ApiVersion handshake, which is why Vigie links rdkafka's bundled librdkafka instead.
set -euo pipefail

TANSU_VERSION="0.6.0"
VIGIE_TOOLS="${VIGIE_TOOLS:-$HOME/.cache/vigie-tools}"
TANSU="$VIGIE_TOOLS/bin/tansu"

die() { echo "kafka.sh: $*" >&2; exit 1; }

install_tansu() {
    if [ -x "$TANSU" ] && "$TANSU" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
        return 0
    fi
    echo "==> building tansu $TANSU_VERSION into $VIGIE_TOOLS (first time only, about 10 minutes)" >&2
    mkdir -p "$VIGIE_TOOLS"
    # Its own target directory: a 10-minute build must not hold the workspace's build lock.
    CARGO_TARGET_DIR="$VIGIE_TOOLS/build" nice -n 10 cargo install --locked --root "$VIGIE_TOOLS" \
        --version "$TANSU_VERSION" --features libsql,dynostore tansu
    rm -rf "$VIGIE_TOOLS/build"
    [ -x "$TANSU" ] || die "tansu was not installed at $TANSU"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
    local port=$1 i
    for i in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

start_broker() {
    local dir=${1:?usage: kafka.sh start DIR [PORT]} port=${2:-}
    [ -x "$TANSU" ] || die "tansu is not installed; run: scripts/kafka.sh install"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -z "$port" ]; then
        if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else port=$(free_port); fi
    fi
    echo "$port" >"$dir/port"
    local url="tcp://127.0.0.1:$port"
    # setsid: the broker outlives this script and can be killed as one process by its pid.
    # Run from DIR: tansu reads the path of a sqlite:// URL relative to its working directory.
    (cd "$dir" && exec setsid "$TANSU" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine "sqlite://tansu.db" >>"$dir/broker.log" 2>&1 </dev/null) &
    echo $! >"$dir/pid"
    wait_port "$port" || { cat "$dir/broker.log" >&2; die "broker did not listen on $port"; }
    echo "127.0.0.1:$port"
}

create_topics() {
    local addr=${1:?usage: kafka.sh topics ADDR PARTITIONS TOPIC...} parts=${2:?partitions}
    shift 2
    local t
    for t in "$@"; do
        "$TANSU" topic create --broker "tcp://$addr" --partitions "$parts" "$t" >/dev/null
    done
}

# SIGKILL, not SIGTERM: tansu 0.6's graceful shutdown stops its storage task first and answers
# the produce requests still in flight with UNKNOWN_SERVER_ERROR; librdkafka's idempotent
# producer then bumps its epoch (InitProducerId with its current id), which tansu 0.6 does not
# implement (a todo!() that kills its storage task: every later request fails, even after a
# restart the broker panics on that producer). Killed, the broker leaves the in-flight requests
# unanswered, the producer retries them on the restarted broker with the same sequence
# numbers, and SQLite keeps every committed write.
stop_broker() {
    local dir=${1:?usage: kafka.sh stop DIR} pid
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    if kill -9 "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
    rm -f "$dir/pid"
}

case "${1:-}" in
    install) install_tansu ;;
    start) shift; start_broker "$@" ;;
    topics) shift; create_topics "$@" ;;
    stop) shift; stop_broker "$@" ;;
    bin) echo "$TANSU" ;;
    *) die "usage: kafka.sh install | start DIR [PORT] | topics ADDR PARTITIONS TOPIC... | stop DIR | bin" ;;
esac
