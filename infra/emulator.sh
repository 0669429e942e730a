#!/usr/bin/env bash
# The AWS API emulator for tests: moto server, pinned, on loopback.
#   infra/emulator.sh install   # venv under .tools/ with the pinned packages (idempotent)
#   infra/emulator.sh start     # starts moto on 127.0.0.1:$HERALD_MOTO_PORT (default 5055), waits until ready
#   infra/emulator.sh stop
# Tests read the endpoint from HERALD_TEST_AWS_ENDPOINT (e.g. http://127.0.0.1:5055).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools"
venv="$tools/venv"
port="${HERALD_MOTO_PORT:-5055}"
pidfile="$tools/moto.pid"

MOTO_VERSION=5.2.5

install() {
    if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/pip" show moto 2>/dev/null | grep -q "^Version: $MOTO_VERSION$"; then
        mkdir -p "$tools"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server,dynamodb]==$MOTO_VERSION"
    fi
}

start() {
    install
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "moto already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
        return
    fi
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$tools/moto.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
            echo "moto $MOTO_VERSION ready on http://127.0.0.1:$port"
            return
        fi
        sleep 0.2
    done
    echo "moto did not start; see $tools/moto.log" >&2
    exit 1
}

stop() {
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
