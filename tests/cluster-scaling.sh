#!/usr/bin/env bash
# The scaling measurement of docs/cluster.md: the same batch job on 1, then 2 silo processes, each silo limited to one
# scoring thread (--workers 1 --threads 1), rows/s as `cluster submit` reports it; each output compared with one
# process's `score` of the same input.
# Usage: [REDIS=host:port] [SILOS="1 2"] [SHARDS=16] tests/cluster-scaling.sh FOLDER (holding model.zip and rows.csv;
# see MeasurementInputs in tests/MlNetDeep.Cluster.Tests). With REDIS the silos' membership is in that Redis;
# without it, localhost clustering (the first silo is the primary).
set -euo pipefail
cli=${CLI:-$(dirname "$0")/../src/MlNetDeep.Cli/bin/Release/net10.0/MlNetDeep.Cli}
cli=$(cd "$(dirname "$cli")" && pwd)/$(basename "$cli")
dir=$(cd "$1" && pwd); cd "$dir"
shards=${SHARDS:-16}
pids=()
stop_silos() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
trap stop_silos EXIT
[ -f single.csv ] || "$cli" score -m model.zip -i rows.csv -o single.csv
for n in ${SILOS:-1 2}; do
  rm -rf "state-scale-$n" "scale-$n.csv" "scale-$n.csv.shards" scale-silo-*.log
  base=$((11400 + 10 * n))
  if [ -n "${REDIS:-}" ]; then where=(--redis "$REDIS"); client=(--redis "$REDIS"); else where=(--primary-port "$base"); client=(--gateway "$((base + 20000))"); fi
  for i in $(seq 0 $((n - 1))); do
    "$cli" cluster silo --port $((base + i)) --gateway-port $((base + 20000 + i)) "${where[@]}" --state "state-scale-$n" \
      --workers 1 --threads 1 > "scale-silo-$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 60); do grep -q "Silo on" "scale-silo-$i.log" && break; sleep 1; done
  done
  "$cli" cluster submit --job "scale-$n-$$" --model model.zip --input rows.csv --output "scale-$n.csv" --shards "$shards" "${client[@]}" > "scale-submit-$n.log" 2>&1 \
    || { cat "scale-submit-$n.log"; exit 1; }
  echo "$n silo(s): $(grep '^Wrote' "scale-submit-$n.log")"
  cmp "scale-$n.csv" single.csv && echo "  scale-$n.csv is byte for byte the single-process output"
  stop_silos
done
