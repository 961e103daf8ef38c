#!/usr/bin/env bash
# Rewrites src/MlNetDeep/PublicAPI.Unshipped.txt from the public API analyzer's findings: run it after a deliberate
# change to the public surface, then read the diff (git diff src/MlNetDeep/PublicAPI.Unshipped.txt) before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
api=src/MlNetDeep/PublicAPI.Unshipped.txt
printf '#nullable enable\n' > "$api"
log=$(mktemp)
dotnet build src/MlNetDeep -c Release --no-incremental -p:MlNetDeepApiCheck=false -nologo > "$log" 2>&1 || true
{ printf '#nullable enable\n'; grep -oE "RS0016: Symbol '.*' is not part of the declared public API" "$log" \
    | sed -E "s/^RS0016: Symbol '(.*)' is not part of the declared public API$/\1/" | sort -u; } > "$api"
rm -f "$log"
echo "$api: $(($(wc -l < "$api") - 1)) entries"
