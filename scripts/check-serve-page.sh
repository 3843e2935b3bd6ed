#!/usr/bin/env bash
# The page of `af serve` in headless Chromium: load `/`, follow the finding's link to its page,
# check the rendered DOM has the timeline chart and the evidence link, and screenshot both pages
# (failing on a blank one). Run from anywhere; needs Debian's chromium (check-report-render.sh
# installs it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
. "$root/scripts/serve-fixture.sh"
trap 'kill $SERVE_PID 2>/dev/null || true; rm -rf "$work"' EXIT
start_serve_with_finding "$root" "$work"
chrome() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1600 "$@" 2>/dev/null; }

chrome --dump-dom "$SERVE_URL/" > "$work/index.html"
# Follow the first finding link the rendered page offers (not a URL built here).
link=$(python3 - "$work/index.html" "$FP" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
links = re.findall(r'<a class="finding" href="(/findings/[^"]+)"', html)
assert links, "the page lists no finding"
assert any(sys.argv[2] in l for l in links), f"{sys.argv[2]} is not linked from the page"
assert "<svg" in html, "no sparkline on the page"
print(next(l for l in links if sys.argv[2] in l))
PY
)
# The policy queued a (dry-run) ticket run for the finding; wait for it to finish.
for _ in $(seq 100); do
  curl -sf "$SERVE_URL/api/runs?fingerprint=$FP" | grep -q '"status":"succeeded"' && break
  sleep 0.2
done
chrome --dump-dom "$SERVE_URL$link" > "$work/finding.html"
python3 - "$work/finding.html" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
for needle in ('id="timeline"', "<svg", 'id="evidence"', "456 exchanges", "af fix --finding", 'id="runs"', "dry-run"):
    assert needle in html, f"the finding page lacks {needle!r}"
runs = re.search(r'<table id="runs">(.*?)</table>', html, re.S).group(1)
assert re.search(r'class="run" href="/api/runs/[0-9a-f]+"', runs), "no run linked"
assert "ticket" in runs and "succeeded" in runs and "rule finding.opened" in runs, runs
assert "/runs/" in runs, "the run directory is not shown"
PY
chrome --screenshot="$work/index.png" "$SERVE_URL/" || true
chrome --screenshot="$work/finding.png" "$SERVE_URL$link" || true
python3 "$root/scripts/png-not-blank.py" "$work/index.png" check-serve-page
python3 "$root/scripts/png-not-blank.py" "$work/finding.png" check-serve-page
echo "check-serve-page: ok ($link)"
