#!/bin/bash
# Builds the Node peer that bench/conversation.py compares with: pigsty/withings-server, the server
# issue 10 measured, at a pinned commit, from its public source. Nothing of it enters this
# repository: it is cloned and built in DEST (default /tmp/withings-server-peer).
#
#   bench/build_peer.sh [SOURCE] [DEST]
#
# SOURCE is the git URL (default: GitHub) or a local clone. Needs git, node >= 20 and npm with a
# C++ toolchain (better-sqlite3 compiles from source when no prebuilt binary matches). Only the
# server is built (`tsc`), not its web UI. The one change made to the built output: the server
# listens on 127.0.0.1 instead of 0.0.0.0, since benchmarks stay on loopback.
set -euo pipefail

# PEER_COMMIT overrides the pin, to try the script on another commit of the peer.
COMMIT=${PEER_COMMIT:-00035cd7594377975b118784962aa393dfc18d74}
SOURCE=${1:-https://github.com/pigsty/withings-server.git}
DEST=${2:-/tmp/withings-server-peer}

for tool in git node npm; do
    command -v "$tool" >/dev/null || { echo "build_peer.sh: $tool is missing; compare with the bare handler only" >&2; exit 1; }
done

if [ ! -d "$DEST/.git" ]; then
    git clone --quiet "$SOURCE" "$DEST"
fi
git -C "$DEST" checkout --quiet --detach "$COMMIT"

cd "$DEST"
if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
else
    npm install --no-audit --no-fund
fi
npx --no-install tsc -p tsconfig.json

# Loopback only: the peer's listen address is a literal in its entry point.
grep -q '"0.0.0.0"' dist/server.js || { echo "build_peer.sh: dist/server.js has no 0.0.0.0 listen address to change" >&2; exit 1; }
sed -i 's/"0\.0\.0\.0"/"127.0.0.1"/' dist/server.js

echo "built $(git rev-parse HEAD) in $DEST; run:"
echo "  .venv/bin/python bench/conversation.py --peer-command 'env PORT={port} SQLITE_PATH={dir}/peer.sqlite node $DEST/dist/server.js'"
