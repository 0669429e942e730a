#!/usr/bin/env bash
# The SMTP server for tests: aiosmtpd, pinned, on loopback, STARTTLS and AUTH required
# (infra/smtp_server.py says what it accepts and refuses).
#   infra/smtp.sh install   # the pinned packages into the venv under .tools/ (idempotent)
#   infra/smtp.sh start     # starts it on 127.0.0.1:$HERALD_SMTP_PORT (default: any free port), waits until ready
#   infra/smtp.sh env       # prints the export lines the tests read
#   infra/smtp.sh stop
# Tests read HERALD_TEST_SMTP (127.0.0.1:port), HERALD_TEST_SMTP_CA (the CA that signed the
# server's certificate) and HERALD_TEST_SMTP_DIR (one JSON file per received message).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools"
venv="$tools/venv"
dir="$tools/smtp"
pidfile="$tools/smtp.pid"

AIOSMTPD_VERSION=1.4.6
PINS=("aiosmtpd==$AIOSMTPD_VERSION" "atpublic==9.0.0" "attrs==26.1.0")

install() {
    if ! "$venv/bin/pip" show aiosmtpd 2>/dev/null | grep -q "^Version: $AIOSMTPD_VERSION$"; then
        mkdir -p "$tools"
        [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
    fi
    command -v openssl >/dev/null || { echo "the SMTP test server needs the openssl command" >&2; exit 1; }
}

running() {
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
    install
    if running && [ -f "$dir/port" ]; then
        echo "SMTP test server already running (pid $(cat "$pidfile")) on 127.0.0.1:$(cat "$dir/port")"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    "$venv/bin/python" "$here/infra/smtp_server.py" --dir "$dir" --port "${HERALD_SMTP_PORT:-0}" \
        >"$tools/smtp.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
        if [ -f "$dir/port" ]; then
            echo "aiosmtpd $AIOSMTPD_VERSION ready on 127.0.0.1:$(cat "$dir/port")"
            return
        fi
        running || break
        sleep 0.2
    done
    echo "the SMTP test server did not start; see $tools/smtp.log" >&2
    exit 1
}

env() {
    [ -f "$dir/port" ] || { echo "the SMTP test server is not running (infra/smtp.sh start)" >&2; exit 1; }
    echo "export HERALD_TEST_SMTP=127.0.0.1:$(cat "$dir/port")"
    echo "export HERALD_TEST_SMTP_CA=$dir/ca.pem"
    echo "export HERALD_TEST_SMTP_DIR=$dir/messages"
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
    env) env ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|env|stop" >&2; exit 2 ;;
esac
