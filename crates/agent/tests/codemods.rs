//! Codemod golden tests: each `tests/golden/<case>/` holds input files; the one site the
//! builtin patterns find is rewritten and every edited file must equal `<file>.expected`
//! (`AF_BLESS=1` rewrites those), re-parse cleanly, and the rest stay untouched.

use std::path::Path;

use af_agent::patterns::{self, Fix, FixKind, builtin_patterns};
use af_agent::repo::{Repo, parses_cleanly};

fn case(name: &str, pattern: &str, kind: FixKind, bound: u32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    let repo = Repo::load(&dir).expect("case directory");
    assert!(repo.skipped.is_empty(), "{:?}", repo.skipped);
    let all = builtin_patterns();
    let sites = patterns::find_all(&repo, &all);
    let sites: Vec<_> = sites.iter().filter(|s| s.pattern == pattern).collect();
    assert_eq!(sites.len(), 1, "{name}: sites {sites:#?}");
    let site = sites[0];
    let fix = Fix {
        kind,
        bound,
        metric: "peak_inflight{endpoint=\"GET /x/{id}\",per=\"caller\"} <= 10".into(),
    };
    let p = patterns::by_name(&all, pattern).expect("pattern");
    let edits = patterns::apply(p, site, &repo, &fix).expect("codemod applies");
    assert!(!edits.is_empty());
    for e in &edits {
        let lang = repo.file(&e.file).expect("edited file exists").lang;
        assert!(parses_cleanly(lang, &e.text), "{name}: {} does not re-parse", e.file);
        let expected = dir.join(format!("{}.expected", e.file));
        if std::env::var_os("AF_BLESS").is_some() {
            std::fs::write(&expected, &e.text).expect("bless");
        }
        let want = std::fs::read_to_string(&expected).unwrap_or_else(|_| {
            panic!("{} missing (run with AF_BLESS=1 and review it)", expected.display())
        });
        assert_eq!(e.text, want, "{name}: {} differs from {}", e.file, expected.display());
        // Applying again finds nothing more to fix at that site (idempotent by construction).
        let again =
            af_agent::repo::SourceFile::new(e.file.clone(), lang, e.text.clone()).expect("parses");
        let re = Repo::from_files(&dir, vec![again]);
        assert!(
            patterns::find_all(&re, &all)
                .iter()
                .all(|s| s.pattern != pattern || s.pattern == "py-thread-pool"),
            "{name}: the fixed file still matches {pattern}"
        );
    }
}

#[test]
fn js_commonjs_fanout_gets_a_worker_pool() {
    case("js-cjs", "js-unbounded-fanout", FixKind::Concurrency, 10);
}

#[test]
fn js_esm_allsettled_without_semicolons_keeps_its_style() {
    case("js-esm-settled", "js-unbounded-fanout", FixKind::Concurrency, 10);
}

#[test]
fn typescript_fanout_gets_a_typed_helper() {
    case("ts-fanout", "js-unbounded-fanout", FixKind::Concurrency, 10);
}

#[test]
fn js_fanout_under_a_rate_limit_gets_a_rate_limiter() {
    case("js-rate", "js-unbounded-fanout", FixKind::Rate, 8);
}

#[test]
fn python_gather_gets_a_semaphore() {
    case("py-gather", "py-unbounded-gather", FixKind::Concurrency, 10);
}

#[test]
fn python_taskgroup_loop_gets_a_semaphore_and_keeps_the_group() {
    case("py-taskgroup", "py-taskgroup-per-item", FixKind::Concurrency, 10);
}

#[test]
fn python_pool_size_is_changed_where_it_is_defined() {
    case("py-pool-settings", "py-thread-pool", FixKind::Concurrency, 10);
}

#[test]
fn go_goroutine_per_item_gets_a_semaphore() {
    case("go-fanout", "go-goroutine-per-item", FixKind::Concurrency, 10);
}

#[test]
fn go_errgroup_without_a_limit_gets_set_limit() {
    case("go-errgroup", "go-errgroup-unlimited", FixKind::Concurrency, 8);
}

#[test]
fn py_retry_loop_with_statuses_in_a_set_sleeps_for_retry_after() {
    case("py-retry", "py-retry-without-backoff", FixKind::Retry, 5);
}

#[test]
fn py_async_while_loop_with_a_one_line_continue_awaits_a_backoff() {
    case("py-retry-async", "py-retry-without-backoff", FixKind::Retry, 5);
}

#[test]
fn py_except_that_falls_through_waits_with_the_error_it_caught() {
    case("py-retry-except", "py-retry-without-backoff", FixKind::Retry, 4);
}

#[test]
fn go_retry_loop_sleeps_for_retry_after_and_gets_its_imports() {
    case("go-retry", "go-retry-without-backoff", FixKind::Retry, 5);
}

#[test]
fn js_retry_loop_gets_backoff_honouring_retry_after() {
    case("js-retry", "js-retry-without-backoff", FixKind::Retry, 5);
}

#[test]
fn js_retry_from_a_catch_with_statuses_in_a_set_gets_backoff() {
    case("js-retry-catch", "js-retry-without-backoff", FixKind::Retry, 4);
}

#[test]
fn ts_retry_by_recursion_gets_backoff() {
    case("js-retry-recursive", "js-retry-without-backoff", FixKind::Retry, 5);
}

#[test]
fn js_pushed_array_loop_becomes_a_bounded_map() {
    case("js-pushed", "js-unbounded-fanout", FixKind::Concurrency, 6);
}

#[test]
fn js_pushed_array_with_a_busier_loop_pushes_thunks() {
    case("js-pushed-thunks", "js-unbounded-fanout", FixKind::Concurrency, 10);
}

#[test]
fn ts_foreach_async_becomes_an_awaited_bounded_map() {
    case("js-foreach", "js-unbounded-fanout", FixKind::Concurrency, 10);
}

#[test]
fn a_codemod_for_the_wrong_kind_is_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/go-fanout");
    let repo = Repo::load(&dir).expect("case");
    let all = builtin_patterns();
    let site = patterns::find_all(&repo, &all).into_iter().next().expect("a site");
    let fix = Fix { kind: FixKind::Rate, bound: 5, metric: "max_rate_1s <= 5".into() };
    let err =
        patterns::apply(patterns::by_name(&all, &site.pattern).expect("p"), &site, &repo, &fix)
            .expect_err("go pattern has no rate codemod");
    assert!(err.contains("cannot take a rate fix"), "{err}");
}
