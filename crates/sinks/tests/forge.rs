//! The sinks against GitHub- and GitLab-shaped servers on loopback (af-testkit's FakeForge:
//! the providers' documented shapes, state, faults): idempotent creates, and a clear outcome for
//! 401, 403 rate limits, 404, 422 and 5xx.

use std::time::Duration;

use af_sinks::{Effect, Forge, ForgeKind, SinkError};
use af_testkit::forge::{FakeForge, Fault};

const TOKEN: &str = "ghp_plantedTOKEN0123456789";

fn forge(kind: ForgeKind, fake: &FakeForge, token: &str) -> Forge {
    let api = match kind {
        ForgeKind::Github => fake.base.clone(),
        ForgeKind::Gitlab => fake.gitlab_api(),
    };
    Forge::new(kind, &api, &fake.project, token.to_owned(), "FORGE_TOKEN").expect("forge")
}

fn fault(
    method: &str,
    path: &str,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    after_effect: bool,
) -> Fault {
    Fault {
        method: method.into(),
        path_contains: path.into(),
        status,
        headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        body: body.into(),
        times: 1,
        after_effect,
        delay_ms: 0,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt")
}

fn both(test: impl Fn(ForgeKind)) {
    test(ForgeKind::Github);
    test(ForgeKind::Gitlab);
}

#[test]
fn one_issue_per_fingerprint_and_one_comment_per_key_even_when_a_response_is_lost() {
    both(|kind| {
        let fake = FakeForge::start("acme/radar", TOKEN, None);
        let f = forge(kind, &fake, TOKEN);
        rt().block_on(async {
            let (i, e) = f.upsert_issue("v1:aaa", "t", "body").await.expect("create");
            assert_eq!(e, Effect::Created);
            let (j, e) = f.upsert_issue("v1:aaa", "t2", "body2").await.expect("update");
            assert_eq!((j.number, e), (i.number, Effect::Updated));
            // The provider made the comment but the answer was lost (502): the retry finds it.
            fake.fault(fault("POST", "/comments", 502, &[], "bad gateway", true));
            fake.fault(fault("POST", "/notes", 502, &[], "bad gateway", true));
            let err = f.comment_once(i.number, "k1", "hello").await.unwrap_err();
            assert_eq!(err.retry_after(), Some(Duration::ZERO), "{err}");
            assert_eq!(
                f.comment_once(i.number, "k1", "hello").await.expect("retry"),
                Effect::Found
            );
            assert_eq!(f.comment_once(i.number, "k2", "again").await.expect("k2"), Effect::Created);
            assert_eq!(f.set_issue_open(i.number, false).await.expect("close"), Effect::Updated);
            assert_eq!(f.find_issue("v1:aaa").await.expect("find").map(|i| i.open), Some(false));
            assert_eq!(f.find_issue("v1:bbb").await.expect("find"), None);
        });
        let issues = fake.issues();
        assert_eq!(issues.len(), 1, "{kind:?}: {issues:?}");
        assert_eq!(issues[0].comments.len(), 2, "{kind:?}: {:?}", issues[0].comments);
        assert!(issues[0].body.contains("<!-- af:fingerprint v1:aaa -->"));
        assert!(issues[0].labels.contains(&af_sinks::LABEL.to_owned()));
        // The token went only where the provider reads it.
        for s in fake.seen() {
            assert!(!s.uri.contains(TOKEN) && !s.body.contains(TOKEN), "{s:?}");
        }
    });
}

#[test]
fn the_marker_is_found_past_the_first_page() {
    both(|kind| {
        let fake = FakeForge::start("acme/radar", TOKEN, None);
        let f = forge(kind, &fake, TOKEN);
        rt().block_on(async {
            for n in 0..120 {
                f.upsert_issue(&format!("v1:{n:03}"), "t", "b").await.expect("create");
            }
            let i = f.find_issue("v1:117").await.expect("find").expect("found on page 2");
            assert_eq!(i.number, 118);
        });
        let pages =
            fake.seen().iter().filter(|s| s.method == "GET" && s.uri.contains("page=2")).count();
        assert!(pages > 0, "{kind:?}: the second page was never asked for");
    });
}

#[test]
fn each_provider_error_has_a_clear_outcome() {
    both(|kind| {
        let fake = FakeForge::start("acme/radar", TOKEN, None);
        rt().block_on(async {
            // 401: a wrong token; not retried, names the variable (never the value).
            let bad = forge(kind, &fake, "wrong-token");
            let e = bad.upsert_issue("v1:x", "t", "b").await.unwrap_err();
            assert!(
                matches!(e, SinkError::Unauthorized { .. }) && e.retry_after().is_none(),
                "{e}"
            );
            assert!(
                e.to_string().contains("$FORGE_TOKEN") && !e.to_string().contains("wrong-token"),
                "{e}"
            );

            let f = forge(kind, &fake, TOKEN);
            // 403 with x-ratelimit-remaining: 0 and retry-after: a rate limit, retried after.
            fake.fault(fault(
                "GET",
                "/issues",
                403,
                &[("x-ratelimit-remaining", "0"), ("retry-after", "17")],
                "{\"message\":\"API rate limit exceeded\"}",
                false,
            ));
            let e = f.find_issue("v1:x").await.unwrap_err();
            assert_eq!(e.retry_after(), Some(Duration::from_secs(17)), "{e}");
            // 403 without them: a permission problem, not retried.
            fake.fault(fault(
                "GET",
                "/issues",
                403,
                &[],
                "{\"message\":\"Resource not accessible by integration\"}",
                false,
            ));
            let e = f.find_issue("v1:x").await.unwrap_err();
            assert!(matches!(e, SinkError::Forbidden { .. }), "{e}");
            // 429 (GitLab's limiter).
            fake.fault(fault(
                "GET",
                "/issues",
                429,
                &[("ratelimit-remaining", "0"), ("retry-after", "3")],
                "{\"message\":\"Retry later\"}",
                false,
            ));
            assert_eq!(
                f.find_issue("v1:x").await.unwrap_err().retry_after(),
                Some(Duration::from_secs(3))
            );
            // 5xx: transient.
            fake.fault(fault("", "/issues", 503, &[], "unavailable", false));
            assert_eq!(f.find_issue("v1:x").await.unwrap_err().retry_after(), Some(Duration::ZERO));
            // 404: a project that does not exist.
            let api = match kind {
                ForgeKind::Github => fake.base.clone(),
                ForgeKind::Gitlab => fake.gitlab_api(),
            };
            let missing =
                Forge::new(kind, &api, "acme/nope", TOKEN.into(), "FORGE_TOKEN").expect("forge");
            let e = missing.find_issue("v1:x").await.unwrap_err();
            assert!(matches!(e, SinkError::NotFound { .. }), "{e}");
            // 422/400: refused content, the field named.
            let e = f.upsert_issue("v1:x", "", "b").await.unwrap_err();
            assert!(matches!(e, SinkError::Invalid { .. }) && e.retry_after().is_none(), "{e}");
            assert!(e.to_string().contains("title"), "{e}");
        });
        assert!(fake.issues().is_empty(), "{kind:?}: nothing was created by the failures");
    });
}

#[test]
fn one_pull_request_per_branch_and_its_head_must_have_been_pushed() {
    both(|kind| {
        let tmp = tempfile::tempdir().expect("tmp");
        let bare = tmp.path().join("bare.git");
        let git = |args: &[&str], dir: &std::path::Path| {
            assert!(
                std::process::Command::new("git")
                    .current_dir(dir)
                    .args(args)
                    .status()
                    .expect("git")
                    .success(),
                "{args:?}"
            );
        };
        git(&["init", "-q", "--bare", bare.to_str().expect("utf-8")], tmp.path());
        let fake = FakeForge::start("acme/radar", TOKEN, Some(bare.clone()));
        let f = forge(kind, &fake, TOKEN);
        rt().block_on(async {
            let e = f.open_pull("af/fix-1", "main", "t", "report").await.unwrap_err();
            assert!(
                matches!(e, SinkError::Invalid { .. }) && e.to_string().contains("head"),
                "{e}"
            );
        });
        let work = tmp.path().join("w");
        std::fs::create_dir(&work).expect("dir");
        git(&["init", "-q", "-b", "main"], &work);
        std::fs::write(work.join("a"), "a").expect("write");
        git(&["add", "a"], &work);
        git(&["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "a"], &work);
        git(&["push", "-q", bare.to_str().expect("utf-8"), "HEAD:refs/heads/af/fix-1"], &work);
        rt().block_on(async {
            // The create succeeded but its answer was lost: the retry finds the pull request.
            let path = if kind == ForgeKind::Github { "/pulls" } else { "/merge_requests" };
            fake.fault(fault("POST", path, 500, &[], "oops", true));
            assert!(f.open_pull("af/fix-1", "main", "t", "report").await.is_err());
            let (p, e) = f.open_pull("af/fix-1", "main", "t", "report").await.expect("retry");
            assert_eq!((e, p.state.as_str()), (Effect::Found, "open"));
        });
        assert_eq!(fake.pulls().len(), 1, "{kind:?}");
        assert_eq!(fake.pulls()[0].body, "report");
    });
}

#[test]
fn webhooks_are_signed_over_the_exact_body() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        let (mut s, _) = listener.accept().expect("accept");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            let mut l = String::new();
            r.read_line(&mut l).expect("line");
            if l.trim().is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("len");
            }
            headers.push(l.trim().to_owned());
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("body");
        s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").expect("write");
        (headers, body)
    });
    let hook = af_sinks::Webhook::new(
        &format!("http://{addr}/hook"),
        b"It's a Secret to Everybody",
        "HOOK_SECRET",
    )
    .expect("hook");
    rt().block_on(hook.send("run-1", &serde_json::json!({"event": "verify.verified"})))
        .expect("sent");
    let (headers, body) = got.join().expect("server");
    let sig = headers
        .iter()
        .find_map(|h| h.strip_prefix("x-af-signature-256: "))
        .expect("signature header");
    assert!(af_sinks::verify_signature(b"It's a Secret to Everybody", &body, sig));
    assert!(headers.iter().any(|h| h == "x-af-delivery: run-1"), "{headers:?}");
}
