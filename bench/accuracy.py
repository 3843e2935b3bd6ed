#!/usr/bin/env python3
"""Grades one `af fix` run on a scenario against its expected.toml (called by accuracy.sh).

  accuracy.py row SCENARIO_DIR COPY OUT EXIT_CODE WALL_S TESTS_BEFORE REAL -> one JSON row on stdout
  accuracy.py show                                         -> the row (stdin) as a text line
  accuracy.py total ROWS.jsonl                             -> the table's last line; exit 1 unless all right

A bug scenario is right when every check holds: the plan names the expected endpoint and
metric; the baseline is on the wrong side of its threshold on every run; the site af fixed is
inside the expected file and lines; the confirm runs are on the right side on the identical
harness; the program's tests pass; af exits 0 within the time budget; and `af inspect` names
the limit kind with the true value inside its interval on both captures. A control is right
when af abstains (exit 1) with a reason and `af inspect` calls no limit.
"""

import json
import os
import sys
import tomllib

# The budget per `af fix` on this machine (2 cores).
WALL_BUDGET_S = 60.0


def segments(endpoint):
    method, _, path = endpoint.partition(" ")
    return method, [s for s in path.split("/") if s]


def unifies(a, b):
    """Endpoints agree when methods match and every segment matches or is a placeholder on
    either side (how `af` selectors unify)."""
    ma, sa = segments(a)
    mb, sb = segments(b)
    if ma != mb or len(sa) != len(sb):
        return False
    return all(x == y or x.startswith("{") or y.startswith("{") for x, y in zip(sa, sb))


def latest_run(copy):
    runs = os.path.join(copy, ".af", "runs")
    if not os.path.isdir(runs):
        return None
    dirs = sorted(d for d in os.listdir(runs) if os.path.isdir(os.path.join(runs, d)))
    return os.path.join(runs, dirs[-1]) if dirs else None


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def limit_findings(inspect):
    return [f for f in (inspect or {}).get("findings", []) if f.get("detector") == "limit-model"]


def check_inspect(exp, out, name):
    """(ok, detail) for both captures' limit-model verdicts."""
    want = exp.get("limit")
    details = []
    ok = True
    for fmt in ("har", "jsonl"):
        inspect = load(os.path.join(out, f"{name}.inspect.{fmt}.json"))
        if inspect is None:
            return False, f"af inspect capture.{fmt} printed no JSON"
        found = limit_findings(inspect)
        if want is None:
            named = [f["details"].get("verdict") for f in found
                     if f["details"].get("verdict") in ("concurrency", "rate")]
            if named:
                ok = False
                details.append(f"{fmt}: named a {named[0]} limit")
            else:
                verdicts = sorted({f["details"].get("verdict", "?") for f in found}) or ["no limit finding"]
                details.append(f"{fmt}: {', '.join(verdicts)}")
            continue
        hit = None
        for f in found:
            d = f["details"]
            b = d.get("bound") or {}
            if d.get("verdict") == want["kind"] and b.get("low") is not None:
                hit = (b.get("estimate"), b["low"], b["high"])
                break
        if hit is None:
            ok = False
            verdicts = sorted({f["details"].get("verdict", "?") for f in found}) or ["no limit finding"]
            details.append(f"{fmt}: {', '.join(verdicts)} (want {want['kind']})")
        elif not hit[1] <= want["value"] <= hit[2]:
            ok = False
            details.append(f"{fmt}: {want['kind']} {hit[0]:g} in [{hit[1]:g}, {hit[2]:g}] misses {want['value']}")
        else:
            details.append(f"{fmt}: {want['kind']} {hit[0]:g} in [{hit[1]:g}, {hit[2]:g}]")
    return ok, "; ".join(details)


def in_lines(exp, loc):
    """Whether `file:line` is inside the expected range."""
    if not loc:
        return False
    file, _, line = loc.rpartition(":")
    try:
        line = int(line)
    except ValueError:
        return False
    lo, hi = exp["lines"]
    return file == exp["file"] and lo <= line <= hi


def grade(scen, copy, out, code, wall, before, real):
    name = os.path.basename(scen.rstrip("/"))
    with open(os.path.join(scen, "expected.toml"), "rb") as f:
        exp = tomllib.load(f)
    checks = []

    def check(what, ok, detail):
        checks.append({"check": what, "ok": bool(ok), "detail": detail})

    run = latest_run(copy)
    plan = load(os.path.join(run, "plan.json")) if run else None
    result = load(os.path.join(run, "result.json")) if run else None
    check("tests pass before", before == 0, f"the service's own tests exited {before} before af ran")
    check("time", wall <= WALL_BUDGET_S, f"{wall:.1f} s (budget {WALL_BUDGET_S:.0f} s)")

    if exp["kind"] == "control":
        check("abstains", code == 1 and plan is not None and plan.get("decision") == "abstain",
              f"exit {code}, decision {plan and plan.get('decision')}: {plan and plan.get('reason')}")
        ok, detail = check_inspect(exp, out, name)
        check("inspect: no limit", ok, detail)
    else:
        check("exit", code == 0, f"af fix exited {code}")
        if plan is None:
            check("plan", False, "no plan.json")
        else:
            finding = plan.get("finding") or {}
            check("endpoint", finding.get("endpoint") and unifies(finding["endpoint"], exp["endpoint"]),
                  f"{finding.get('endpoint')} ({finding.get('detector')})")
            metric = plan.get("metric") or ""
            check("metric", metric.split("{")[0] == exp["metric"], metric or "none")
            base = (plan.get("baseline") or {}).get("metrics") or []
            head = base[0] if base else {}
            vals = head.get("values") or []
            check("baseline wrong side", plan.get("decision") == "proceed" and head.get("passed") is False,
                  f"{head.get('metric', '?')} = {vals} (expect {head.get('expect')}); {plan.get('decision')}")
        att = None
        if result and result.get("chosen") is not None:
            att = result["attempts"][result["chosen"]]
        elif result and result.get("attempts"):
            att = result["attempts"][-1]
        if att is None:
            check("site", False, "no attempt")
        else:
            site = att["site"]
            loc = f"{site['file']}:{site['line']}"
            ok = in_lines(exp, loc) or in_lines(exp, site.get("bound_at"))
            where = loc + (f" (bound at {site['bound_at']})" if site.get("bound_at") else "")
            check("site", ok, f"{where} {site['pattern']} (want {exp['file']}:{exp['lines'][0]}-{exp['lines'][1]})")
            conf = att.get("confirm") or {}
            head = (conf.get("metrics") or [{}])[0]
            same = plan is not None and conf.get("harness_hash") == plan.get("harness_hash")
            check("confirm right side", bool(result.get("confirmed")) and same and head.get("passed") is True,
                  f"{head.get('values')} (expect {head.get('expect')}), "
                  f"harness {'identical' if same else 'differs'}")
            tests = att.get("tests") or {}
            check("tests pass", tests.get("exit_code") == 0, f"exit {tests.get('exit_code')}")
        ok, detail = check_inspect(exp, out, name)
        check("inspect: limit", ok, detail)
        if real != "skipped":
            tail = ""
            try:
                tail = open(os.path.join(out, f"{name}.upstream.txt")).read().strip().splitlines()[-1]
            except (OSError, IndexError):
                pass
            check("real limiter", real == "0", f"the fixed job against nginx exited {real}: {tail}")

    return {
        "scenario": name,
        "kind": exp["kind"],
        "language": exp.get("language"),
        "library": exp.get("library"),
        "right": all(c["ok"] for c in checks),
        "wall_s": round(wall, 1),
        "checks": checks,
    }


def show(row):
    bad = [c for c in row["checks"] if not c["ok"]]
    mark = "right" if row["right"] else "WRONG"
    lib = f"{row['language']}/{row['library']}"
    line = f"{mark:5}  {row['scenario']:34} {lib:22} {row['wall_s']:6.1f} s"
    if bad:
        line += "  " + "; ".join(f"{c['check']}: {c['detail']}" for c in bad)
    else:
        site = next((c["detail"] for c in row["checks"] if c["check"] in ("site", "abstains")), "")
        line += "  " + site[:90]
    return line


def main(argv):
    if argv[1] == "row":
        scen, copy, out, code, wall, before, real = argv[2:9]
        print(json.dumps(grade(scen, copy, out, int(code), float(wall), int(before), real)))
    elif argv[1] == "show":
        print(show(json.loads(sys.stdin.read())))
    elif argv[1] == "total":
        rows = [json.loads(l) for l in open(argv[2]) if l.strip()]
        right = sum(r["right"] for r in rows)
        wall = sum(r["wall_s"] for r in rows)
        print(f"{right} of {len(rows)} right ({wall:.0f} s of af fix, slowest {max(r['wall_s'] for r in rows):.1f} s)")
        return 0 if rows and right == len(rows) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
