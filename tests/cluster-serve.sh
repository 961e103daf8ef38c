#!/usr/bin/env bash
# The service measurement of docs/cluster.md: `benchmark serve --url` against a 2-silo cluster behind one endpoint
# (two `serve --cluster localhost` processes, after the one-process figures of `benchmark serve` as a baseline; the load goes to the first one's HTTP port, and its /predict requests are
# scored by the model grains of both silos), once undisturbed and once with the second silo killed (SIGKILL) part-way.
# Usage: tests/cluster-serve.sh [MODEL] (default models/mnist-cnn/mnist-cnn.zip; REQUESTS, CLIENTS, KILL_AFTER seconds)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli=${CLI:-$root/src/MlNetDeep.Cli/bin/Release/net10.0/MlNetDeep.Cli}
model=$(cd "$root" && realpath "${1:-models/mnist-cnn/mnist-cnn.zip}")
requests=${REQUESTS:-20000}; clients=${CLIENTS:-8}; kill_after=${KILL_AFTER:-5}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start_silos() {
  pids=()
  "$cli" serve -m "$model" --port 5180 --cluster localhost --silo-port 11311 --gateway-port 30300 > "$work/silo-0.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 90); do grep -q "Listening" "$work/silo-0.log" && break; sleep 1; done
  "$cli" serve -m "$model" --port 5181 --cluster localhost --silo-port 11312 --gateway-port 30301 --primary-port 11311 > "$work/silo-1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 90); do grep -q "Listening" "$work/silo-1.log" && break; sleep 1; done
  grep -q "Listening" "$work/silo-0.log" && grep -q "Listening" "$work/silo-1.log" || { cat "$work"/silo-*.log; exit 1; }
}
cd "$root"
echo "== one process (the baseline): benchmark serve --requests $requests --clients $clients"
"$cli" benchmark serve --model "$model" --requests "$requests" --clients "$clients" | tail -3
for run in undisturbed killed; do
  start_silos
  echo "== $run: $requests requests, $clients clients, to http://127.0.0.1:5180 (silos: pids ${pids[*]})"
  start=$(date +%s.%N)
  "$cli" benchmark serve --model "$model" --url http://127.0.0.1:5180 --requests "$requests" --clients "$clients" > "$work/bench-$run.log" 2>&1 &
  bench=$!
  if [ "$run" = killed ]; then
    sleep "$kill_after"
    kill -9 "${pids[1]}"
    echo "killed silo 1 (pid ${pids[1]}) at $(echo "$(date +%s.%N) - $start" | bc) s"
  fi
  wait $bench
  cat "$work/bench-$run.log"
  echo "silo 0 retries logged: $(grep -c 'sent again' "$work/silo-0.log" || true)"
  grep 'sent again' "$work/silo-0.log" | head -3 || true
  cleanup
done
