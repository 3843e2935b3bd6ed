#!/usr/bin/env bash
# CPU per request of two af record binaries, interleaved; one Node upstream.
P="$(cd "$(dirname "$0")/../../shared/bench/peers" && pwd)"; OHA=/tmp/peers/cargo/bin/oha
node $P/upstream.js 18390 > /dev/null 2>&1 & UP=$!; sleep 0.5
$AF_A record --force --reverse 127.0.0.1:18391=http://127.0.0.1:18390 -o /tmp/p1.jsonl > /dev/null 2>&1 & A=$!
$AF_B record --force --reverse 127.0.0.1:18392=http://127.0.0.1:18390 -o /tmp/p2.jsonl > /dev/null 2>&1 & B=$!
sleep 0.5
path='/gmail/v1/users/me/messages/18c2f5a9e4b7d301?format=metadata'
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for i in $(seq ${1:-3}); do
  for t in A:18391:$A B:18392:$B; do
    IFS=: read name port pid <<< "$t"
    c1=$(cpu $pid)
    out=$($OHA -z 8s -c 50 --no-tui "http://127.0.0.1:$port$path")
    c2=$(cpu $pid)
    n=$(echo "$out" | awk '/Success rate/{next} /Requests\/sec/{print $2}')
    echo "$name $(printf '%.0f' $n) req/s, af cpu $(echo "($c2-$c1)*10000/($n*8)" | bc -l | xargs printf '%.1f') us/req"
  done
done
kill $A $B $UP
