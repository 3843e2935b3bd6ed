#!/usr/bin/env bash
# Re-record the committed snapshots with `af record` in front of the Gmail simulator.
#
#   scripts/record.sh before            # today's code            → snapshots/before.jsonl
#   scripts/record.sh after SOURCE_DIR  # a fixed copy (af work)   → snapshots/after.jsonl
#
# AF names the af binary (default: the workspace's release build).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
af="${AF:-$here/../../target/release/af}"
which="${1:-before}"
source_dir="${2:-$here}"
out="$here/snapshots/$which.jsonl"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port="${SIM_PORT:-4191}"  # af demo records against the same port, so diffs line up by host
rec_port="$(free_port)"

node "$here/gmail-sim/server.js" "$sim_port" >/dev/null &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$sim_port") 2>/dev/null && break
  sleep 0.1
done

cd "$source_dir"
GMAIL_API_URL="http://127.0.0.1:$rec_port" \
  "$af" record --force -o "$out" --reverse "127.0.0.1:$rec_port=http://127.0.0.1:$sim_port" \
  -- node src/cli.js sync
echo "wrote $out"
