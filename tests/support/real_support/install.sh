#!/bin/sh
# Prepares the binaries the real-server tests (tests/real_*.rs) use, at the paths
# tests/support/real_support finds by itself:
#   $HOME/.cache/livekit-recorder/livekit-server-v1.13.5/server   (built once, cached)
#   <target>/lkpub/lkpub                                          (the Go test publisher)
# Needs Go >= 1.26.8 and its module proxy. Run from anywhere: sh tests/support/real_support/install.sh
set -eu

VERSION=1.13.5
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
SERVER_DIR="$HOME/.cache/livekit-recorder/livekit-server-v$VERSION"
SERVER="$SERVER_DIR/server"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
PUB="$TARGET/lkpub/lkpub"

if ! command -v go >/dev/null 2>&1; then
    echo "install.sh: 'go' not found: install Go >= 1.26.8 (https://go.dev/dl/) and put it on PATH" >&2
    exit 1
fi
echo "go: $(go version)"

now() { date +%s; }

t0=$(now)
if [ -x "$SERVER" ]; then
    echo "livekit-server: cached at $SERVER"
else
    echo "livekit-server v$VERSION: building into $SERVER_DIR (takes a few minutes)"
    mkdir -p "$SERVER_DIR"
    CGO_ENABLED=0 GOBIN="$SERVER_DIR" go install "github.com/livekit/livekit-server/cmd/server@v$VERSION"
fi
version_line=$("$SERVER" --version 2>&1 || true)
case $version_line in
    *"version $VERSION"*) ;;
    *)
        echo "install.sh: $SERVER --version says '$version_line', expected $VERSION" >&2
        echo "remove it and run again to rebuild" >&2
        exit 1
        ;;
esac
t1=$(now)
echo "livekit-server: $version_line ($((t1 - t0)) s)"

mkdir -p "$TARGET/lkpub"
tmp="$PUB.tmp-$$"
(cd "$ROOT/tests/lkpub" && go build -o "$tmp" .)
mv -f "$tmp" "$PUB"
t2=$(now)
echo "lkpub: built $PUB ($((t2 - t1)) s)"
