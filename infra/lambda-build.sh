#!/usr/bin/env bash
# Builds the five Lambda bootstraps the way `sam build` does — `cargo lambda build --release`,
# the release profile being the Lambda profile (fat LTO, `opt-level = "z"`, `panic = "abort"`;
# root Cargo.toml; linked without unwind tables, functions/bootstrap/build.rs) — in one cargo
# run for this machine's architecture, prints each bootstrap's size against SPEC §5's 8 MB
# target, then measures each one's cold init against a loopback Lambda Runtime API
# (`infra/lambda-init.py`: process start -> first `next`, and the first invocation).
# Fails if a build fails or a bootstrap does not answer its event; a bootstrap over a target is
# reported, not fatal (see docs/benchmarks.md for where the bytes go).
#
#   bash infra/lambda-build.sh            # install cargo-lambda if needed, build, sizes, init
#   bash infra/lambda-build.sh install    # only install cargo-lambda
#   bash infra/lambda-build.sh init       # only the init measurement of the last build
#
# cargo-lambda comes pinned from PyPI into its own venv (.tools/lambda-venv). Nothing else is
# downloaded: the host target is the toolchain's own (`--compiler cargo`: plain cargo and the
# system linker, no Zig, no `rustup target add`; `--skip-target-check` keeps cargo-lambda from
# asking rustup). The deployed functions are arm64 and built by `sam build`; the host build shows
# what the release profile makes of the same code.
#
# Output: $CARGO_TARGET_DIR (default target/)/lambda/<binary>/bootstrap.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
venv="$tools/lambda-venv"

CARGO_LAMBDA_VERSION=1.9.2
FUNCTIONS=(herald-api herald-ingest herald-matcher herald-dispatcher herald-feed-socket)
# The Lambda code generation the arm64 build gets from .cargo/config.toml
# (`[target.aarch64-unknown-linux-gnu]`: non-PIE), for the host target here — set per build, so
# the workspace's debug and `serve` builds keep the defaults.
LAMBDA_RUSTFLAGS="-C relocation-model=static"
# 8 MB read strictly: 8,000,000 bytes (8 MiB would allow 388,608 more).
LIMIT_BYTES=8000000

install() {
    if [ -x "$venv/bin/cargo-lambda" ] && "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q " $CARGO_LAMBDA_VERSION"; then
        return
    fi
    mkdir -p "$tools"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
}

build() {
    install
    cd "$root"
    local packages=()
    for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
    local host started=$SECONDS
    host=$(rustc -vV | sed -n 's/^host: //p')
    local flags_var="CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
    env "$flags_var=$LAMBDA_RUSTFLAGS" \
    "$venv/bin/cargo-lambda" lambda build --release --compiler cargo --skip-target-check \
        --target "$host" "${packages[@]}"
    echo "built in $((SECONDS - started)) s ($(uname -m), release profile = Lambda profile)"

    local out="${CARGO_TARGET_DIR:-$root/target}/lambda"
    printf '%-20s %12s %9s  %s\n' "function" "bytes" "MiB" "8 MB target"
    for f in "${FUNCTIONS[@]}"; do
        local size verdict=met
        size=$(stat -c %s "$out/$f/bootstrap")
        [ "$size" -lt "$LIMIT_BYTES" ] || verdict=MISSED
        printf '%-20s %12d %9.2f  %s\n' "$f" "$size" "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" "$verdict"
    done
    init
}

init() {
    python3 "$root/infra/lambda-init.py" "${CARGO_TARGET_DIR:-$root/target}/lambda"
}

case "${1:-build}" in
    install) install ;;
    build) build ;;
    init) init ;;
    *) echo "usage: $0 [install|build|init]" >&2; exit 2 ;;
esac
