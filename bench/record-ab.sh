#!/usr/bin/env bash
# Interleaved in one run: direct, af binary A, af binary B (e.g. two allocators); ROUNDS × 8 s, 50 connections.
P="$(cd "$(dirname "$0")/../../shared/bench/peers" && pwd)"; OHA=/tmp/peers/cargo/bin/oha
node $P/upstream.js 18390 > /dev/null 2>&1 & UP=$!; sleep 0.5
${AF_A:?path to the first af binary} record --force --reverse 127.0.0.1:18391=http://127.0.0.1:18390 -o /tmp/p1.jsonl > /dev/null 2>&1 & A=$!
${AF_B:?path to the second af binary} record --force --reverse 127.0.0.1:18392=http://127.0.0.1:18390 -o /tmp/p2.jsonl > /dev/null 2>&1 & B=$!
sleep 0.5
path='/gmail/v1/users/me/messages/18c2f5a9e4b7d301?format=metadata'
for port in 18390 18391 18392; do $OHA -z 3s -c 50 --no-tui "http://127.0.0.1:$port$path" > /dev/null; done
for i in $(seq ${1:-3}); do
  for t in direct:18390 A:18391 B:18392; do
    out=$($OHA -z 8s -c 50 --no-tui "http://127.0.0.1:${t#*:}$path")
    echo "${t%:*} $(echo "$out" | awk '/Requests\/sec/{printf "%.0f req/s ", $2} /50.00%/{printf "p50 %s %s ", $3, $4} /99.00%/{printf "p99 %s %s", $3, $4}')"
  done
done
kill $A $B $UP
