#!/usr/bin/env bash
# Runs every check and test Herald has, on a fresh machine: formatting, clippy (warnings are
# errors), unit/property/contract/API/end-to-end tests, the browser tests of the feed widget, the
# SAM template checks and the Lambda release builds, and schemathesis over every operation of a
# real `herald serve`, and the README's walk-through through a client generated from the OpenAPI
# document. Installs and starts what the tests need — moto 5.2.5, aiosmtpd 1.4.6, schemathesis
# 4.32.5, openapi-python-client 0.29.1, jsonschema 4.26.0, the template linters and cargo-lambda
# (pinned, from PyPI), Chromium (Debian) and playwright-core (npm, from the lockfile) — and stops
# it after.
set -euo pipefail
cd "$(dirname "$0")/.."

infra/emulator.sh start
trap 'infra/emulator.sh stop; infra/smtp.sh stop' EXIT
export HERALD_TEST_AWS_ENDPOINT="http://127.0.0.1:${HERALD_MOTO_PORT:-5055}"
# A real SMTP server (aiosmtpd, pinned; STARTTLS and AUTH required) for the SMTP provider tests:
# sets HERALD_TEST_SMTP, HERALD_TEST_SMTP_CA and HERALD_TEST_SMTP_DIR.
infra/smtp.sh start
eval "$(infra/smtp.sh env)"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== crate layering (docs/architecture.md)"
infra/check-layers.sh
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-features --locked --no-fail-fast
echo "== schemathesis over every operation of herald serve (fixed seed, bounded examples)"
# `cargo test` built target/debug/herald (the binary of the herald crate's integration tests).
infra/schemathesis.sh run
echo "== the README's walk-through through a client generated from docs/openapi.json (openapi-python-client)"
infra/client-walkthrough.sh run
echo "== AWS calls per routed event (the tables behind docs/cost.md)"
cargo test -p herald-e2e --test aws --all-features --locked -- costs --nocapture --test-threads 1
echo "== browser tests (the feed widget in headless Chromium)"
tests/browser/run.sh
echo "== template checks"
infra/check-template.sh
echo "== Lambda builds (cargo lambda build --release, host architecture; bootstrap sizes and cold init)"
infra/lambda-build.sh
