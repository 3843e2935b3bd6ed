//! Localization: the site that makes the endpoint's calls ranks first, even when the path is
//! built in another file or the bound lives in another module.

use std::path::Path;

use af_agent::localize::rank;
use af_agent::patterns::{builtin_patterns, find_all};
use af_agent::repo::Repo;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[test]
fn the_fanout_that_calls_the_endpoint_ranks_above_an_unrelated_one() {
    let d = tempfile::tempdir().expect("tmp");
    write(
        d.path(),
        "src/api/orders.js",
        "const BASE = process.env.SHOP_URL;\nasync function fetchOrder(id) {\n  return fetch(`${BASE}/v2/shops/acme/orders/${id}`);\n}\nmodule.exports = { fetchOrder };\n",
    );
    write(
        d.path(),
        "src/images.js",
        "async function resizeAll(files) {\n  return Promise.all(files.map((f) => resize(f)));\n}\n",
    );
    write(
        d.path(),
        "src/jobs/sync.js",
        "const { fetchOrder } = require('../api/orders');\nasync function syncOrders(ids) {\n  return Promise.all(ids.map((id) => fetchOrder(id)));\n}\n",
    );
    let repo = Repo::load(d.path()).expect("repo");
    let sites = find_all(&repo, &builtin_patterns());
    assert_eq!(sites.len(), 2);
    let ranked = rank(&repo, &sites, "GET /v2/shops/{shop}/orders/{id}", &["SHOP_URL".into()]);
    assert_eq!(ranked[0].site.file, "src/jobs/sync.js", "{ranked:#?}");
    assert!(ranked[0].reasons[0].contains("src/api/orders.js:3"), "{:?}", ranked[0].reasons);
    assert!(ranked[0].score > ranked[1].score);
    assert!(ranked[1].reasons[0].contains("nothing links it"), "{:?}", ranked[1].reasons);
}

#[test]
fn an_sdk_method_chain_spells_the_endpoint() {
    let d = tempfile::tempdir().expect("tmp");
    write(
        d.path(),
        "sync.py",
        "import asyncio\n\nasync def pull(svc, ids):\n    return await asyncio.gather(*[svc.users.messages.get(userId='me', id=i) for i in ids])\n\nasync def other(xs):\n    return await asyncio.gather(*[work(x) for x in xs])\n",
    );
    let repo = Repo::load(d.path()).expect("repo");
    let sites = find_all(&repo, &builtin_patterns());
    let ranked = rank(&repo, &sites, "GET /gmail/v1/users/{userId}/messages/{id}", &[]);
    assert_eq!(ranked[0].site.line, 4, "{ranked:#?}");
    assert!(
        ranked[0]
            .reasons
            .iter()
            .any(|r| r.contains("user") && r.contains("message") && r.contains("get"))
    );
}

#[test]
fn a_pool_size_defined_in_a_settings_module_is_followed_there() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/py-pool-settings");
    let repo = Repo::load(&dir).expect("repo");
    let sites = find_all(&repo, &builtin_patterns());
    let pool = sites.iter().find(|s| s.pattern == "py-thread-pool").expect("pool site");
    assert_eq!(pool.file, "app/sync.py");
    assert_eq!(pool.bound_at.as_deref(), Some("app/settings.py:5"));
    assert_eq!(pool.current_bound, Some(64));
    assert!(pool.callees.contains(&"fetch_contact".to_owned()), "{:?}", pool.callees);
}

#[test]
fn env_default_and_relative_imports_are_followed() {
    let d = tempfile::tempdir().expect("tmp");
    write(
        d.path(),
        "svc/config.py",
        "import os\nWORKERS = int(os.environ.get(\"WORKERS\", \"48\"))\n",
    );
    write(
        d.path(),
        "svc/run.py",
        "from concurrent.futures import ThreadPoolExecutor\nfrom .config import WORKERS as N\n\ndef go(xs):\n    with ThreadPoolExecutor(N) as p:\n        return list(p.map(call, xs))\n",
    );
    let repo = Repo::load(d.path()).expect("repo");
    let sites = find_all(&repo, &builtin_patterns());
    let pool = sites.iter().find(|s| s.pattern == "py-thread-pool").expect("pool");
    assert_eq!((pool.bound_at.as_deref(), pool.current_bound), (Some("svc/config.py:2"), Some(48)));
}
