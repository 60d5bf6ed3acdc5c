#!/usr/bin/env bash
# The test command of README.md: installs what a fresh machine lacks, then runs formatting,
# lints and the whole test suite. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# A warm build cache outside the clone keeps repeated runs fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"
export VIGIE_SHARED_DATA="${VIGIE_SHARED_DATA:-$(cd .. && pwd)/shared/data}"

# System packages the tests use, installed when missing: one `want PACKAGE TEST-COMMAND` line each.
need=()
want() { local pkg=$1; shift; "$@" >/dev/null 2>&1 || need+=("$pkg"); }
want python3-aiosmtpd /usr/bin/python3 -c 'import aiosmtpd'   # a real SMTP server for the alerting tests
want chromium test -x /usr/bin/chromium               # prints the monthly report to PDF (vigie report)
want nodejs node --version                            # runs the browser tests (tests/browser/ui.mjs)
want npm npm --version                                # installs playwright-core for them
want prometheus promtool --version                   # promtool and a real Prometheus read /metrics (tests/e2e/metrics.rs)
want nftables test -x /usr/sbin/nft                  # `nft -c` checks the block list's nftables file (analyzer)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

./scripts/kafka.sh install   # tansu, the Kafka broker of tests/e2e/kafka.rs: built once (~10 min), cached in ~/.cache/vigie-tools
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> npm packages of the browser tests"
./tests/browser/install.sh
echo "==> cargo test"
cargo test --workspace --locked
echo "==> fuzz the parsers (short runs)"
./fuzz/run.sh "${VIGIE_FUZZ_SECONDS:-5}"
