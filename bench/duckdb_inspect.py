#!/usr/bin/env python3
"""DuckDB computing what `af inspect --json` computes on a native snapshot: per endpoint (method,
host, path template) the calls, status histogram and latency p50/p95/p99. Prints a JSON summary
(groups, total calls) so the benchmark can check both tools saw the same data."""
import json
import sys

import duckdb

path = sys.argv[1]
q = f"""
WITH x AS (
  SELECT request.method AS m,
         regexp_extract(request.url, '^[a-z]+://([^/?]+)', 1) AS host,
         regexp_replace(regexp_extract(request.url, '^[a-z]+://[^/?]+([^?]*)', 1), '/[0-9]+', '/{{id}}', 'g') AS tmpl,
         coalesce(response.status, 0) AS status,
         timing.duration_ns / 1e6 AS ms
  FROM read_json_auto('{path}', format = 'newline_delimited', sample_size = 100000)
  WHERE request IS NOT NULL
), s AS (
  SELECT m, host, tmpl, status, count(*) AS n FROM x GROUP BY ALL
), e AS (
  SELECT m, host, tmpl, count(*) AS calls,
         quantile_disc(ms, [0.5, 0.95, 0.99]) AS p
  FROM x GROUP BY ALL
)
SELECT e.m, e.host, e.tmpl, e.calls, e.p,
       (SELECT map(list(s.status), list(s.n)) FROM s WHERE s.m = e.m AND s.host = e.host AND s.tmpl = e.tmpl) AS statuses
FROM e ORDER BY e.calls DESC
"""
rows = duckdb.sql(q).fetchall()
print(json.dumps({"groups": len(rows), "calls": sum(r[3] for r in rows),
                  "top": {"endpoint": f"{rows[0][0]} {rows[0][2]}", "calls": rows[0][3], "p": rows[0][4]}}))
