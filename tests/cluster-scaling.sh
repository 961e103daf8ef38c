#!/usr/bin/env bash
# The overhead and scaling measurement of docs/cluster.md: the same batch job on 1, then 2 silo processes, each silo
# limited to one scoring thread (--workers 1 --threads 1), against the plain `score` command on the same input on one
# thread, in turn (score, job, score, job, ...), so that each job is compared with the score run just before it on a
# machine whose speed drifts. Rows/s is what each command reports (for a job: submission, scoring, merge); every
# output is compared with score's, byte for byte. Prints each pair and the median ratio per silo count.
# Usage: [REDIS=host:port] [SILOS="1 2"] [SHARDS=16] [REPEATS=5] tests/cluster-scaling.sh FOLDER (holding model.zip
# and rows.csv, e.g. from `mlnetdeep cluster example-inputs -o FOLDER`). With REDIS the silos' membership and job
# state are in that Redis; without it, localhost clustering (the first silo is the primary) and state in a folder.
set -euo pipefail
cli=${CLI:-$(dirname "$0")/../src/MlNetDeep.Cli/bin/Release/net10.0/MlNetDeep.Cli}
cli=$(cd "$(dirname "$cli")" && pwd)/$(basename "$cli")
dir=$(cd "$1" && pwd); cd "$dir"
shards=${SHARDS:-16}; repeats=${REPEATS:-5}
pids=()
stop_silos() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
trap stop_silos EXIT
rate() { grep -o '([0-9,]* rows/s)' | tr -d '(),' | cut -d' ' -f1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
for n in ${SILOS:-1 2}; do
  rm -rf "state-scale-$n" scale-silo-*.log
  base=$((11400 + 10 * n))
  if [ -n "${REDIS:-}" ]; then where=(--redis "$REDIS"); client=(--redis "$REDIS"); else where=(--primary-port "$base"); client=(--gateway "$((base + 20000))"); fi
  for i in $(seq 0 $((n - 1))); do
    "$cli" cluster silo --port $((base + i)) --gateway-port $((base + 20000 + i)) "${where[@]}" --state "state-scale-$n" \
      --workers 1 --threads 1 > "scale-silo-$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 60); do grep -q "Silo on" "scale-silo-$i.log" && break; sleep 1; done
  done
  ratios=()
  for r in $(seq 1 "$repeats"); do
    score_rate=$(OMP_NUM_THREADS=1 "$cli" score -m model.zip -i rows.csv -o single.csv | tail -1 | rate)
    rm -rf "scale-$n.csv" "scale-$n.csv.shards"
    "$cli" cluster submit --job "scale-$n-$$-$r" --model model.zip --input rows.csv --output "scale-$n.csv" --shards "$shards" "${client[@]}" > "scale-submit-$n.log" 2>&1 \
      || { cat "scale-submit-$n.log"; exit 1; }
    job_rate=$(grep '^Wrote' "scale-submit-$n.log" | rate)
    cmp -s "scale-$n.csv" single.csv || { echo "scale-$n.csv differs from score's output"; exit 1; }
    ratio=$(echo "scale=3; $job_rate / $score_rate" | bc)
    ratios+=("$ratio")
    echo "$n silo(s), pair $r: score $score_rate rows/s, job $job_rate rows/s: ${ratio}x (output byte for byte score's)"
  done
  echo "$n silo(s): median ${shards}-shard job / score ratio over $repeats pairs: $(printf '%s\n' "${ratios[@]}" | median)x"
  stop_silos
done
