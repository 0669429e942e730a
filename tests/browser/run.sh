#!/usr/bin/env bash
# Browser tests of the <herald-feed> widget: installs Chromium (Debian) and playwright-core, starts
# `herald serve` on a free port with a fresh data directory, runs the node tests, stops the server.
# Screenshots and the server log go to tests/artifacts/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
artifacts="$root/tests/artifacts"
mkdir -p "$artifacts"

if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

target="${CARGO_TARGET_DIR:-$root/target}"
herald="${HERALD_BIN:-$target/debug/herald}"
if [ -z "${HERALD_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p herald --bin herald)
fi

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
data=$(mktemp -d)
export HERALD_DEV_ORG_ID="${HERALD_DEV_ORG_ID:-$(node -e 'const b=require("crypto").randomBytes(16);b[6]=(b[6]&0x0f)|0x70;b[8]=(b[8]&0x3f)|0x80;const h=b.toString("hex");console.log(`${h.slice(0,8)}-${h.slice(8,12)}-${h.slice(12,16)}-${h.slice(16,20)}-${h.slice(20)}`)')}"
export HERALD_DEV_API_KEY=pk_test_browser
export HERALD_ADMIN_KEY="browser-admin-$(node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))')"

"$herald" serve --port "$port" --data-dir "$data" --allow-private-targets 127.0.0.0/8 >"$artifacts/herald-serve.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

# `herald serve` listens only once it is ready.
for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$port/openapi.json" 2>/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "herald serve exited; see $artifacts/herald-serve.log" >&2; exit 1; fi
  sleep 0.2
done

cd "$here"
HERALD_URL="http://127.0.0.1:$port" HERALD_ORG_ID="$HERALD_DEV_ORG_ID" HERALD_API_KEY="$HERALD_DEV_API_KEY" \
  node --test --test-concurrency=1 feed.test.mjs
