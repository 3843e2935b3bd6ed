# Sourced: start_serve_with_finding starts `af serve` (release build) on free ports with the
# bundled example's incident pushed into it, and waits until its window is analysed.
# Sets SERVE_URL, SERVE_PID and FP (the limit-model finding's fingerprint). Jobs are on, in
# dry-run (the default): the finding queues a ticket run that writes its would-be issue to the
# run's outbox; a forge webhook secret is set so /api/hooks/* checks signatures.
start_serve_with_finding() {
  local root=$1 dir=$2
  (cd "$root" && cargo build -q --release --locked -p af-cli)
  cat > "$dir/af.toml" <<TOML
[[service]]
name = "radar"
repo = "$root/examples/radar"
forge = { kind = "github", api = "http://127.0.0.1:9", project = "acme/radar", token_env = "AF_FIXTURE_TOKEN", webhook_secret_env = "AF_FIXTURE_HOOK_SECRET" }

[[rule]]
on = "finding.opened"
do = ["ticket"]
TOML
  AF_FIXTURE_TOKEN=fixture-token AF_FIXTURE_HOOK_SECRET=fixture-secret \
  "$root/target/release/af" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 \
    --window 60s --grace 1s --config "$dir/af.toml" --workers 1 2> "$dir/serve.log" &
  SERVE_PID=$!
  for _ in $(seq 100); do grep -q "http://" "$dir/serve.log" 2>/dev/null && break; sleep 0.1; done
  SERVE_URL="http://$(sed -n 's/.*http:\/\/\([^ ]*\).*/\1/p' "$dir/serve.log" | head -1)"
  curl -sf -X POST "$SERVE_URL/v1/exchanges?service=radar" \
    --data-binary @"$root/examples/radar/snapshots/before.jsonl" > /dev/null
  FP=""
  for _ in $(seq 100); do
    FP=$(curl -sf "$SERVE_URL/api/findings?service=radar" | python3 -c \
      'import json,sys; print(next((f["fingerprint"] for f in json.load(sys.stdin) if f["kind"]=="limit-model"), ""))')
    [ -n "$FP" ] && break
    sleep 0.2
  done
  [ -n "$FP" ] || { echo "serve-fixture: no finding opened; server log:" >&2; cat "$dir/serve.log" >&2; return 1; }
}
