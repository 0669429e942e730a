#!/usr/bin/env bash
# Proves docs/openapi.json is a document a client generator can use: checks its examples against
# its schemas (jsonschema), generates a Python client from it with openapi-python-client (both
# pinned, from PyPI into .tools/) and runs the README's walk-through through that client
# (infra/client_walkthrough.py) against a real `herald serve` on loopback: an org and an API key
# with the admin key, a webhook channel to a local receiver, the channel test, a rule (and one
# with a matcher tree), an event, the delivery log until it is delivered, the stats; then
# docs/feeds.md's feed example. Fails on any warning of the generator (a type it could not use),
# on an example its schema refuses, and on any step that does not answer what the document says.
#   infra/client-walkthrough.sh install   # venv under .tools/ (idempotent)
#   infra/client-walkthrough.sh run       # generates the client, starts herald serve, walks, stops
# The herald binary: $HERALD_BIN, else target/debug/herald (built by `cargo build -p herald`,
# which this runs when it is missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools"
venv="$tools/openapi-client"

OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
# Checks the document's examples against its schemas.
JSONSCHEMA_VERSION=4.26.0

installed() {
    "$venv/bin/pip" show "$1" 2>/dev/null | grep -q "^Version: $2$"
}

install() {
    if [ ! -x "$venv/bin/openapi-python-client" ] \
        || ! installed openapi-python-client "$OPENAPI_PYTHON_CLIENT_VERSION" \
        || ! installed jsonschema "$JSONSCHEMA_VERSION"; then
        mkdir -p "$tools"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" "jsonschema==$JSONSCHEMA_VERSION"
    fi
}

pid=""
work=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    [ -z "$work" ] || rm -rf "$work"
}

generate() {
    # The generated package formats itself with ruff, which the venv holds.
    local log="$work/generate.log"
    cat >"$work/generator.yaml" <<'YAML'
project_name_override: herald-client
package_name_override: herald_client
YAML
    if ! (cd "$work" && PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate \
        --path "$here/docs/openapi.json" --config "$work/generator.yaml" \
        --meta none --output-path "$work/client/herald_client") >"$log" 2>&1; then
        cat "$log" >&2
        echo "openapi-python-client failed" >&2
        return 1
    fi
    # Warnings name a path or schema the client leaves out or cannot type. The one accepted:
    # the open-tracking pixel's image/gif answer (binary, for mail clients, not API clients).
    local unexpected
    unexpected=$(grep -v -e "Unsupported content_type image/gif" "$log" \
        | grep -i -e "warning" -e "error" -e "cannot" -e "unable" -e "skipping" \
        | grep -v -e "^Warning(s) encountered while generating" -e "^WARNING parsing GET /t/o/{token}" || true)
    if [ -n "$unexpected" ]; then
        cat "$log" >&2
        echo "openapi-python-client warned about the document: $unexpected" >&2
        return 1
    fi
}

run() {
    install
    local bin="${HERALD_BIN:-$here/target/debug/herald}"
    if [ ! -x "$bin" ]; then
        (cd "$here" && cargo build -p herald --locked)
    fi
    work=$(mktemp -d)
    trap cleanup EXIT
    local started=$SECONDS
    generate
    echo "client generated in $((SECONDS - started)) s"
    local admin=ak_test_client_walkthrough_0001
    : >"$work/stdout"
    # Loopback receivers allowed; no HERALD_* value of the caller's environment but the admin key.
    # Rules take effect at once (`--rules-cache-seconds 0`; by default within 2 s, docs/pipeline.md):
    # the walk-through posts events right after creating their rules.
    env $(env | grep -o '^HERALD_[A-Z_]*' | sed 's/^/-u /') \
        HERALD_ADMIN_KEY=$admin \
        "$bin" serve --port 0 --data-dir "$work/data" --allow-private-targets 127.0.0.0/8 \
        --rules-cache-seconds 0 \
        >"$work/stdout" 2>"$work/herald.log" &
    pid=$!
    local url=""
    for _ in $(seq 1 150); do
        url=$(sed -n 's/^Herald is running at //p' "$work/stdout")
        [ -n "$url" ] && break
        kill -0 $pid 2>/dev/null || { cat "$work/herald.log" >&2; echo "herald serve exited" >&2; return 1; }
        sleep 0.2
    done
    [ -n "$url" ] || { echo "herald serve did not start" >&2; return 1; }
    local status=0
    PYTHONPATH="$work/client" "$venv/bin/python" "$here/infra/client_walkthrough.py" \
        "$here/docs/openapi.json" "$url" "$admin" \
        || status=$?
    if [ $status -ne 0 ]; then
        echo "== herald serve log (last 50 lines)" >&2
        tail -n 50 "$work/herald.log" >&2
    fi
    echo "client walk-through: $((SECONDS - started)) s"
    return $status
}

case "${1:-}" in
    install) install ;;
    run) run ;;
    *) echo "usage: $0 install|run" >&2; exit 2 ;;
esac
