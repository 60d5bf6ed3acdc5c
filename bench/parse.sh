#!/usr/bin/env bash
# Parsing throughput: `vigie parse` against GoAccess and ripgrep, same run, same input.
#
#   bench/parse.sh [LINES]      (default 1,000,000 lines per format)
#
# Builds vigie in release, makes LINES-line files by repeating real lines (Apache combined
# from shared/data/real; netfilter and pfSense filterlog from the Elastic fixtures), then
# times each tool on the same file (rg over each file, averaged over 10 runs) and prints
# lines/s, max RSS and the ratios. Each figure is the best of BENCH_BEST runs (default 3,
# every tool alike): on a shared virtual machine other tenants only ever add time, and one
# run of the same binary varied by 20 %. Absolute numbers on a shared machine are noise; the
# ratios are what to read.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"
SHARED="${VIGIE_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
ELASTIC="$SHARED/peer/elastic-integrations"

missing=()
command -v goaccess >/dev/null || missing+=(goaccess)
command -v rg >/dev/null || missing+=(ripgrep)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release -q --bin vigie
VIGIE="$CARGO_TARGET_DIR/release/vigie"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# repeat FILE N > OUT: the file's non-empty lines, repeated to N lines.
repeat() {
    grep -v '^\s*$' "$1" > "$tmp/seed"
    local n; n=$(wc -l < "$tmp/seed")
    local times=$(( ($2 + n - 1) / n ))
    for _ in $(seq "$times"); do cat "$tmp/seed"; done | head -n "$2" > "$3"
}
repeat "$SHARED/real/apache_combined_semicomplete_2015.log" "$LINES" "$tmp/apache.log"
repeat "$ELASTIC/iptables/data_stream/log/_dev/test/pipeline/test-iptables-raw.log" "$LINES" "$tmp/netfilter.log"
repeat "$ELASTIC/pfsense/data_stream/log/_dev/test/pipeline/test-pfsense-bsd.log" "$LINES" "$tmp/filterlog.log"

# run CMD...: prints "seconds max_rss_kib cpu_seconds" for one run of CMD (output discarded);
# cpu_seconds (user + system) is what "per core" compares: vigie parses on every core.
run() {
    /usr/bin/time -f "%e %M %U %S" -o "$tmp/time" "$@" > /dev/null 2> "$tmp/stderr" || {
        echo "failed: $*" >&2; cat "$tmp/stderr" >&2; exit 1; }
    awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$tmp/time"
}

# rg_run FILE: run's figures for `rg -c ''` over FILE, per run, averaged over RG_REPEAT runs in a
# row: one run takes a few hundredths of a second, at the resolution of /usr/bin/time.
RG_REPEAT=10
rg_run() {
    run sh -c 'for _ in $(seq "$1"); do rg -c "" "$2"; done' sh "$RG_REPEAT" "$1" |
        awk -v n="$RG_REPEAT" '{ printf "%.4f %s %.4f\n", $1 / n, $2, $3 / n }'
}

# best CMD...: run's figures (or rg_run's) for the run of CMD, among BENCH_BEST, that took
# the least CPU time.
BEST="${BENCH_BEST:-3}"
best() {
    for _ in $(seq "$BEST"); do "$@"; done | sort -g -k3,3 | head -n 1
}

rate() { awk -v l="$LINES" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? l / s : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

printf '%-28s %10s %14s %12s %10s\n' "run ($LINES lines)" "seconds" "lines/s" "max RSS KiB" "CPU s"
line() { printf '%-28s %10s %14s %12s %10s\n' "$1" "$2" "$(rate "$2")" "$3" "$4"; }

read -r v_s v_m v_c <<< "$(best run "$VIGIE" parse --format apache_combined "$tmp/apache.log")"; line "vigie parse apache" "$v_s" "$v_m" "$v_c"
read -r g_s g_m g_c <<< "$(best run goaccess "$tmp/apache.log" --log-format=COMBINED --no-global-config -o "$tmp/report.json")"; line "goaccess COMBINED" "$g_s" "$g_m" "$g_c"
read -r r_s r_m r_c <<< "$(best rg_run "$tmp/apache.log")"; line "rg -c '' apache (mean of $RG_REPEAT)" "$r_s" "$r_m" "$r_c"
read -r n_s n_m n_c <<< "$(best run "$VIGIE" parse --format netfilter "$tmp/netfilter.log")"; line "vigie parse netfilter" "$n_s" "$n_m" "$n_c"
read -r rn_s rn_m rn_c <<< "$(best rg_run "$tmp/netfilter.log")"; line "rg -c '' netfilter" "$rn_s" "$rn_m" "$rn_c"
read -r f_s f_m f_c <<< "$(best run "$VIGIE" parse --format filterlog "$tmp/filterlog.log")"; line "vigie parse filterlog" "$f_s" "$f_m" "$f_c"
read -r rf_s rf_m rf_c <<< "$(best rg_run "$tmp/filterlog.log")"; line "rg -c '' filterlog" "$rf_s" "$rf_m" "$rf_c"

echo
echo "best of $BEST runs each; wall clock (vigie on every core, goaccess and rg on one):"
echo "vigie/goaccess (apache, higher is better): $(ratio "$g_s" "$v_s")x"
echo "vigie/ripgrep line count (apache):          $(ratio "$r_s" "$v_s")x"
echo "vigie netfilter / ripgrep:                  $(ratio "$rn_s" "$n_s")x"
echo "vigie filterlog / ripgrep:                  $(ratio "$rf_s" "$f_s")x"
echo "per core (CPU seconds, user + system; the issue's measure):"
echo "vigie/goaccess (apache):                    $(ratio "$g_c" "$v_c")x"
echo "vigie/ripgrep line count (apache):          $(ratio "$r_c" "$v_c")x"
echo "vigie netfilter / ripgrep:                  $(ratio "$rn_c" "$n_c")x"
echo "vigie filterlog / ripgrep:                  $(ratio "$rf_c" "$f_c")x"
