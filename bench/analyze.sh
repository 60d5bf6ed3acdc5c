#!/usr/bin/env bash
# Detection throughput: `vigie analyze` against fail2ban-regex, same run, same input.
#
#   bench/analyze.sh [LINES]      (default 1,000,000 lines)
#
# Builds vigie in release, makes a LINES-line Apache combined file by repeating the 10,000
# real lines of shared/data/real (in a temporary directory), then times, on that file:
#   - fail2ban-regex with each fail2ban filter that reads an Apache *access* log:
#     apache-badbots (bad user agents), php-url-fopen (remote file inclusion) and
#     nginx-botsearch (404 probes of CMS entry points; its regex fits any combined log).
#     The other apache-* filters (auth, noscript, overflows, nohome, botsearch) read the
#     *error* log and would match nothing here. fail2ban checks one filter per run, so the
#     three runs are summed: that is the cost of the same coverage.
#   - vigie analyze with all the default rules (signatures and windows) at once.
# Prints events/s for each and the ratios, by wall clock and per core (CPU seconds, user +
# system: vigie parses on every core, fail2ban-regex runs on one; the issue's target is per
# core); "flagged" is lines matched for fail2ban-regex and detections (after windows and
# suppression) for vigie, so the two are not the same count. Absolute numbers on a shared
# machine are noise; the ratios are what to read.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"
SHARED="${VIGIE_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
FILTERS=(apache-badbots php-url-fopen nginx-botsearch)

missing=()
command -v fail2ban-regex >/dev/null || missing+=(fail2ban)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Only the fail2ban half: BENCH_SKIP_VIGIE=1 bench/analyze.sh (to check the peer side alone).
if [ -z "${BENCH_SKIP_VIGIE:-}" ]; then
    cargo build --release -q --bin vigie
fi
VIGIE="$CARGO_TARGET_DIR/release/vigie"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

seed="$SHARED/real/apache_combined_semicomplete_2015.log"
n=$(wc -l < "$seed")
for _ in $(seq $(( (LINES + n - 1) / n ))); do cat "$seed"; done | head -n "$LINES" > "$tmp/access.log"

# run CMD...: prints "seconds max_rss_kib cpu_seconds" for one run of CMD (stdout to
# $tmp/out); cpu_seconds is user + system time, what "per core" compares.
run() {
    /usr/bin/time -f "%e %M %U %S" -o "$tmp/time" "$@" > "$tmp/out" 2> "$tmp/stderr" || {
        echo "failed: $*" >&2; cat "$tmp/stderr" >&2; exit 1; }
    awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$tmp/time"
}
rate() { awk -v l="$LINES" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? l / s : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }

printf '%-34s %10s %14s %12s %10s %10s\n' "run ($LINES lines)" "seconds" "events/s" "max RSS KiB" "CPU s" "flagged"
line() { printf '%-34s %10s %14s %12s %10s %10s\n' "$1" "$2" "$(rate "$2")" "$3" "$4" "$5"; }

f2b_total=0
f2b_cpu=0
for filter in "${FILTERS[@]}"; do
    read -r s m c <<< "$(run fail2ban-regex "$tmp/access.log" "/etc/fail2ban/filter.d/$filter.conf")"
    matched=$(sed -n 's/^Lines: .* \([0-9]*\) matched.*/\1/p' "$tmp/out")
    line "fail2ban-regex $filter" "$s" "$m" "$c" "${matched:-?}"
    f2b_total=$(add "$f2b_total" "$s")
    f2b_cpu=$(add "$f2b_cpu" "$c")
done
line "fail2ban-regex, ${#FILTERS[@]} filters summed" "$f2b_total" "-" "$f2b_cpu" ""

if [ -z "${BENCH_SKIP_VIGIE:-}" ]; then
    read -r v_s v_m v_c <<< "$(run "$VIGIE" analyze --format apache_combined "$tmp/access.log")"
    line "vigie analyze (all default rules)" "$v_s" "$v_m" "$v_c" "$(wc -l < "$tmp/out")"
    echo
    echo "vigie analyze / fail2ban-regex (3 filters summed, higher is better):"
    echo "  wall clock (vigie on every core, fail2ban-regex on one): $(ratio "$f2b_total" "$v_s")x"
    echo "  per core (CPU seconds, user + system; the issue's measure): $(ratio "$f2b_cpu" "$v_c")x"
fi
