#!/usr/bin/env bash
# The failover measurement of docs/cluster.md: a scoring job on 3 silos (3 processes on this machine), one silo
# killed with SIGKILL mid-job, the output compared with one process's `score` of the same input.
# Usage: tests/cluster-failover.sh FOLDER (holding model.zip and rows.csv, e.g. from `mlnetdeep cluster example-inputs -o FOLDER`)
# THREADS (scoring threads per silo, default 1), SHARDS (default 32), KILL_AT (shards done when the silo is killed; default half of them), KILL=0 (no kill).
set -euo pipefail
cli=${CLI:-$(dirname "$0")/../src/MlNetDeep.Cli/bin/Release/net10.0/MlNetDeep.Cli}
cli=$(cd "$(dirname "$cli")" && pwd)/$(basename "$cli")
dir=$(cd "$1" && pwd); cd "$dir"
shards=${SHARDS:-32}
kill_at=${KILL_AT:-$((shards / 2))}
rm -rf state3 three.csv three.csv.shards silo-*.log
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for i in 0 1 2; do
  "$cli" cluster silo --port $((11111 + i)) --gateway-port $((30000 + i)) --primary-port 11111 --state state3 --workers 1 --threads "${THREADS:-1}" > silo-$i.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 60); do grep -q "Silo on" silo-$i.log && break; sleep 1; done
done
[ -f single.csv ] || "$cli" score -m model.zip -i rows.csv -o single.csv | tail -1
start=$(date +%s.%N)
"$cli" cluster submit --job failover --model model.zip --input rows.csv --output three.csv --shards "$shards" --gateway 30000 > submit.log 2>&1 &
submit=$!
# Kill the third silo (not the primary, which holds this one-machine cluster's membership) once KILL_AT shards are done.
while [ "${KILL:-1}" = 1 ] && kill -0 $submit 2>/dev/null; do
  done_shards=$(grep -o 'shards [0-9]*' submit.log | tail -1 | cut -d' ' -f2 || true)
  if [ "${done_shards:-0}" -ge "$kill_at" ]; then kill -9 "${pids[2]}"; echo "killed silo 2 (pid ${pids[2]}) at $(echo "$(date +%s.%N) - $start" | bc) s with $done_shards/$shards shards done"; break; fi
  sleep 0.1
done
wait $submit || true
echo "job took $(echo "$(date +%s.%N) - $start" | bc) s"
cat submit.log
cmp three.csv single.csv && echo "three.csv is byte for byte the single-process output ($(($(wc -l < three.csv) - 1)) rows)"
