#!/usr/bin/env bash
# Wall time of `af fix` on the bundled example, per phase (release build).
#   bash bench/fix.sh [RUNS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
cargo build -q --release --locked --manifest-path "$root/Cargo.toml"
for i in $(seq "$runs"); do
  work="$(mktemp -d)"
  cp -r "$root/examples/radar" "$work/radar"; rm -rf "$work/radar/.af"
  start=$(date +%s.%N)
  "$root/target/release/af" fix --quiet --json --snapshot "$work/radar/snapshots/before.jsonl" \
    --source "$work/radar" > "$work/result.json"
  end=$(date +%s.%N)
  python3 - "$work/result.json" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
phases = ", ".join(f"{p['name']} {p['ms'] / 1000:.2f} s" for p in r["timings"])
print(f"af fix: confirmed={r['confirmed']} wall {wall:.2f} s — {phases}")
PY
  rm -rf "$work"
done
