#!/usr/bin/env bash
# Benchmark: jobs per second against the number of `af worker` processes, with a stub job
# (no sleep: the cost is the queue's — a delivery taken, the run claimed, the outcome written),
# on the embedded SQLite and on a throwaway PostgreSQL (scripts/postgres-temp.sh).
# Usage: bash bench/jobs.sh [JOBS] [WORKER COUNTS…]     (default 2000 jobs; 1 2 4 8 workers,
# each running 4 at once; results: bench/out/jobs.tsv)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-2000}; shift || true
counts=${*:-1 2 4 8}
out=bench/out; mkdir -p "$out"
cargo build --release --locked -q -p af-cli
af=target/release/af
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; scripts/postgres-temp.sh stop "$tmp/pg" || true; rm -rf "$tmp"; }
trap cleanup EXIT
pg=$(scripts/postgres-temp.sh start "$tmp/pg")
echo -e "engine\tworkers\tjobs\tseconds\tjobs_per_s" > "$out/jobs.tsv"
for engine in sqlite postgres; do
  for w in $counts; do
    if [ "$engine" = sqlite ]; then db="sqlite://$tmp/jobs-$w.db"; else db="$pg"; psql -q "$pg" -c 'TRUNCATE af_runs, af_effects; TRUNCATE apalis.jobs CASCADE' >/dev/null 2>&1 || true; fi
    data="$tmp/data-$engine-$w"; mkdir -p "$data"
    $af runs enqueue --kind stub --finding bench --service bench --input "{\"w\":$w}" --count "$jobs" --database "$db" --data-dir "$data" >/dev/null
    start=$(date +%s.%N)
    pids=()
    for i in $(seq "$w"); do
      $af worker --name "b$i" --concurrency 4 --database "$db" --data-dir "$data" 2>/dev/null & pids+=($!)
    done
    while :; do
      left=$($af runs ls --json --limit 100000 --database "$db" --data-dir "$data" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["status"] not in ("succeeded","failed","dead","cancelled")))')
      [ "$left" = 0 ] && break
      sleep 0.2
    done
    end=$(date +%s.%N)
    # A run that died is not a job done: the rate counts only if every run succeeded.
    ok=$($af runs ls --json --limit 100000 --status succeeded --database "$db" --data-dir "$data" | python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin) if r['input'].find('\"w\":$w') >= 0))")
    [ "$ok" = "$jobs" ] || { echo "bench/jobs.sh: $engine × $w: $ok of $jobs runs succeeded" >&2; exit 1; }
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
    secs=$(python3 -c "print(round($end - $start, 2))")
    rate=$(python3 -c "print(round($jobs / ($end - $start), 1))")
    echo -e "$engine\t$w\t$jobs\t$secs\t$rate" | tee -a "$out/jobs.tsv"
  done
done
