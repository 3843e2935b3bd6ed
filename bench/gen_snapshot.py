#!/usr/bin/env python3
"""Writes a realistic native snapshot for benchmarks: N exchanges (default 1,000,000) over 50
endpoints on 3 hosts, 20 callers, bodies of a few hundred bytes, several statuses and some
transport errors. Deterministic (seeded). Usage: gen_snapshot.py OUT.jsonl [N]"""
import json
import random
import sys
import time as _t

random.seed(42)
out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
HOSTS = ["api.shop.test", "gmail.googleapis.com", "billing.internal.test"]
COLLS = ["users", "orders", "items", "carts", "invoices", "payments", "messages", "threads", "labels",
         "accounts", "sessions", "products", "reviews", "shipments", "refunds", "coupons", "stores",
         "drafts", "events", "webhooks", "teams", "projects", "tasks", "comments", "files"]
ENDPOINTS = []
for i, c in enumerate(COLLS):
    host = HOSTS[i % 3]
    ENDPOINTS.append(("GET", host, f"/v1/{c}/{{id}}"))
    ENDPOINTS.append(("POST" if i % 2 else "GET", host, f"/v1/{c}" if i % 2 else f"/v1/accounts/{{id}}/{c}"))
assert len(ENDPOINTS) == 50
WEIGHTS = [1.0 / (k + 1) for k in range(50)]
STATUSES = [(200, 0.85), (201, 0.03), (204, 0.02), (404, 0.03), (429, 0.05), (500, 0.01), (503, 0.005), (None, 0.005)]
TOKENS = [f"Bearer tok-{k:02d}-{random.getrandbits(64):016x}" for k in range(20)]
BODY = json.dumps({"id": 0, "status": "active", "name": "x" * 40, "tags": ["a", "b", "c"],
                   "created": "2026-11-20T11:15:04Z", "items": [{"sku": f"SKU-{k}", "qty": k} for k in range(6)]})

t = 1_795_000_000_000_000_000  # ns
with open(out, "w") as f:
    f.write('{"format":"af-snapshot","version":1,"tool":"bench/gen_snapshot.py"}\n')
    for i in range(n):
        method, host, tmpl = random.choices(ENDPOINTS, WEIGHTS)[0]
        path = tmpl.replace("{id}", str(random.randint(1, 10_000_000)))
        status = random.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
        t += random.randint(50_000, 1_500_000)
        secs, frac = divmod(t, 1_000_000_000)
        start = _t.strftime("%Y-%m-%dT%H:%M:%S", _t.gmtime(secs)) + f".{frac // 1000:06d}Z"
        dur = int(random.lognormvariate(17.5, 0.6))  # ~40 ms median, in ns
        ex = {"id": f"{i:016x}", "caller": None,
              "request": {"method": method, "url": f"https://{host}{path}?fields=basic",
                          "http_version": "HTTP/1.1",
                          "headers": [["Host", host], ["Authorization", TOKENS[i % 20]], ["Accept", "application/json"]]},
              "timing": {"start": start, "duration_ns": dur, "ttfb_ns": dur * 9 // 10}}
        del ex["caller"]
        if method == "POST":
            text = '{"name":"bench","qty":3,"note":"' + "y" * 60 + '"}'
            ex["request"]["body"] = {"text": text, "size": len(text)}
        if status is None:
            ex["error"] = {"kind": "reset", "message": "connection reset by peer"}
        else:
            ex["response"] = {"status": status, "headers": [["Content-Type", "application/json"], ["Content-Length", str(len(BODY))]],
                              "body": {"text": BODY, "size": len(BODY)}}
        f.write(json.dumps(ex, separators=(",", ":")))
        f.write("\n")
