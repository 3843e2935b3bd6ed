#!/usr/bin/env bash
# Benchmark: sustained OTLP/HTTP intake into `af serve` with windows analysed, on this machine.
# A load generator (crates/serve/examples/otlp_load.rs: protobuf trace exports of HTTP client
# spans, 1,000 per request, 4 connections, 4 services) runs for SECONDS while af serve's RSS,
# windows analysed and backlog are sampled every 10 s.
# Usage: RATE=50000 bash bench/serve.sh [SECONDS] [extra af serve flags…]   (RATE spans/s offered,
# 0 = as fast as acknowledged; results: bench/out/serve-*.tsv)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}; shift || true
out=bench/out; mkdir -p "$out"
cargo build --release --locked -q -p af-cli && cargo build --release --locked -q -p af-serve --example otlp_load
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
target/release/af serve --data-dir "$data" --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 "$@" 2> "$data/log" &
pid=$!
for _ in $(seq 100); do grep -q "http://" "$data/log" 2>/dev/null && break; sleep 0.1; done
url="http://$(sed -n 's/.*http:\/\/\([^ ]*\).*/\1/p' "$data/log" | head -1)"
samples="$out/serve-samples.tsv"
echo -e "t_s\trss_mb\twindows\tbacklog\treceived\trejected" > "$samples"
(
  t=0
  while kill -0 $pid 2>/dev/null; do
    sleep 10; t=$((t + 10))
    rss=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status)
    m=$(curl -s "$url/metrics")
    w=$(echo "$m" | awk '/^af_windows_processed_total/ {print $2}')
    b=$(echo "$m" | awk '/^af_windows_backlog/ {print $2}')
    r=$(echo "$m" | awk '/^af_records_received_total/ {s+=$2} END {print s+0}')
    x=$(echo "$m" | awk '/^af_records_rejected_total/ {s+=$2} END {print s+0}')
    echo -e "$t\t$rss\t$w\t$b\t$r\t$x" >> "$samples"
  done
) &
sampler=$!
target/release/examples/otlp_load "$url" "$secs" 4 1000 4 "${RATE:-0}" | tee "$out/serve-load.txt"
sleep 11
kill $sampler 2>/dev/null || true
column -t "$samples"
echo "windows analysed at the end: $(curl -s "$url/metrics" | awk '/^af_windows_processed_total/ {print $2}')"
