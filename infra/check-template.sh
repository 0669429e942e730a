#!/usr/bin/env bash
# Checks template.yaml, offline once installed:
#   1. cfn-lint (pinned)                        — CloudFormation/SAM schema and best-practice rules
#   2. sam validate --lint (SAM CLI, pinned)    — the SAM transform plus the same linter as SAM runs it
#   3. infra/check_functions.py                 — function resources vs the crates under functions/
#
#   bash infra/check-template.sh            # install if needed, then run all three checks
#   bash infra/check-template.sh install    # only install the pinned tools
#
# The tools live in their own venv, .tools/lint-venv (SAM CLI pins boto3/botocore versions that
# must not disturb the emulator's venv). Only pip talks to the network, and only to PyPI.
# The checks themselves make no network call:
#   - `sam validate --lint` runs cfn-lint in-process; it calls AWS (IAM) only without --lint.
#   - SAM CLI telemetry is off (SAM_CLI_TELEMETRY=0).
#   - SAM CLI's weekly "newer version" look-up (no flag or env turns it off) is skipped by giving
#     it its own config folder (__SAM_CLI_APP_DIR) whose last check lies in the future.
#   - Region and credentials are fixed dummies, and the user's ~/.aws files are not read.
# Exits non-zero if any check fails, after running all of them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
venv="$tools/lint-venv"

CFN_LINT_VERSION=1.58.0
SAM_CLI_VERSION=1.170.0

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

installed() {
    [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/sam" ] && "$venv/bin/python" - "$CFN_LINT_VERSION" "$SAM_CLI_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("cfn-lint"), version("aws-sam-cli")) == (sys.argv[1], sys.argv[2]) else 1)
EOF
}

install() {
    if installed; then
        echo "lint tools present: cfn-lint $CFN_LINT_VERSION, aws-sam-cli $SAM_CLI_VERSION ($venv)"
        return
    fi
    echo "installing cfn-lint $CFN_LINT_VERSION and aws-sam-cli $SAM_CLI_VERSION into $venv ..."
    mkdir -p "$tools"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
        "cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"
    installed || { echo "error: installed versions differ from the pins" >&2; exit 1; }
}

offline_env() {
    export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
    export SAM_CLI_TELEMETRY=0
    export __SAM_CLI_APP_DIR="$tools/sam-cli-home"
    mkdir -p "$__SAM_CLI_APP_DIR"
    # lastVersionCheck in 2100: SAM CLI's version look-up only runs when the last one is >7 days old.
    printf '{"telemetryEnabled": false, "lastVersionCheck": 4102444800}\n' >"$__SAM_CLI_APP_DIR/metadata.json"
}

main() {
    local t failures=()
    t=$(now)
    install
    local t_install; t_install=$(elapsed "$t")

    offline_env
    cd "$root"

    echo "== cfn-lint $CFN_LINT_VERSION template.yaml"
    t=$(now)
    if "$venv/bin/cfn-lint" --regions us-east-1 -- template.yaml; then
        echo "cfn-lint: no errors, no warnings"
    else
        failures+=("cfn-lint")
    fi
    local t_cfn; t_cfn=$(elapsed "$t")

    echo "== sam validate --lint (aws-sam-cli $SAM_CLI_VERSION)"
    t=$(now)
    if ! "$venv/bin/sam" validate --lint --template template.yaml --region us-east-1; then
        failures+=("sam validate --lint")
    fi
    local t_sam; t_sam=$(elapsed "$t")

    echo "== infra/check_functions.py"
    t=$(now)
    if ! "$venv/bin/python" infra/check_functions.py "$root"; then
        failures+=("check_functions.py")
    fi
    local t_fn; t_fn=$(elapsed "$t")

    echo "times: install ${t_install}s, cfn-lint ${t_cfn}s, sam validate --lint ${t_sam}s, check_functions ${t_fn}s"
    if [ ${#failures[@]} -gt 0 ]; then
        echo "template checks FAILED: ${failures[*]}" >&2
        exit 1
    fi
    echo "template checks passed: cfn-lint, sam validate --lint, check_functions"
}

case "${1:-}" in
    install) install ;;
    "") main ;;
    *) echo "usage: $0 [install]" >&2; exit 2 ;;
esac
