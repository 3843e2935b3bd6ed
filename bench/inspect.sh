#!/usr/bin/env bash
# Benchmark: `af inspect --json --no-findings` (the table) on a 1,000,000-exchange native snapshot,
# side by side with DuckDB computing the same per-endpoint counts, status histogram and
# p50/p95/p99 from the same file; and `af inspect --json` with the detectors (findings), whose
# goal is at most 2x the table alone.
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

runs=${RUNS:-5}
one() { # label, command... → prints "seconds rss_kb"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/time.txt" "$@" > "$out/$label.out"
  cat "$out/time.txt"
}

cat "$snap" > /dev/null  # warm the page cache for both
# Interleaved runs, so drift in machine load hits both tools alike; the best run of each counts.
af_t=""; duckdb_t=""; full_t=""
for run in $(seq "$runs"); do
  read -r t rss < <(one af target/release/af inspect --json --no-findings "$snap")
  echo "  run $run: af (table) ${t} s, peak RSS $((rss / 1024)) MB"
  if [ -z "$af_t" ] || awk "BEGIN{exit !($t < $af_t)}"; then af_t=$t; af_rss=$((rss / 1024)); fi
  read -r t rss < <(one full target/release/af inspect --json "$snap")
  echo "  run $run: af (table + findings) ${t} s, peak RSS $((rss / 1024)) MB"
  if [ -z "$full_t" ] || awk "BEGIN{exit !($t < $full_t)}"; then full_t=$t; full_rss=$((rss / 1024)); fi
  read -r t rss < <(one duckdb bench/.venv/bin/python bench/duckdb_inspect.py "$snap")
  echo "  run $run: duckdb ${t} s, peak RSS $((rss / 1024)) MB"
  if [ -z "$duckdb_t" ] || awk "BEGIN{exit !($t < $duckdb_t)}"; then duckdb_t=$t; duckdb_rss=$((rss / 1024)); fi
done
stamp=$(date -u +%FT%TZ)
echo -e "$stamp\t$n\taf\t$af_t\t$af_rss" >> "$out/inspect-results.tsv"
echo -e "$stamp\t$n\tduckdb\t$duckdb_t\t$duckdb_rss" >> "$out/inspect-results.tsv"
echo -e "$stamp\t$n\taf-findings\t$full_t\t$full_rss" >> "$out/inspect-results.tsv"

python3 - "$out/af.out" "$out/duckdb.out" <<'PY'
import json, sys
af = json.load(open(sys.argv[1])); dd = json.load(open(sys.argv[2]))
print(f"  check: af {len(af['endpoints'])} endpoints / {af['totals']['calls']} calls; duckdb {dd['groups']} groups / {dd['calls']} calls")
top = af["endpoints"][0]
print(f"  top endpoint: af {top['endpoint']} {top['calls']} calls p50/p95/p99 {top['latency_ms']['p50']}/{top['latency_ms']['p95']}/{top['latency_ms']['p99']} ms; duckdb {dd['top']}")
assert len(af["endpoints"]) == dd["groups"] and af["totals"]["calls"] == dd["calls"], "tools disagree"
PY
echo "result: af table ${af_t} s (${af_rss} MB) vs duckdb ${duckdb_t} s (${duckdb_rss} MB): af/duckdb time ratio $(awk "BEGIN{printf \"%.2f\", $af_t/$duckdb_t}")"
echo "result: af table + findings ${full_t} s (${full_rss} MB): $(awk "BEGIN{printf \"%.2f\", $full_t/$af_t}")x the table alone"
