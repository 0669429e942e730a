#!/usr/bin/env bash
# Runs every check and test Herald has, on a fresh machine:
#   formatting, clippy (warnings are errors), unit/property/contract/API/end-to-end tests,
#   and the SAM template checks. Installs and starts what the tests need (moto 5.2.5, the
#   template linters — pinned, from PyPI) and stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."

infra/emulator.sh start
trap 'infra/emulator.sh stop' EXIT
export HERALD_TEST_AWS_ENDPOINT="http://127.0.0.1:${HERALD_MOTO_PORT:-5055}"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-features --locked --no-fail-fast
echo "== template checks"
infra/check-template.sh
