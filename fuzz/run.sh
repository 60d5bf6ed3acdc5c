#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20), seeded with the real lines
# and the peer fixtures from shared/data. Needs cargo-fuzz (installed if missing).
#
# The machine's toolchain is stable, so targets are built with `--sanitizer none`: coverage
# guidance (SanitizerCoverage) works on stable, AddressSanitizer needs nightly. Rust code
# without `unsafe` needs ASan far less; panics, overflows (debug assertions are on) and
# runaway loops are what this finds.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-20}"
SHARED="${VIGIE_SHARED_DATA:-$(cd ../.. && pwd)/shared/data}"
ELASTIC="$SHARED/peer/elastic-integrations"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export CARGO_TARGET_DIR="${VIGIE_FUZZ_TARGET_DIR:-$HOME/.cache/vigie-fuzz-target}"

cargo fuzz build --sanitizer none --debug-assertions -O

# seed TARGET FILE...: the first 200 non-empty lines of each FILE, one corpus file per line.
seed() {
    local target=$1; shift
    mkdir -p "corpus/$target"
    local n=0
    for file in "$@"; do
        while IFS= read -r line; do
            [ -n "$line" ] || continue
            printf '%s' "$line" > "corpus/$target/seed-$n"
            n=$((n + 1))
        done < <(grep -v '^\s*$' "$file" | head -n 200)
    done
}
apache=("$SHARED/real/apache_combined_semicomplete_2015.log" $(find "$ELASTIC/apache" -name '*.log'))
nginx=($(find "$ELASTIC/nginx" -name '*.log'))
iptables=($(find "$ELASTIC/iptables" -name '*.log'))
pfsense=($(find "$ELASTIC/pfsense" -name '*.log'))
storm="$(mktemp)"
trap 'rm -f "$storm"' EXIT
cat > "$storm" <<'LINES'
id=firewall time="2025-04-07 14:30:00" fw="SN-ENT" tz=+0200 startime="2025-04-07 14:29:58" pri=5 confid=01 slotlevel=2 ruleid=12 srcif="Ethernet0" srcifname="out" ipproto=tcp proto=https src=203.0.113.9 srcport=51000 dst=192.0.2.10 dstport=443 sent=1200 rcvd=53000 duration=2.35 action=pass logtype="connection"
id=firewall time="2025-04-07 14:31:00" fw="SN-ENT" tz=+0200 startime="2025-04-07 14:31:00" pri=1 srcif="Ethernet0" ipproto=tcp src=198.51.100.7 srcport=40000 dst=192.0.2.10 dstport=22 action=block msg="Port scan" logtype="alarm"
LINES

seed apache_common "${apache[@]}"
seed apache_combined "${apache[@]}"
seed apache_vhost_combined "${apache[@]}"
seed apache_error "${apache[@]}"
seed nginx_combined "${nginx[@]}"
seed nginx_error "${nginx[@]}"
seed netfilter "${iptables[@]}"
seed filterlog "${pfsense[@]}"
seed stormshield "$storm"
seed auto "${apache[@]}" "${nginx[@]}" "${iptables[@]}" "${pfsense[@]}" "$storm"
mkdir -p corpus/apache_logformat
printf '%%h %%l %%u %%t "%%r" %%>s %%b "%%{Referer}i" "%%{User-Agent}i"\n127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 2326 "-" "curl/8"' > corpus/apache_logformat/combined
printf '%%v:%%p %%h %%{remote}p %%l %%u %%t "%%r" %%>s %%O %%D\nent.example:443 192.0.2.1 51000 - - [10/Oct/2000:13:55:36 +0200] "GET / HTTP/1.1" 200 10 1500' > corpus/apache_logformat/vhost_port

for target in $(cargo fuzz list); do
    echo "==> fuzz $target for ${SECONDS_EACH}s"
    if ! cargo fuzz run --sanitizer none --debug-assertions -O "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -max_len=4096 -print_final_stats=1 > "corpus/$target.log" 2>&1; then
        cat "corpus/$target.log"
        echo "fuzz target $target failed: the crashing input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^Done' "corpus/$target.log" || tail -n 2 "corpus/$target.log"
done
