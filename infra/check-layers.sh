#!/usr/bin/env bash
# The crate layering, checked (docs/architecture.md draws it):
#   herald-core    pure: none of Herald's crates, and no tokio, async-trait, AWS SDK, redb or reqwest
#   herald-shared  herald-core only
#   functions/*    herald-shared and herald-core, never another function (herald, the local
#                  all-in-one binary, is the one crate that links every function)
#   herald-testing (test support, dev-dependency only) herald-shared and herald-core
# Fails naming the arrow that runs the wrong way.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo metadata --format-version 1 --locked --no-deps | python3 -c '
import json, sys
meta = json.load(sys.stdin)
ours = {p["name"] for p in meta["packages"]}
allowed = {
    "herald-core": set(),
    "herald-shared": {"herald-core"},
    "herald-api": {"herald-core", "herald-shared"},
    "herald-ingest": {"herald-core", "herald-shared"},
    "herald-matcher": {"herald-core", "herald-shared"},
    "herald-dispatcher": {"herald-core", "herald-shared"},
    "herald-feed-socket": {"herald-core", "herald-shared"},
    "herald": ours,
    "herald-testing": {"herald-core", "herald-shared"},
    "herald-e2e": ours,
}
bad = []
for p in meta["packages"]:
    for d in p["dependencies"]:
        if d["name"] in ours and d["kind"] != "dev" and d["name"] not in allowed.get(p["name"], set()):
            bad.append(p["name"] + " -> " + d["name"])
if bad:
    sys.exit("layering: arrows that run the wrong way:\n  " + "\n  ".join(bad))
'

forbidden='^(tokio|async-trait|aws-[a-z-]+|redb|reqwest|hyper|lettre) '
if found=$(cargo tree -p herald-core -e normal --prefix none --locked | grep -E "$forbidden" | sort -u) && [ -n "$found" ]; then
    echo "layering: herald-core must stay pure, but depends on:"; echo "$found"; exit 1
fi
if grep -rnE 'herald_(shared|api|ingest|matcher|dispatcher|feed_socket)\b' core/src core/benches --include=*.rs | grep -vE '^[^:]+:[0-9]+:\s*//'; then
    echo "layering: herald-core code names a crate above it (above)"; exit 1
fi
echo "layering ok: core is pure; shared uses core only; no function uses another"
