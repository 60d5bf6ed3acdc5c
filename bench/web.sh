#!/usr/bin/env bash
# Server time per page under load: `wrk -c 100` against a running `vigie demo` (generated ENT
# traffic flowing at the same time), logged in as the demo's viewer account, on the overview
# page, its JSON API and the security page. Prints wrk's latency and throughput for each.
#
#   bench/web.sh [SECONDS]        (default 15 s per URL)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigie-target}"
cargo build --release --quiet --bin vigie
vigie="$CARGO_TARGET_DIR/release/vigie"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$vigie" demo --listen "127.0.0.1:$port" --data "$work/data" --rate 200 >"$work/banner" 2>"$work/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 150); do grep -q "demo-viewer" "$work/banner" 2>/dev/null && break; sleep 0.2; done
password=$(awk '$1 == "demo-viewer" { for (i = 1; i < NF; i++) if ($i == "password") print $(i + 1) }' "$work/banner")
[ -n "$password" ] || { echo "no demo account in the banner" >&2; cat "$work/log" >&2; exit 1; }

base="http://127.0.0.1:$port"
token=$(curl -s -D - -o /dev/null "$base/connexion" | sed -n 's/^[Ss]et-[Cc]ookie: vigie_login_csrf=\([^;]*\).*/\1/p')
session=$(curl -s -D - -o /dev/null -b "vigie_login_csrf=$token" \
    --data-urlencode "csrf=$token" --data-urlencode "utilisateur=demo-viewer" --data-urlencode "mot_de_passe=$password" \
    "$base/connexion" | sed -n 's/^[Ss]et-[Cc]ookie: vigie_session=\([^;]*\).*/\1/p' | head -1)
[ -n "$session" ] || { echo "login failed" >&2; exit 1; }
sleep 15   # let the demo's attack burst fill the alert store and the block list

echo "vigie demo on $base, wrk -t 2 -c 100 -d ${secs}s per URL, logged in as demo-viewer"
for path in / /api/v1/overview /api/status /securite; do
    echo
    echo "== GET $path"
    wrk -t 2 -c 100 -d "${secs}s" --latency -H "Cookie: vigie_session=$session" "$base$path" \
        | grep -E "Latency|50%|90%|99%|Requests/sec|Non-2xx|requests in"
done
