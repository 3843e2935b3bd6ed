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
