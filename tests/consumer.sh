#!/usr/bin/env bash
# Builds and runs tests/Consumer as an app OUTSIDE this repository that references MlNetDeep by ProjectReference:
# it trains a few steps, saves, loads and predicts. It fails when the library does not load in a consumer's app
# (e.g. TorchSharp's native shim on Debian 12). Prints "consumer: ok" on success.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$repo/tests/Consumer/Program.cs" "$work/"
sed "s|@REFERENCE@|<ProjectReference Include=\"$repo/src/MlNetDeep/MlNetDeep.csproj\" />|" \
  "$repo/tests/Consumer/Consumer.csproj.template" > "$work/Consumer.csproj"
# A fresh cache for the patched shim, so the load-time fix really runs.
export MLNETDEEP_NATIVE_CACHE="$work/native-cache"
dotnet build "$work/Consumer.csproj" -c Release -r linux-x64 --self-contained false -o "$work/out" -v quiet -nologo
dotnet "$work/out/Consumer.dll" | tee "$work/run.log"
grep -q '^predicted ' "$work/run.log"
echo "consumer: ok"
