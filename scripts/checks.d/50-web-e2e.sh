#!/usr/bin/env bash
# Browser tests of the web page: type-checks web/src, takes `disgrafs` from $DISGRAFS_BIN (the
# binary of scripts/test's one build) or builds it, serves a temporary data directory on a free
# loopback port, and runs web/test/e2e.test.mjs (node's test runner, playwright-core driving
# /usr/bin/chromium headless) against it; stops the server by its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

# build.rs installed web/node_modules when it built the page; install it here if it did not.
[ -d web/node_modules/playwright-core ] || (cd web && npm ci --no-audit --no-fund --loglevel=error)
(cd web && npx tsc --noEmit)

BIN="${DISGRAFS_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --locked -p disgrafs-cli
  BIN=target/debug/disgrafs
fi
DATA=$(mktemp -d)
# A user for the page's login form, and a token for the test's own API calls.
export DISGRAFS_USER=e2e DISGRAFS_PASSWORD="e2e-$RANDOM-$RANDOM"
printf '%s\n' "$DISGRAFS_PASSWORD" | "$BIN" admin user add "$DISGRAFS_USER" --password-stdin --data-dir "$DATA/d"
DISGRAFS_TOKEN=$("$BIN" admin token --user "$DISGRAFS_USER" --scope write --data-dir "$DATA/d" 2>/dev/null)
export DISGRAFS_TOKEN
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/d" >"$DATA/server.log" 2>&1 &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -fsS -H "Authorization: Bearer $DISGRAFS_TOKEN" "$URL/api/health" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { echo "50-web-e2e: the server exited:"; cat "$DATA/server.log"; exit 1; }
  sleep 0.2
done
curl -fsS -H "Authorization: Bearer $DISGRAFS_TOKEN" "$URL/api/health" >/dev/null || { echo "50-web-e2e: the server did not answer on $URL"; cat "$DATA/server.log"; exit 1; }

cd web
if ! DISGRAFS_URL="$URL" node --test --test-reporter=spec test/e2e.test.mjs; then
  echo "50-web-e2e: the server's log:"
  tail -n 50 "$DATA/server.log"
  exit 1
fi
