#!/usr/bin/env bash
# Builds the five Lambda bootstraps the way `sam build` does — `cargo lambda build --release` —
# for this machine's architecture, and prints each bootstrap's size; fails if one is 8 MB or more
# (SPEC §5).
#
#   bash infra/lambda-build.sh            # install cargo-lambda if needed, build, print sizes
#   bash infra/lambda-build.sh install    # only install cargo-lambda
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
LIMIT_BYTES=$((8 * 1024 * 1024))

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
    local started=$SECONDS
    "$venv/bin/cargo-lambda" lambda build --release --compiler cargo --skip-target-check \
        --target "$(rustc -vV | sed -n 's/^host: //p')" "${packages[@]}"
    echo "built in $((SECONDS - started)) s ($(uname -m), release profile)"

    local out="${CARGO_TARGET_DIR:-$root/target}/lambda"
    local too_big=0
    printf '%-20s %12s %9s\n' "function" "bytes" "MiB"
    for f in "${FUNCTIONS[@]}"; do
        local size
        size=$(stat -c %s "$out/$f/bootstrap")
        printf '%-20s %12d %9.2f\n' "$f" "$size" "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')"
        if [ "$size" -ge "$LIMIT_BYTES" ]; then
            echo "  $f: bootstrap is over the 8 MB budget" >&2
            too_big=1
        fi
    done
    return "$too_big"
}

case "${1:-build}" in
    install) install ;;
    build) build ;;
    *) echo "usage: $0 [install|build]" >&2; exit 2 ;;
esac
