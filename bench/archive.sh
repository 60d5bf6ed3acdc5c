#!/usr/bin/env bash
# The legal archive against its peers, same run, same records:
#   - indexing: `vigie archive ingest` (parse + record + Tantivy, one thread) against tantivy-cli
#     indexing the same records as NDJSON (one thread), records/s per core;
#   - search: p95 latency of `vigie archive search --ip IP` over the whole year (a process
#     start, the audit entry and the search) against `rg -F IP` over the raw logs, both cold
#     (page cache dropped, when run as root) and both warm; and the same audited search from a
#     long-lived process (`Requisitions`, as the requisition web page runs it: sealed days stay
#     open between searches; its first, cold search apart);
#   - size: the archive directory against `zstd -3` of the raw logs.
#
#   bench/archive.sh [RECORDS]     (default 1,000,000 records spread over 365 days)
#
# The working files go to $VIGIE_BENCH_TMP (default: the system's temporary directory). The
# two halves run one after the other so that 100M records fit on an ordinary disk: first the
# NDJSON and tantivy-cli's index (deleted once measured), then the raw log, vigie's archive and
# the zstd file; the peak is about RECORDS x 0.5 KB (the NDJSON and tantivy-cli's index: 46 GB at
# 100M records), checked up front.
#
# tantivy-cli is installed into ~/.cache/vigie-tools when missing. Absolute numbers on a shared
# machine are noise; read the ratios. Targets (issue 7): indexing >= 0.8x tantivy-cli, search
# p95 <= 1/100 of the ripgrep scan, size <= 1.5x zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-1000000}"
QUERIES="${VIGIE_BENCH_QUERIES:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"
TOOLS="$HOME/.cache/vigie-tools"

missing=()
command -v rg >/dev/null || missing+=(ripgrep)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x "$TOOLS/bin/tantivy" ]; then
    echo "==> installing tantivy-cli into $TOOLS (once)" >&2
    CARGO_TARGET_DIR="$TOOLS/tantivy-cli-build" cargo install --root "$TOOLS" tantivy-cli >&2
fi
TANTIVY="$TOOLS/bin/tantivy"

cargo build --release -q --bin vigie
cargo build --release -q -p retention --example archive_bench_data --example archive_search_bench
VIGIE="$CARGO_TARGET_DIR/release/vigie"
KEPT="$CARGO_TARGET_DIR/release/examples/archive_search_bench"

tmp=$(mktemp -d "${VIGIE_BENCH_TMP:-${TMPDIR:-/tmp}}/vigie-archive-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
need_kb=$((RECORDS / 2))
free_kb=$(df -Pk "$tmp" | awk 'NR == 2 { print $4 }')
if [ "$free_kb" -lt "$need_kb" ]; then
    echo "bench/archive.sh: $RECORDS records need about $((need_kb / 1048576 + 1)) GB in $tmp," \
        "$((free_kb / 1048576)) GB are free; set VIGIE_BENCH_TMP to a larger disk or ask for fewer records" >&2
    exit 1
fi

# The same records twice, written one half at a time: Apache combined lines (what vigie ingests,
# what rg scans, what zstd compresses) and NDJSON of the fields the archive keeps (what
# tantivy-cli indexes), and 50 client addresses to search for
# (retention/examples/archive_bench_data.rs, deterministic: both halves hold the same records).
records() {
    "$CARGO_TARGET_DIR/release/examples/archive_bench_data" --only "$1" \
        "$RECORDS" "$tmp/access.log" "$tmp/records.ndjson" "$tmp/ips"
}

# seconds CMD...: wall time of one run, output discarded.
seconds() {
    local s e
    s=$(date +%s.%N)
    "$@" > /dev/null 2> "$tmp/stderr" || { echo "failed: $*" >&2; cat "$tmp/stderr" >&2; exit 1; }
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.4f", e - s }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
rate() { awk -v n="$RECORDS" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
p95() { sort -n | awk '{ a[NR] = $1 } END { i = int(NR * 0.95 + 0.999); if (i < 1) i = 1; printf "%.4f", a[i] }'; }

# Indexing, first the peer: tantivy-cli over the NDJSON, one thread. Its files are deleted once
# measured.
records ndjson
mkdir -p "$tmp/tantivy"
cat > "$tmp/tantivy/meta.json" <<'EOF'
{"index_settings":{"docstore_compression":"lz4","docstore_blocksize":16384},"segments":[],"schema":[
{"name":"event_id","type":"text","options":{"indexing":{"record":"basic","fieldnorms":false,"tokenizer":"raw"},"stored":true,"fast":true}},
{"name":"timestamp_ns","type":"i64","options":{"indexed":true,"fieldnorms":false,"fast":true,"stored":true}},
{"name":"source_ip","type":"ip_addr","options":{"indexed":true,"fieldnorms":false,"fast":true,"stored":true}},
{"name":"protocol","type":"text","options":{"indexing":{"record":"basic","fieldnorms":false,"tokenizer":"raw"},"stored":true,"fast":false}},
{"name":"operation","type":"text","options":{"indexing":{"record":"basic","fieldnorms":false,"tokenizer":"raw"},"stored":true,"fast":false}},
{"name":"user_name","type":"text","options":{"indexing":{"record":"basic","fieldnorms":false,"tokenizer":"raw"},"stored":true,"fast":false}},
{"name":"user_agent","type":"text","options":{"indexing":null,"stored":true,"fast":false}},
{"name":"status","type":"u64","options":{"indexed":false,"fieldnorms":false,"fast":false,"stored":true}},
{"name":"observer","type":"text","options":{"indexing":{"record":"basic","fieldnorms":false,"tokenizer":"raw"},"stored":true,"fast":false}}
],"opstamp":0}
EOF
tantivy_s=$(seconds "$TANTIVY" index --index "$tmp/tantivy" --file "$tmp/records.ndjson" --num_threads 1)
tantivy_b=$(du -sb "$tmp/tantivy" | cut -f1)
rm -rf "$tmp/tantivy" "$tmp/records.ndjson"

# Then vigie over the raw log, sealing included: every day is past its grace period, so the
# ingest closes them all (merge, summary, manifest, signature), as the archive does in production.
key="$tmp/bench.key"
"$VIGIE" archive keygen --key "$key" > /dev/null 2>&1
mkdir -p "$tmp/data"
records log
vigie_s=$(seconds "$VIGIE" archive ingest --format apache_combined --data "$tmp/data" --key "$key" "$tmp/access.log")

# Search: one IP over the whole year, QUERIES different IPs, each side measured in the same
# state of the page cache as the other, never one warm against the other cold:
#   - cold: the page cache dropped before the command (a requisition comes weeks after the
#     facts; a year of raw logs larger than memory is read from disk by every scan);
#   - warm: the same command again at once (its files in memory, as far as memory holds them:
#     a raw log larger than memory is read from disk again, so rg is not run a second time and
#     its cold time stands for both).
# Dropping the cache needs root (/proc/sys/vm/drop_caches); without it, only warm is measured.
can_drop=""
[ -w /proc/sys/vm/drop_caches ] && can_drop=1
# drop: empties the page cache, when it can be (else does nothing).
drop() { if [ -n "$can_drop" ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }
search() {
    "$VIGIE" archive search --data "$tmp/data" --key "$key" --ip "$1" --from 2024-04-01 --to 2025-05-01 \
        --requisition 'Banc d essai;BENCH-1;art. 60-1 CPP;2025-04-10' --operator bench --page-size 10000
}
log_fits=""
[ "$(stat -c %s "$tmp/access.log")" -lt "$(awk '/MemTotal/ { print $2 * 1024 }' /proc/meminfo)" ] && log_fits=1
for f in vigie_cold rg_cold vigie_warm rg_warm; do : > "$tmp/$f"; done
head -n "$QUERIES" "$tmp/ips" | while read -r ip; do
    drop
    cold=$(seconds search "$ip")
    warm=$(seconds search "$ip")
    if [ -n "$can_drop" ]; then echo "$cold" >> "$tmp/vigie_cold"; fi
    echo "$warm" >> "$tmp/vigie_warm"
    drop
    cold=$(seconds rg -F "$ip" "$tmp/access.log")
    if [ -n "$log_fits" ]; then warm=$(seconds rg -F "$ip" "$tmp/access.log"); else warm=$cold; fi
    if [ -n "$can_drop" ]; then echo "$cold" >> "$tmp/rg_cold"; fi
    echo "$warm" >> "$tmp/rg_warm"
done
for f in vigie_cold rg_cold vigie_warm rg_warm; do
    printf -v "${f}_p95" '%s' "$(if [ -s "$tmp/$f" ]; then p95 < "$tmp/$f"; else echo "-"; fi)"
done
# The same searches from one long-lived process; the first one opens the days (cold when the
# cache can be dropped), the others find them open.
drop
"$KEPT" "$tmp/data/archive" "$tmp/data/audit/requisitions.jsonl" "$key" "$tmp/ips" "$QUERIES" > "$tmp/kept_times"
kept_first=$(head -n 1 "$tmp/kept_times")
kept_p95=$(tail -n +2 "$tmp/kept_times" | p95)

# Size.
zstd -q -3 -T1 "$tmp/access.log" -o "$tmp/access.log.zst"
raw_b=$(stat -c %s "$tmp/access.log")
zstd_b=$(stat -c %s "$tmp/access.log.zst")
archive_b=$(du -sb "$tmp/data/archive" | cut -f1)

echo "records: $RECORDS over 365 days; $QUERIES single-IP searches over the whole year"
echo "raw log $((raw_b / 1048576)) MiB; memory $(awk '/MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo) MiB" \
    "($(if [ -n "$log_fits" ]; then echo "the log fits in memory: warm rg reads it from the page cache"; else echo "the log is larger than memory: rg reads it from disk every time"; fi))"
if [ -z "$can_drop" ]; then
    echo "the page cache cannot be dropped here (not root): cold searches not measured"
fi
printf '%-44s %12s %14s\n' "indexing (1 thread)" "seconds" "records/s"
printf '%-44s %12s %14s\n' "vigie archive ingest (parse + index)" "$vigie_s" "$(rate "$vigie_s")"
printf '%-44s %12s %14s\n' "tantivy-cli index (NDJSON)" "$tantivy_s" "$(rate "$tantivy_s")"
printf '%-44s %12s %12s\n' "search, p95 seconds" "cold" "warm"
printf '%-44s %12s %12s\n' "vigie archive search --ip (process + audit)" "$vigie_cold_p95" "$vigie_warm_p95"
printf '%-44s %12s %12s\n' "long-lived desk search (audit; days open)" "-" "$kept_p95"
printf '%-44s %12s %12s\n' "long-lived desk, first search (opens days)" "$kept_first" "-"
printf '%-44s %12s %12s\n' "rg -F IP raw log" "$rg_cold_p95" "$rg_warm_p95"
printf '%-44s %12s\n' "size, bytes" ""
printf '%-44s %12s\n' "raw log" "$raw_b"
printf '%-44s %12s\n' "zstd -3" "$zstd_b"
printf '%-44s %12s\n' "vigie archive" "$archive_b"
printf '%-44s %12s\n' "tantivy-cli index (for information)" "$tantivy_b"
echo "ratios:"
echo "  indexing vigie / tantivy-cli (records/s):  $(ratio "$tantivy_s" "$vigie_s")   (target >= 0.8)"
if [ -n "$can_drop" ]; then
    echo "  search p95 vigie CLI / rg, both cold:      $(ratio "$vigie_cold_p95" "$rg_cold_p95")   (target <= 0.01)"
fi
echo "  search p95 vigie CLI / rg, both warm:      $(ratio "$vigie_warm_p95" "$rg_warm_p95")   (target <= 0.01)"
echo "  search p95 long-lived desk / rg, warm:     $(ratio "$kept_p95" "$rg_warm_p95")"
echo "  size vigie / zstd -3:                      $(ratio "$archive_b" "$zstd_b")   (target <= 1.5)"
