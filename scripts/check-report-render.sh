#!/usr/bin/env bash
# Renders an af HTML report in headless Chromium to a PNG and fails on a blank page.
#
#   scripts/check-report-render.sh [REPORT.html]
#
# Without an argument it makes one: `af fix` on a copy of examples/radar. Installs Debian's
# chromium when it is missing (CI machines start without it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v chromium >/dev/null 2>&1; then
  echo "check-report-render: installing chromium (Debian package)" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

report="${1:-}"
if [ -z "$report" ]; then
  cp -r "$root/examples/radar" "$work/radar"
  rm -rf "$work/radar/.af"
  (cd "$root" && cargo run -q --release --locked -- fix --quiet \
    --snapshot "$work/radar/snapshots/before.jsonl" --source "$work/radar" >/dev/null)
  report="$(ls -d "$work"/radar/.af/runs/*/report.html | head -1)"
fi

png="$work/report.png"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size=1100,2400 --screenshot="$png" "file://$report" >/dev/null 2>&1 || true
[ -s "$png" ] || { echo "check-report-render: chromium wrote no screenshot of $report" >&2; exit 1; }

python3 "$root/scripts/png-not-blank.py" "$png" check-report-render
echo "check-report-render: ok ($report)"
