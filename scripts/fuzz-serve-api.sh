#!/usr/bin/env bash
# Fuzzes `af serve`'s API from its committed OpenAPI document with schemathesis (PyPI): every
# operation, generated and boundary inputs, against a server holding a real finding. Fails on
# any 5xx (`not_a_server_error`). Installs schemathesis into fixtures/serve/.venv when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
. "$root/scripts/serve-fixture.sh"
trap 'kill $SERVE_PID 2>/dev/null || true; rm -rf "$work"' EXIT
venv="$root/fixtures/serve/.venv"
[ -x "$venv/bin/schemathesis" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "schemathesis==4.32.5"; }
start_serve_with_finding "$root" "$work"
"$venv/bin/schemathesis" run "$root/schemas/serve.openapi.json" --url "$SERVE_URL" \
  --checks not_a_server_error --max-examples "${FUZZ_EXAMPLES:-40}" --workers 2 \
  --generation-deterministic --warnings off --suppress-health-check all 2>&1 | tee "$work/st.log" | tail -25
ops=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(len(v) for v in d["paths"].values()))' "$root/schemas/serve.openapi.json")
grep -q "Tested: $ops\b" "$work/st.log" || { echo "fuzz-serve-api: schemathesis did not test all $ops operations" >&2; exit 1; }
# The server is still there and answers.
curl -sf "$SERVE_URL/healthz" > /dev/null
echo "fuzz-serve-api: no 5xx"
