#!/usr/bin/env bash
# Installs the browser tests' npm packages (playwright-core, pinned in package-lock.json)
# into tests/browser/node_modules, only when they are missing or older than the lock file:
# a rerun with an up-to-date node_modules touches neither the network nor the disk.
# The browser is Debian's chromium (/usr/bin/chromium), never a download of playwright's.
set -euo pipefail
cd "$(dirname "$0")"

stamp=node_modules/.vigie-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f node_modules/playwright-core/package.json ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "install.sh: npm is missing (apt-get install npm)" >&2; exit 1; }
echo "==> npm ci in tests/browser"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefer-offline --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
