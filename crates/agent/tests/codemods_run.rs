//! The codemods' output runs: each fixed golden file is executed by the real interpreter with a
//! stub upstream that counts calls in flight. At most the bound may be in flight, every item
//! must be fetched once, and results must keep the input order.

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(case).join(file)
}

/// Runs `program` with `interp` in `dir`; returns stdout's last line parsed as JSON.
fn run(interp: &str, dir: &Path, program: &str) -> serde_json::Value {
    let out =
        Command::new(interp).arg(program).current_dir(dir).output().expect("interpreter runs");
    assert!(out.status.success(), "{interp} {program}: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("output")).expect("JSON")
}

fn check(v: &serde_json::Value, bound: u64, n: u64) {
    assert_eq!(v["peak"], bound, "{v}");
    assert_eq!(v["calls"], n, "{v}");
    assert_eq!(v["ordered"], true, "{v}");
}

const JS_STUB: &str = r#"
let inflight = 0, peak = 0, calls = 0;
async function slow(id) {
  calls++; inflight++; peak = Math.max(peak, inflight);
  await new Promise((r) => setTimeout(r, 5 + (id * 7) % 11));
  inflight--;
  return { id };
}
module.exports = { slow, stats: () => ({ peak, calls }) };
"#;

#[test]
fn fixed_commonjs_fanout_runs_with_at_most_the_bound_in_flight() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::copy(golden("js-cjs", "input.js.expected"), d.path().join("sync.js")).expect("copy");
    std::fs::write(d.path().join("stub.js"), JS_STUB).expect("stub");
    // The fixed file requires ./gmail: a Gmail whose getMessage is the counting stub.
    std::fs::write(d.path().join("gmail.js"), "const { slow } = require('./stub');\nclass Gmail { getMessage(id) { return slow(id); } }\nmodule.exports = { Gmail };\n").expect("gmail");
    std::fs::write(
        d.path().join("main.js"),
        "const { syncPage } = require('./sync');\nconst { Gmail } = require('./gmail');\nconst { stats } = require('./stub');\n\
         const refs = Array.from({ length: 57 }, (_, i) => ({ id: i }));\n\
         syncPage(new Gmail(), refs).then((m) => console.log(JSON.stringify({ ...stats(), ordered: m.every((x, i) => x.id === i) })));\n",
    )
    .expect("main");
    check(&run("node", d.path(), "main.js"), 10, 57);
}

#[test]
fn fixed_esm_allsettled_keeps_the_settled_shape() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::copy(golden("js-esm-settled", "input.mjs.expected"), d.path().join("invoices.mjs"))
        .expect("copy");
    std::fs::write(d.path().join("stub.cjs"), JS_STUB).expect("stub");
    std::fs::write(
        d.path().join("billing.mjs"),
        "import stub from './stub.cjs';\n\
         export const fetchInvoice = (id) => stub.slow(id).then((x) => { if (id % 5 === 4) throw new Error('x'); return x; });\n",
    )
    .expect("billing");
    std::fs::write(
        d.path().join("main.mjs"),
        "import { loadInvoices } from './invoices.mjs';\nimport stub from './stub.cjs';\n\
         const ids = Array.from({ length: 40 }, (_, i) => i);\nconst got = await loadInvoices(ids);\n\
         const want = ids.filter((i) => i % 5 !== 4);\n\
         console.log(JSON.stringify({ ...stub.stats(), ordered: got.map((x) => x.id).join() === want.join() }));\n",
    )
    .expect("main");
    check(&run("node", d.path(), "main.mjs"), 10, 40);
}

const PY_DRIVER: &str = r#"
import asyncio, json, sys, types
sys.modules["httpx"] = types.SimpleNamespace(AsyncClient=object)
ns = {}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), ns)
state = {"inflight": 0, "peak": 0, "calls": 0}

async def slow(i):
    state["calls"] += 1
    state["inflight"] += 1
    state["peak"] = max(state["peak"], state["inflight"])
    await asyncio.sleep(0.002 + (i * 7 % 11) / 1000)
    state["inflight"] -= 1
    return i

class Response:
    def __init__(self, i):
        self.i = i
    def json(self):
        return {"id": self.i}

class Client:
    async def get(self, url):
        return Response(await slow(int(url.rsplit("/", 1)[1])))
    async def fetch_profile(self, uid):
        return await slow(uid)

async def main():
    ids = list(range(45))
    if "fetch_all" in ns:
        got = [r["id"] for r in await ns["fetch_all"](Client(), [str(i) for i in ids])]
    else:
        got = list((await ns["refresh_profiles"](Client(), ids)).values())
    print(json.dumps({"peak": state["peak"], "calls": state["calls"], "ordered": got == ids}))

asyncio.run(main())
"#;

fn run_py(case: &str) -> serde_json::Value {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(d.path().join("driver.py"), PY_DRIVER).expect("driver");
    let out = Command::new("python3")
        .arg("driver.py")
        .arg(golden(case, "input.py.expected"))
        .current_dir(d.path())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn fixed_asyncio_gather_runs_with_at_most_the_bound_in_flight() {
    check(&run_py("py-gather"), 10, 45);
}

#[test]
fn fixed_taskgroup_runs_with_at_most_the_bound_in_flight() {
    check(&run_py("py-taskgroup"), 10, 45);
}

/// A Node upstream that answers every path's first request 429 with `Retry-After: 1` and the
/// second 200, then runs `call` (a JS expression of `url`) for `n` paths at once and prints the
/// calls made and the shortest gap between a 429 and its retry.
fn retry_driver(module: &str, call: &str, n: usize) -> String {
    format!(
        r#"
const http = require('node:http');
const mod = require('./{module}');
const seen = new Map();
let calls = 0, minGap = Infinity;
const srv = http.createServer((req, res) => {{
  calls++;
  const prev = seen.get(req.url);
  if (prev === undefined) {{
    res.writeHead(429, {{ 'retry-after': '1', 'content-type': 'application/json' }});
    res.end('{{}}');
    seen.set(req.url, Date.now());
  }} else {{
    minGap = Math.min(minGap, Date.now() - prev);
    res.writeHead(200, {{ 'content-type': 'application/json' }});
    res.end(JSON.stringify({{ path: req.url }}));
  }}
}});
srv.listen(0, '127.0.0.1', async () => {{
  const base = `http://127.0.0.1:${{srv.address().port}}`;
  const got = await Promise.all(Array.from({{ length: {n} }}, (_, i) => {{ const url = `${{base}}/r/${{i}}`; return {call}; }}));
  srv.close();
  console.log(JSON.stringify({{ calls, minGap, ok: got.length }}));
}});
"#
    )
}

fn check_retry(v: &serde_json::Value, n: u64) {
    assert_eq!(v["calls"], 2 * n, "one retry per path: {v}");
    assert_eq!(v["ok"], n, "{v}");
    let gap = v["minGap"].as_f64().expect("a retry happened");
    assert!(gap >= 950.0, "every retry waited for Retry-After (1 s): shortest gap {gap} ms");
}

#[test]
fn fixed_retry_loop_waits_for_retry_after() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::copy(golden("js-retry", "input.js.expected"), d.path().join("retry.js"))
        .expect("copy");
    std::fs::write(d.path().join("main.js"), retry_driver("retry", "mod.getWithRetry(url)", 6))
        .expect("main");
    check_retry(&run("node", d.path(), "main.js"), 6);
}

#[test]
fn fixed_retry_from_a_catch_reads_retry_after_from_the_destructured_headers() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::copy(golden("js-retry-catch", "input.js.expected"), d.path().join("retry.js"))
        .expect("copy");
    // undici's `request` shape (statusCode, headers as a plain object, body mixin) over fetch:
    // the program's dependency, not installed in the test's directory.
    let undici = d.path().join("node_modules/undici");
    std::fs::create_dir_all(&undici).expect("dir");
    std::fs::write(
        undici.join("index.js"),
        "exports.request = async (url) => { const r = await fetch(url); const headers = Object.fromEntries(r.headers); \
         return { statusCode: r.status, headers, body: { dump: () => r.arrayBuffer(), json: () => r.json() } }; };\n",
    )
    .expect("undici");
    std::fs::write(d.path().join("main.js"), retry_driver("retry", "mod.getJson(url)", 6))
        .expect("main");
    check_retry(&run("node", d.path(), "main.js"), 6);
}

/// A Python upstream like [`retry_driver`]'s (each path: 429 with `Retry-After: 1`, then 200),
/// and `n` concurrent calls of the fixed module's function: with requests for a synchronous
/// function, with an httpx-shaped asyncio client over urllib for a coroutine (httpx itself is
/// the program's dependency, not the test's).
const PY_RETRY_DRIVER: &str = r#"
import asyncio, importlib.util, json, sys, threading, time, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen, gaps, lock = {}, [], threading.Lock()
calls = 0

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global calls
        with lock:
            calls += 1
            prev = seen.get(self.path)
            if prev is None:
                seen[self.path] = time.monotonic()
            else:
                gaps.append((time.monotonic() - prev) * 1000)
        status = 429 if prev is None else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{srv.server_address[1]}"
spec = importlib.util.spec_from_file_location("fixed", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
sys.modules["httpx"] = type(sys)("httpx")

class HTTPStatusError(Exception):
    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response

class Response:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.body = status, headers, body
    def raise_for_status(self):
        if self.status_code >= 400:
            raise HTTPStatusError(self)
    def json(self):
        return json.loads(self.body)

class AsyncClient:
    async def get(self, path):
        def fetch():
            try:
                with urllib.request.urlopen(base + path) as r:
                    return Response(r.status, r.headers, r.read())
            except urllib.error.HTTPError as e:
                return Response(e.code, e.headers, e.read())
        return await asyncio.to_thread(fetch)

sys.modules["httpx"].AsyncClient = AsyncClient
sys.modules["httpx"].HTTPStatusError = HTTPStatusError
spec.loader.exec_module(mod)
fn, n = getattr(mod, sys.argv[2]), int(sys.argv[3])
if asyncio.iscoroutinefunction(fn):
    async def main():
        return await asyncio.gather(*(fn(AsyncClient(), str(i)) for i in range(n)))
    got = asyncio.run(main())
else:
    import requests
    with requests.Session() as s, ThreadPoolExecutor(n) as pool:
        got = list(pool.map(lambda i: fn(s, base + "/v1", i), range(n)))
srv.shutdown()
print(json.dumps({"calls": calls, "minGap": min(gaps) if gaps else None, "ok": len(got)}))
"#;

fn run_py_retry(case: &str, file: &str, function: &str, n: usize) -> serde_json::Value {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(d.path().join("driver.py"), PY_RETRY_DRIVER).expect("driver");
    std::fs::copy(golden(case, &format!("{file}.expected")), d.path().join("fixed.py"))
        .expect("copy");
    let out = Command::new("python3")
        .arg("driver.py")
        .arg("fixed.py")
        .args([function, &n.to_string()])
        .current_dir(d.path())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("output")).expect("JSON")
}

#[test]
fn fixed_python_retry_loop_sleeps_for_retry_after() {
    check_retry(&run_py_retry("py-retry", "billing.py", "fetch_invoice", 6), 6);
}

#[test]
fn fixed_python_async_retries_await_retry_after() {
    check_retry(&run_py_retry("py-retry-async", "items.py", "get_item", 6), 6);
    check_retry(&run_py_retry("py-retry-except", "prices.py", "get_price", 6), 6);
}

#[test]
fn fixed_pushed_array_runs_with_at_most_the_bound_in_flight_over_http() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::copy(golden("js-pushed", "input.js.expected"), d.path().join("warm.js"))
        .expect("copy");
    // A real HTTP upstream counting requests in flight; the program's own fetch calls it.
    std::fs::write(
        d.path().join("main.js"),
        r#"
const http = require('node:http');
const { warm } = require('./warm');
let inflight = 0, peak = 0, calls = 0;
const srv = http.createServer((req, res) => {
  calls++; inflight++; peak = Math.max(peak, inflight);
  setTimeout(() => { inflight--; res.writeHead(req.url.endsWith('/13') ? 429 : 200); res.end('{}'); }, 5 + (calls * 7) % 11);
});
srv.listen(0, '127.0.0.1', async () => {
  const ids = Array.from({ length: 40 }, (_, i) => String(i));
  const failed = await warm(`http://127.0.0.1:${srv.address().port}`, ids);
  srv.close();
  console.log(JSON.stringify({ peak, calls, ordered: failed === 1 }));
});
"#,
    )
    .expect("main");
    check(&run("node", d.path(), "main.js"), 6, 40);
}

#[test]
fn fixed_pushed_thunks_keep_the_loop_and_the_settled_shape() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::copy(golden("js-pushed-thunks", "input.mjs.expected"), d.path().join("invoices.mjs"))
        .expect("copy");
    std::fs::write(d.path().join("stub.cjs"), JS_STUB).expect("stub");
    std::fs::write(
        d.path().join("billing.mjs"),
        "import stub from './stub.cjs';\n\
         export const fetchInvoice = (id) => stub.slow(id).then((x) => { if (id % 5 === 4) throw new Error('x'); return x; });\n",
    )
    .expect("billing");
    std::fs::write(
        d.path().join("main.mjs"),
        "import { loadInvoices } from './invoices.mjs';\nimport stub from './stub.cjs';\n\
         const ids = [-1, ...Array.from({ length: 40 }, (_, i) => i), -2];\nconst got = await loadInvoices(ids);\n\
         const want = ids.filter((i) => i >= 0 && i % 5 !== 4);\n\
         console.log(JSON.stringify({ ...stub.stats(), ordered: got.skipped === 2 && got.invoices.map((x) => x.id).join() === want.join() }));\n",
    )
    .expect("main");
    check(&run("node", d.path(), "main.mjs"), 10, 40);
}

#[test]
fn fixed_rate_limited_fanout_paces_starts_across_calls() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::copy(golden("js-rate", "input.js.expected"), d.path().join("sync.js")).expect("copy");
    // Every start is stamped; two pages one after the other must together keep the rate (8/s
    // in the golden file) in every sliding second, not each page on its own.
    std::fs::write(
        d.path().join("gmail.js"),
        "const starts = [];\nclass Gmail { async getMessage(id) { starts.push(Date.now()); return { id }; } }\nmodule.exports = { Gmail, starts };\n",
    )
    .expect("gmail");
    std::fs::write(
        d.path().join("main.js"),
        "const { syncPage } = require('./sync');\nconst { Gmail, starts } = require('./gmail');\n\
         (async () => {\n  const g = new Gmail();\n  const a = await syncPage(g, Array.from({ length: 12 }, (_, i) => ({ id: i })));\n\
           const b = await syncPage(g, Array.from({ length: 12 }, (_, i) => ({ id: 12 + i })));\n\
           let peak = 0;\n  for (const t of starts) peak = Math.max(peak, starts.filter((s) => s >= t && s < t + 1000).length);\n\
           console.log(JSON.stringify({ peak, calls: starts.length, ordered: [...a, ...b].every((m, i) => m.id === i) }));\n})();\n",
    )
    .expect("main");
    let v = run("node", d.path(), "main.js");
    assert_eq!(v["calls"], 24, "{v}");
    assert_eq!(v["ordered"], true, "{v}");
    let peak = v["peak"].as_u64().expect("peak");
    assert!((1..=8).contains(&peak), "at most 8 starts in any second across both pages: {v}");
}

/// Builds and runs a Go program offline: module `example.com/t` in `dir`, golang.org/x/sync
/// from Debian's golang-golang-x-sync-dev (which `.ci/run` installs).
fn run_go(dir: &Path) -> serde_json::Value {
    std::fs::write(
        dir.join("go.mod"),
        "module example.com/t\n\ngo 1.19\n\nrequire golang.org/x/sync v0.1.0\n\nreplace golang.org/x/sync => /usr/share/gocode/src/golang.org/x/sync\n",
    )
    .expect("go.mod");
    let out = Command::new("go")
        .args(["run", "."])
        .current_dir(dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .output()
        .expect("go runs (installed by .ci/run with the scenarios' tools)");
    assert!(out.status.success(), "go run: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

const GO_MAIN: &str = r#"package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"time"

	"example.com/t/prices"
)

func main() {
	var mu sync.Mutex
	inflight, peak, calls := 0, 0, 0
	get := func(ctx context.Context, id string) (int, error) {
		mu.Lock()
		calls++
		inflight++
		if inflight > peak {
			peak = inflight
		}
		mu.Unlock()
		n, _ := strconv.Atoi(id)
		time.Sleep(time.Duration(2+n*7%11) * time.Millisecond)
		mu.Lock()
		inflight--
		mu.Unlock()
		return n, nil
	}
	ids := make([]string, 37)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	got, err := prices.All(context.Background(), ids, get)
	ordered := err == nil
	for i, v := range got {
		ordered = ordered && v == i
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"peak": peak, "calls": calls, "ordered": ordered})
}
"#;

#[test]
fn fixed_go_errgroup_runs_with_at_most_the_bound_in_flight() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(d.path().join("prices")).expect("dir");
    std::fs::copy(golden("go-errgroup", "prices.go.expected"), d.path().join("prices/prices.go"))
        .expect("copy");
    std::fs::write(d.path().join("main.go"), GO_MAIN).expect("main");
    check(&run_go(d.path()), 8, 37);
}

#[test]
fn fixed_goroutine_per_item_runs_with_at_most_the_bound_in_flight() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(d.path().join("sync")).expect("dir");
    std::fs::copy(golden("go-fanout", "input.go.expected"), d.path().join("sync/fetch.go"))
        .expect("copy");
    // The package's Client and Item, counting calls in flight.
    std::fs::write(
        d.path().join("sync/client.go"),
        "package sync\n\nimport (\n\t\"strconv\"\n\tgosync \"sync\"\n\t\"time\"\n)\n\n\
         type Item struct{ ID int }\n\ntype Client struct {\n\tMu                    gosync.Mutex\n\tInflight, Peak, Calls int\n}\n\n\
         func (c *Client) GetItem(id string) (Item, error) {\n\tc.Mu.Lock()\n\tc.Calls++\n\tc.Inflight++\n\tif c.Inflight > c.Peak {\n\t\tc.Peak = c.Inflight\n\t}\n\tc.Mu.Unlock()\n\
         \tn, _ := strconv.Atoi(id)\n\ttime.Sleep(time.Duration(2+n*7%11) * time.Millisecond)\n\tc.Mu.Lock()\n\tc.Inflight--\n\tc.Mu.Unlock()\n\treturn Item{ID: n}, nil\n}\n",
    )
    .expect("client");
    std::fs::write(
        d.path().join("main.go"),
        "package main\n\nimport (\n\t\"encoding/json\"\n\t\"os\"\n\t\"strconv\"\n\n\tfetch \"example.com/t/sync\"\n)\n\n\
         func main() {\n\tc := &fetch.Client{}\n\tids := make([]string, 43)\n\tfor i := range ids {\n\t\tids[i] = strconv.Itoa(i)\n\t}\n\
         \titems := fetch.FetchAll(c, ids)\n\tordered := true\n\tfor i, it := range items {\n\t\tordered = ordered && it.ID == i\n\t}\n\
         \tjson.NewEncoder(os.Stdout).Encode(map[string]any{\"peak\": c.Peak, \"calls\": c.Calls, \"ordered\": ordered})\n}\n",
    )
    .expect("main");
    check(&run_go(d.path()), 10, 43);
}

/// The upstream of [`retry_driver`] in Go (each path: 429 with `Retry-After: 1`, then 200), and
/// `FetchEntry` of the fixed package for 6 ids at once.
const GO_RETRY_MAIN: &str = r#"package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"example.com/t/ledger"
)

func main() {
	var mu sync.Mutex
	seen := map[string]time.Time{}
	calls, minGap := 0, -1.0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		prev, ok := seen[r.URL.Path]
		if !ok {
			seen[r.URL.Path] = time.Now()
		} else if gap := float64(time.Since(prev).Milliseconds()); minGap < 0 || gap < minGap {
			minGap = gap
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte("{}"))
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path})
	}))
	defer srv.Close()
	var wg sync.WaitGroup
	okCount := 0
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if e, err := ledger.FetchEntry(srv.Client(), srv.URL, i); err == nil && e.Path != "" {
				mu.Lock()
				okCount++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(map[string]any{"calls": calls, "minGap": minGap, "ok": okCount})
}
"#;

#[test]
fn fixed_go_retry_loop_sleeps_for_retry_after() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(d.path().join("ledger")).expect("dir");
    std::fs::copy(golden("go-retry", "client.go.expected"), d.path().join("ledger/client.go"))
        .expect("copy");
    std::fs::write(d.path().join("main.go"), GO_RETRY_MAIN).expect("main");
    check_retry(&run_go(d.path()), 6);
}
