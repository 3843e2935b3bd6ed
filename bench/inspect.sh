#!/usr/bin/env bash
# Benchmark: `af inspect --json` on a 1,000,000-exchange native snapshot, side by side with DuckDB
# computing the same per-endpoint counts, status histogram and p50/p95/p99 from the same file.
# Usage: bash bench/inspect.sh [N]   (results are appended to bench/out/inspect-results.tsv)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
out=bench/out
mkdir -p "$out"
snap="$out/bench-$n.jsonl"

cargo build --release --locked -q
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/python -c 'import duckdb' 2>/dev/null || bench/.venv/bin/pip install -q duckdb
[ -f "$snap" ] || python3 bench/gen_snapshot.py "$snap" "$n"
ls -l "$snap"

measure() { # label, command...
  local label=$1; shift
  local best_t="" best_rss=""
  for run in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$@" > "$out/$label.out"
    read -r t rss < "$out/time.txt"
    echo "  $label run $run: ${t} s, peak RSS $((rss / 1024)) MB"
    if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; best_rss=$rss; fi
  done
  echo -e "$(date -u +%FT%TZ)\t$n\t$label\t$best_t\t$((best_rss / 1024))" >> "$out/inspect-results.tsv"
  eval "${label//-/_}_t=$best_t; ${label//-/_}_rss=$((best_rss / 1024))"
}

cat "$snap" > /dev/null  # warm the page cache for both
measure af target/release/af inspect --json "$snap"
measure duckdb bench/.venv/bin/python bench/duckdb_inspect.py "$snap"

python3 - "$out/af.out" "$out/duckdb.out" <<'PY'
import json, sys
af = json.load(open(sys.argv[1])); dd = json.load(open(sys.argv[2]))
print(f"  check: af {len(af['endpoints'])} endpoints / {af['totals']['calls']} calls; duckdb {dd['groups']} groups / {dd['calls']} calls")
top = af["endpoints"][0]
print(f"  top endpoint: af {top['endpoint']} {top['calls']} calls p50/p95/p99 {top['latency_ms']['p50']}/{top['latency_ms']['p95']}/{top['latency_ms']['p99']} ms; duckdb {dd['top']}")
assert len(af["endpoints"]) == dd["groups"] and af["totals"]["calls"] == dd["calls"], "tools disagree"
PY
echo "result: af ${af_t} s (${af_rss} MB) vs duckdb ${duckdb_t} s (${duckdb_rss} MB): af/duckdb time ratio $(awk "BEGIN{printf \"%.2f\", $af_t/$duckdb_t}")"
