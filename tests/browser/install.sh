#!/bin/sh
# Prepares the browser tests (the publisher of tests/real_browser.rs, the dashboard test
# tests/recorder_dashboard.rs), at the paths the tests find by themselves:
#   /usr/bin/chromium                                   (Debian's package, apt-get, when missing)
#   $HOME/.cache/livekit-recorder/browser/node_modules  (playwright-core + livekit-client, pinned,
#                                                        installed once from the npm registry)
# playwright-core is only the driver: it never downloads a browser (the test launches
# /usr/bin/chromium). Run from anywhere: sh tests/browser/install.sh
set -eu

PLAYWRIGHT_CORE=1.65.1
LIVEKIT_CLIENT=2.23.0
DIR="$HOME/.cache/livekit-recorder/browser"

now() { date +%s; }
t0=$(now)

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "chromium: installing Debian's package (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "The browser tests need /usr/bin/chromium: install it (Debian: sudo apt-get install chromium) and rerun." >&2
        exit 1
    fi
fi
t1=$(now)
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?') ($((t1 - t0)) s)"

if ! command -v npm >/dev/null 2>&1; then
    echo "The browser tests need Node.js >= 20 and npm (Debian: sudo apt-get install nodejs npm)." >&2
    exit 1
fi
want="playwright-core@$PLAYWRIGHT_CORE livekit-client@$LIVEKIT_CLIENT"
if [ "$(cat "$DIR/.installed" 2>/dev/null || true)" = "$want" ] \
    && [ -f "$DIR/node_modules/playwright-core/package.json" ] \
    && [ -f "$DIR/node_modules/livekit-client/dist/livekit-client.umd.js" ]; then
    echo "npm: $want cached in $DIR"
else
    echo "npm: installing $want into $DIR"
    mkdir -p "$DIR"
    rm -f "$DIR/.installed"
    [ -f "$DIR/package.json" ] || echo '{"name":"livekit-recorder-browser-tests","private":true}' >"$DIR/package.json"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$DIR" --no-audit --no-fund --save-exact \
        "playwright-core@$PLAYWRIGHT_CORE" "livekit-client@$LIVEKIT_CLIENT" >/dev/null
    echo "$want" >"$DIR/.installed"
fi
t2=$(now)
echo "npm: $want ($((t2 - t1)) s)"
