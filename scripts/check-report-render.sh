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

# Blank-page check: count pixels that are not (near) white; a rendered report has text, tables
# and chart lines.
python3 - "$png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h, ctype = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
bpp = {2: 3, 6: 4}[ctype]
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
ink = 0
i = 0
for _ in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        if min(line[x], line[x + 1], line[x + 2]) < 200:
            ink += 1
    prev = line
share = ink / (w * h)
print(f"check-report-render: {w}x{h}, {ink} inked pixels ({share:.2%})")
if share < 0.005:
    sys.exit("check-report-render: the page looks blank")
PY
echo "check-report-render: ok ($report)"
