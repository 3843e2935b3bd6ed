//! The ledger on a real SQLite file.

use super::*;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

fn obs(kind: &str, window_ns: i64) -> Observation {
    Observation {
        key: Key::new(kind, "radar", Some("GET /m/{id}"), Some(429)),
        status: Some(429),
        severity: "high".into(),
        summary: format!("{kind} at {window_ns}"),
        metric: Some("peak_inflight{endpoint=\"GET /m/{id}\",per=\"caller\"} <= 10".into()),
        window_ns,
    }
}

impl Ledger {
    async fn observe_plain(&self, o: &Observation) -> Result<(Transition, FindingRow)> {
        self.observe(o, None).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn evidence_stored_first_is_linked_by_the_observation_that_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).await.expect("open");
    let o = obs("limit-model", 60);
    assert!(ledger.would_open(&o).await.expect("would open"));
    let (_, f) = ledger.observe(&o, Some("sha256:ab")).await.expect("open");
    assert_eq!(f.evidence.as_deref(), Some("sha256:ab"));
    assert!(!ledger.would_open(&obs("limit-model", 120)).await.expect("recurs"));
    // A recurrence does not replace the evidence it opened with.
    let (_, f) = ledger.observe(&obs("limit-model", 120), Some("sha256:cd")).await.expect("again");
    assert_eq!(f.evidence.as_deref(), Some("sha256:ab"));
    let (_, occ) = ledger.finding(&f.fingerprint).await.expect("show");
    assert_eq!(
        occ.iter().map(|o| o.evidence.as_deref()).collect::<Vec<_>>(),
        [None, Some("sha256:ab")]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn findings_open_recur_cool_down_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = Ledger::open(dir.path()).await.expect("open");
    let (t, f) = ledger.observe_plain(&obs("limit-model", 60)).await.expect("observe");
    assert_eq!(t, Transition::Opened);
    assert_eq!(f.state, State::Open);
    let (t, f) = ledger.observe_plain(&obs("limit-model", 120)).await.expect("again");
    assert_eq!(t, Transition::Recurred);
    assert_eq!((f.occurrences, f.first_seen, f.last_seen), (2, 60, 120));
    // Fixed: a recurrence inside the cooldown is counted, not reopened.
    ledger.set_state(&f.fingerprint, State::Fixed).await.expect("fixed");
    let (t, f) = ledger.observe_plain(&obs("limit-model", 180)).await.expect("flap");
    assert_eq!((t, f.state), (Transition::Recurred, State::Fixed));
    // Past the cooldown it reopens.
    ledger.policy.cooldown_ns = 0;
    let (t, f) = ledger.observe_plain(&obs("limit-model", 240)).await.expect("reopen");
    assert_eq!((t, f.state, f.reopened), (Transition::Reopened, State::Reopened, 1));
    // Suppressed: counted, not reported, until it expires.
    let short = &f.fingerprint[..10];
    let s = ledger
        .suppress(short, "known: vendor outage", "sre@x", Some(i64::MAX))
        .await
        .expect("suppress");
    assert_eq!(s.state, State::Suppressed);
    let (t, f) = ledger.observe_plain(&obs("limit-model", 300)).await.expect("suppressed");
    assert_eq!((t, f.occurrences), (Transition::Suppressed, 5));
    let (_, occ) = ledger.finding(short).await.expect("show");
    assert_eq!(occ.iter().map(|o| o.window_ns).collect::<Vec<_>>(), [300, 240, 180, 120, 60]);
    // A different kind is a different finding; a bad prefix is a clear error.
    let (t, _) = ledger.observe_plain(&obs("error-burst", 60)).await.expect("other");
    assert_eq!(t, Transition::Opened);
    assert_eq!(ledger.findings(None, Some("radar")).await.expect("ls").len(), 2);
    let e = ledger.finding("zz").await.expect_err("not hex");
    assert!(e.to_string().contains("not a fingerprint"), "{e}");
    let e = ledger.finding("v1:0000").await.expect_err("none");
    assert!(e.to_string().contains("no finding"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn evidence_is_stored_once_per_content_and_retention_deletes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).await.expect("open");
    let line = r#"{"id":"a1","request":{"method":"GET","url":"http://api.test/m/1","headers":[]},"response":{"status":429,"headers":[]},"timing":{"start":"2026-01-01T00:00:00Z","duration_ns":1000}}"#;
    let ex: af_snapshot::Exchange = serde_json::from_str(line).expect("exchange");
    let a = ledger.put_evidence("radar", 0, &[ex.clone(), ex.clone()]).await.expect("put");
    let b = ledger.put_evidence("radar", 0, &[ex.clone(), ex]).await.expect("again");
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.exchanges, 2);
    let (read, _) = af_snapshot::read_all(&a.path, af_snapshot::ReadOptions::default())
        .expect("evidence reads as a snapshot");
    assert_eq!(read.len(), 2);
    let n = ledger
        .enforce_retention(evidence::Retention { max_age_ns: 0, max_bytes: 0 })
        .await
        .expect("retention");
    assert_eq!(n, 1);
    assert!(!a.path.exists());
    assert!(ledger.evidence(&a.digest).await.expect("row").expect("kept").deleted.is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn an_older_database_is_migrated_forward_with_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dir.path().join("ledger.db");
    {
        // A ledger of schema version 1, with a finding in it.
        let opts = SqliteConnectOptions::new().filename(&url).create_if_missing(true);
        let pool = SqlitePool::connect_with(opts).await.expect("v1 db");
        let v1 = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(MIGRATOR.migrations[..1].to_vec()),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        v1.run(&pool).await.expect("v1 schema");
        sqlx::query(
            "INSERT INTO findings (fingerprint, kind, service, method, template, status_class, severity,
               state, summary, first_seen, last_seen, occurrences, state_since)
             VALUES ('v1:00112233445566778899aabbccddeeff', 'limit-model', 'radar', 'GET', '/m/{id}', '4xx',
               'high', 'open', 'old', 1, 1, 1, 1)",
        )
        .execute(&pool)
        .await
        .expect("v1 row");
        pool.close().await;
    }
    let ledger = Ledger::open(dir.path()).await.expect("migrates");
    assert_eq!(
        ledger.schema_version().await.expect("version"),
        MIGRATOR.migrations.last().map_or(0, |m| m.version)
    );
    let (f, _) = ledger.finding("v1:0011").await.expect("the old row");
    assert_eq!((f.summary.as_str(), f.reopened), ("old", 0));
}

#[tokio::test(flavor = "current_thread")]
async fn a_shared_window_is_claimed_once_and_a_record_after_the_claim_is_late() {
    use crate::pending::{DueWindow, PendingRecord};
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).await.expect("open");
    let w = 10_000_000_000i64;
    let rec = |start_ns| PendingRecord { service: "radar", start_ns, bytes: b"{}" };
    // Two windows' records; the second's watermark closes the first (grace 1 s).
    let first_two = [rec(5 * w + 1), rec(5 * w + 2), rec(6 * w + 2_000_000_000)];
    assert_eq!(ledger.pend(w, &first_two).await.expect("pend"), 0);
    let due = ledger.due_windows(w, 1_000_000_000, false).await.expect("due");
    assert_eq!(due, vec![DueWindow { service: "radar".into(), window_ns: 5 * w }]);
    let first = ledger.claim_window(&due[0], "replica-a").await.expect("claim");
    assert_eq!(first.map(|r| r.len()), Some(2), "the window's records");
    assert!(ledger.claim_window(&due[0], "replica-b").await.expect("claim").is_none());
    // While one window of the service is analysed, no other is claimed.
    let next = DueWindow { service: "radar".into(), window_ns: 6 * w };
    assert!(ledger.claim_window(&next, "replica-b").await.expect("claim").is_none());
    // A record of the claimed window now is late, counted, not stored.
    assert_eq!(ledger.pend(w, &[rec(5 * w + 3)]).await.expect("pend"), 1);
    // Someone else cannot finish it; its holder can, once.
    let row = WindowRow {
        service: "radar".into(),
        start_ns: 5 * w,
        end_ns: 6 * w,
        records: 2,
        findings: 0,
        late: 0,
    };
    assert!(ledger.record_claimed_window(&row, &[], "replica-b").await.is_err());
    ledger.record_claimed_window(&row, &[], "replica-a").await.expect("finish");
    assert!(ledger.record_claimed_window(&row, &[], "replica-a").await.is_err());
    let windows = ledger.windows(Some("radar"), 10).await.expect("windows");
    assert_eq!(windows.len(), 1);
    assert_eq!((windows[0].records, windows[0].late), (2, 1));
    assert_eq!(ledger.pending_records().await.expect("count"), 1, "the next window's record");
    // Then the next window is free to claim, and a failed analysis gives it back later.
    let got = ledger.claim_window(&next, "replica-b").await.expect("claim");
    assert_eq!(got.map(|r| r.len()), Some(1));
    ledger.release_window(&next, "replica-b", 60_000_000_000).await.expect("release");
    assert!(ledger.due_windows(w, 1_000_000_000, true).await.expect("due").is_empty());
    ledger.release_window(&next, "replica-b", -1).await.expect("release now");
    assert_eq!(ledger.due_windows(w, 1_000_000_000, true).await.expect("due").len(), 1);
}
