#!/usr/bin/env bash
# Accuracy benchmark: `af fix` on a clean git copy of every scenario in fixtures/scenarios/,
# graded against its expected.toml by bench/accuracy.py (one row per scenario, then `N of M
# right`). Exit 0 only when every scenario graded is right.
#
#   cargo build --release && bench/accuracy.sh                 # every scenario
#   bench/accuracy.sh node-axios-fanout-conn control-outage    # some of them
#
# AF (default target/release/af) is the binary graded; AF_ACCURACY_OUT (default a temporary
# directory) keeps the copies, run directories and af's output for a look afterwards.
# AF_ACCURACY_UPSTREAM=0 skips the last check of a bug scenario: the job of af's fixed
# worktree run against the real limiter (the stub behind nginx) must succeed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCEN="$ROOT/fixtures/scenarios"
AF="${AF:-$ROOT/target/release/af}"
[ -x "$AF" ] || { echo "accuracy: $AF is not built (cargo build --release)" >&2; exit 2; }
AF="$(cd "$(dirname "$AF")" && pwd)/$(basename "$AF")"

# shellcheck source=../fixtures/scenarios/common/setup.sh
source "$SCEN/common/setup.sh"
setup_tools

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for d in "$SCEN"/*/; do
    [ -f "$d/expected.toml" ] && names+=("$(basename "$d")")
  done
fi

OUT="${AF_ACCURACY_OUT:-$(mktemp -d -t af-accuracy.XXXXXX)}"
mkdir -p "$OUT"
echo "accuracy: ${#names[@]} scenarios, af $("$AF" --version | awk '{print $2}'), work in $OUT" >&2

rows="$OUT/rows.jsonl"
: >"$rows"
for s in "${names[@]}"; do
  dir="$SCEN/$s"
  [ -f "$dir/expected.toml" ] || { echo "accuracy: no scenario $s" >&2; exit 2; }
  setup_service "$dir/service"
  # A clean checkout of the service as its team has it: tracked code in git, installed
  # dependencies untracked beside it (gitignored), nothing of a previous run.
  copy="$OUT/$s"
  rm -rf "$copy"
  mkdir -p "$copy"
  (cd "$dir/service" && tar --exclude=node_modules --exclude=.af --exclude=__pycache__ -cf - .) \
    | (cd "$copy" && tar -xf -)
  [ -d "$dir/service/node_modules" ] && ln -s "$dir/service/node_modules" "$copy/node_modules"
  (
    cd "$copy"
    grep -qx 'node_modules' .gitignore 2>/dev/null || printf 'node_modules\n' >>.gitignore
    git init -q -b main
    git -c user.name=bench -c user.email=bench@localhost add -A
    git -c user.name=bench -c user.email=bench@localhost commit -qm "the service as deployed"
  )
  # The scenario itself must hold: its tests pass on the code as deployed.
  test_cmd=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["test"]["command"])' "$copy/af.toml")
  set +e
  (cd "$copy" && timeout 120 bash -c "$test_cmd") >"$OUT/$s.tests-before.txt" 2>&1
  before=$?
  set -e
  start=$(date +%s.%N)
  set +e
  (cd "$copy" && "$AF" fix --snapshot "$dir/capture.har" --source . --quiet) \
    >"$OUT/$s.fix.txt" 2>&1
  code=$?
  set -e
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  # The fix against the real limiter: the job of af's worktree, run on the stub behind nginx.
  real=skipped
  wt=$(python3 -c 'import glob, json, sys
r = sorted(glob.glob(sys.argv[1] + "/.af/runs/*/result.json"))
d = json.load(open(r[-1])) if r else {}
print(d.get("worktree") or "" if d.get("confirmed") else "")' "$copy")
  if [ "${AF_ACCURACY_UPSTREAM:-1}" != 0 ] && [ -n "$wt" ]; then
    url_env=$(sed -n 's/^url_env *= *"\(.*\)"/\1/p' "$copy/af.toml")
    run_cmd=$(sed -n '/^\[run\]/,/^\[/s/^command *= *"\(.*\)"/\1/p' "$copy/af.toml")
    up="$OUT/$s.upstream"
    rm -rf "$up"
    read -r ng _ < <("$SCEN/common/upstream.sh" start "$dir" "$up")
    set +e
    (cd "$wt" && set -a && { [ -f "$dir/job.env" ] && . "$dir/job.env"; true; } && set +a \
      && export "$url_env=http://127.0.0.1:$ng" && eval "$run_cmd") >"$OUT/$s.upstream.txt" 2>&1
    real=$?
    set -e
    "$SCEN/common/upstream.sh" stop "$up"
  fi
  for f in har jsonl; do
    "$AF" inspect --json "$dir/capture.$f" >"$OUT/$s.inspect.$f.json" 2>"$OUT/$s.inspect.$f.err" || true
  done
  python3 "$ROOT/bench/accuracy.py" row "$dir" "$copy" "$OUT" "$code" "$wall" "$before" "$real" | tee -a "$rows" \
    | python3 "$ROOT/bench/accuracy.py" show
done
python3 "$ROOT/bench/accuracy.py" total "$rows"
