#!/usr/bin/env bash
# Schemathesis (pinned, from PyPI into .tools/) over every operation of a real `herald serve`:
# property-based requests generated from its OpenAPI document, a fixed seed and a bounded number
# of examples per operation; fails on any 5xx, any status, content type, header or body the
# document does not describe, an ignored credential, a wrong 405. Not checked: whether the
# document alone predicts acceptance (positive_data_acceptance, negative_data_rejection) — it
# does not repeat every validation rule (lengths, character sets, cross-field rules), which
# answer 400/422 with the field at fault, as documented.
#   infra/schemathesis.sh install   # venv under .tools/ (idempotent)
#   infra/schemathesis.sh run       # starts herald serve, runs schemathesis, stops the server
# The herald binary: $HERALD_BIN, else target/debug/herald (built by `cargo build -p herald`,
# which this runs when it is missing). SCHEMATHESIS_MAX_EXAMPLES (default 50) and
# SCHEMATHESIS_SEED (default 20261206) tune the run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools"
venv="$tools/schemathesis"

SCHEMATHESIS_VERSION=4.32.5
# Schemathesis's generator, pinned too: a fresh clone must get the same one.
HYPOTHESIS_VERSION=6.170.29

install() {
    if [ ! -x "$venv/bin/st" ] \
        || ! "$venv/bin/pip" show schemathesis 2>/dev/null | grep -q "^Version: $SCHEMATHESIS_VERSION$" \
        || ! "$venv/bin/pip" show hypothesis 2>/dev/null | grep -q "^Version: $HYPOTHESIS_VERSION$"; then
        mkdir -p "$tools"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
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

run() {
    install
    local bin="${HERALD_BIN:-$here/target/debug/herald}"
    if [ ! -x "$bin" ]; then
        (cd "$here" && cargo build -p herald --locked)
    fi
    work=$(mktemp -d)
    trap cleanup EXIT
    local org=5c1e0b7a-4d2f-4b8e-9a31-6f0d2c7e9b15
    local key=pk_test_schemathesis_0001
    local admin=ak_test_schemathesis_0001
    : >"$work/stdout"
    # Fixed credentials; no other HERALD_* value of the caller's environment.
    env $(env | grep -o '^HERALD_[A-Z_]*' | sed 's/^/-u /') \
        HERALD_DEV_ORG_ID=$org HERALD_DEV_API_KEY=$key HERALD_ADMIN_KEY=$admin \
        "$bin" serve --port 0 --data-dir "$work/data" --retry-max-attempts 1 \
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
    # Every operation of the dev org: its id in paths, both credentials on every request.
    cat >"$work/schemathesis.toml" <<TOML
[parameters]
"path.orgId" = "$org"
TOML
    local status=0
    # From the scratch directory: schemathesis keeps a cache in its working directory. One worker:
    # with two (threads), hypothesis parses lambdas' source concurrently and this Python (3.11.7)
    # can fail that with "AST constructor recursion depth mismatch" (it did, once, on 7 December
    # 2026: a runtime error of the tool, not a finding).
    (cd "$work" && "$venv/bin/st" --config-file "$work/schemathesis.toml" run "$url/openapi.json" \
        --url "$url" \
        -H "x-api-key: $key" -H "x-admin-key: $admin" \
        --checks all \
        --exclude-checks positive_data_acceptance,negative_data_rejection \
        --seed "${SCHEMATHESIS_SEED:-20261206}" \
        --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
        --phases examples,coverage,fuzzing,stateful \
        --workers 1 \
        --request-timeout 10 \
        --no-shrink \
        --report junit --report-dir "$here/target/schemathesis") \
        || status=$?
    if [ $status -ne 0 ]; then
        echo "== herald serve log (last 50 lines)" >&2
        tail -n 50 "$work/herald.log" >&2
    fi
    return $status
}

case "${1:-}" in
    install) install ;;
    run) run ;;
    *) echo "usage: $0 install|run" >&2; exit 2 ;;
esac
