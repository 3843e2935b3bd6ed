//! Tumbling event-time windows per service, closed after a grace period and analysed by a
//! bounded pool.
//!
//! A record belongs to the window `[k·W, (k+1)·W)` holding its request start. A window closes
//! when the service's watermark (the latest start seen) passes its end plus the grace, or when
//! the service has sent nothing for the grace in wall time (a service that goes quiet still
//! gets its last window analysed). A record for a window already closed is *late*: it is
//! stored and acknowledged, counted per window and in `af_records_late_total`, but not
//! analysed — re-running the detectors on a window's stragglers alone would invent findings.
//!
//! Buffers are bounded per service in bytes over open *and* closed-not-yet-analysed windows,
//! so a slow analysis pushes back on the intake instead of growing memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use af_analyze::{Capture, Finding, analyze, default_detectors, rank};
use af_intake::Record;
use af_intake::segment::Replay;
use af_ledger::{EndpointWindow, Key, Observation, State, WindowRow};
use af_snapshot::{CallerSpec, Exchange, Templater};

use crate::{Config, ServeError, Shared};

struct Open {
    exchanges: Vec<Exchange>,
    bytes: usize,
    segments: HashMap<u64, u64>,
}

#[derive(Default)]
struct Service {
    open: BTreeMap<i64, Open>,
    /// Bytes reserved or held in open and analysing windows.
    buffered: usize,
    /// Latest request start seen.
    watermark: i64,
    last_arrival: Option<Instant>,
    /// Windows starting before this are closed.
    closed_before: i64,
    /// Late records per closed window, not yet written to the ledger.
    late: BTreeMap<i64, i64>,
}

#[derive(Default)]
struct Inner {
    services: HashMap<String, Service>,
    /// Records of each segment not yet analysed (a segment at 0 can go).
    pending: HashMap<u64, u64>,
}

/// The windows of every service.
pub struct Windows {
    inner: Mutex<Inner>,
    window_ns: i64,
    grace_ns: i64,
    cap: usize,
    done: tokio::sync::Notify,
    pool: Arc<tokio::sync::Semaphore>,
    /// One analysis at a time per service: a window's baselines are read, updated and written
    /// back, so two at once would lose an update (this made the seeded-baseline test flaky).
    order: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Shared windows: this replica's name on its claims, and the services it is analysing.
    holder: String,
    claiming: Mutex<HashSet<String>>,
}

impl Windows {
    /// Empty windows for `cfg`.
    pub fn new(cfg: &Config) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            window_ns: cfg.window_ns,
            grace_ns: cfg.grace_ns,
            cap: cfg.buffer_bytes,
            done: tokio::sync::Notify::new(),
            pool: Arc::new(tokio::sync::Semaphore::new(cfg.analysis_pool.max(1))),
            order: Mutex::new(HashMap::new()),
            holder: af_jobs::worker::worker_name("serve"),
            claiming: Mutex::new(HashSet::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_of(&self, ns: i64) -> i64 {
        ns.div_euclid(self.window_ns) * self.window_ns
    }

    /// Reserves buffer for `records` (all or none); on refusal, the service that is full.
    pub fn reserve(&self, records: &[(Record, usize)]) -> Result<(), String> {
        let mut want: HashMap<&str, usize> = HashMap::new();
        for (r, n) in records {
            *want.entry(r.service.as_str()).or_default() += n;
        }
        let mut inner = self.lock();
        for (s, n) in &want {
            let have = inner.services.get(*s).map_or(0, |v| v.buffered);
            if have + n > self.cap {
                return Err((*s).to_owned());
            }
        }
        for (s, n) in want {
            inner.services.entry(s.to_owned()).or_default().buffered += n;
        }
        Ok(())
    }

    /// Gives back a reservation that was not used.
    pub fn release(&self, records: &[(Record, usize)]) {
        let mut inner = self.lock();
        for (r, n) in records {
            if let Some(s) = inner.services.get_mut(&r.service) {
                s.buffered = s.buffered.saturating_sub(*n);
            }
        }
    }

    /// Seconds a refused client should wait: until the oldest window can close.
    pub fn retry_after_s(&self) -> u64 {
        ((self.grace_ns / 1_000_000_000).max(1)) as u64
    }
}

/// Puts stored records into their windows.
pub fn insert(shared: &Shared, segment: u64, records: Vec<(Record, usize)>) {
    let w = &shared.windows;
    let mut late = 0;
    let mut inner = w.lock();
    let now = Instant::now();
    for (r, n) in records {
        let start = r.exchange.timing.start.as_nanos();
        let key = w.start_of(start);
        let svc = inner.services.entry(r.service).or_default();
        svc.last_arrival = Some(now);
        if key < svc.closed_before {
            *svc.late.entry(key).or_default() += 1;
            svc.buffered = svc.buffered.saturating_sub(n);
            late += 1;
            continue;
        }
        svc.watermark = svc.watermark.max(start);
        let open = svc.open.entry(key).or_insert_with(|| Open {
            exchanges: Vec::new(),
            bytes: 0,
            segments: HashMap::new(),
        });
        open.exchanges.push(r.exchange);
        open.bytes += n;
        *open.segments.entry(segment).or_default() += 1;
        *inner.pending.entry(segment).or_default() += 1;
    }
    drop(inner);
    shared.metrics.late(late);
}

/// Re-windows what the segment log held on start, skipping windows the ledger has analysed.
pub async fn replay(shared: &Arc<Shared>, replay: Replay) -> Result<usize, ServeError> {
    for (path, at) in &replay.corrupt {
        log!(
            "af serve: {}: unreadable past byte {at}; the records after it are lost",
            path.display()
        );
    }
    let mut done: HashMap<(String, i64), bool> = HashMap::new();
    let mut taken = 0;
    let mut by_segment: BTreeMap<u64, Vec<(Record, usize)>> = BTreeMap::new();
    for (segment, r) in replay.records {
        let key = (r.service.clone(), shared.windows.start_of(r.exchange.timing.start.as_nanos()));
        let analysed = match done.get(&key) {
            Some(d) => *d,
            None => {
                let d = shared.ledger.window_done(&key.0, key.1).await?;
                done.insert(key, d);
                d
            }
        };
        if analysed {
            continue;
        }
        let size = serde_json::to_vec(&r).map_or(0, |v| v.len() + 8).max(r.heap_size());
        by_segment.entry(segment).or_default().push((r, size));
    }
    let mut segments_used = HashSet::new();
    for (segment, records) in by_segment {
        taken += records.len();
        segments_used.insert(segment);
        {
            let mut inner = shared.windows.lock();
            for (r, n) in &records {
                inner.services.entry(r.service.clone()).or_default().buffered += n;
            }
        }
        insert(shared, segment, records);
    }
    Ok(taken)
}

/// Closes windows as time passes; runs for the life of the server.
pub async fn closer(shared: Arc<Shared>) {
    let tick = Duration::from_millis((shared.cfg.grace_ns / 4_000_000).clamp(20, 500) as u64);
    // Retention scans every evidence row: once a minute, not on every tick.
    let mut retained = Instant::now() - Duration::from_secs(60);
    loop {
        tokio::time::sleep(tick).await;
        if shared.ledger.shared_windows() {
            close_shared(&shared, false).await;
        } else {
            close(&shared, false);
            write_late(&shared).await;
        }
        if retained.elapsed() >= Duration::from_secs(60) {
            retained = Instant::now();
            if let Err(e) = shared.ledger.enforce_retention(shared.cfg.retention).await {
                log!("af serve: evidence retention: {e}");
            }
        }
    }
}

async fn write_late(shared: &Arc<Shared>) {
    let late: Vec<(String, i64, i64)> = {
        let mut inner = shared.windows.lock();
        inner
            .services
            .iter_mut()
            .flat_map(|(name, s)| {
                std::mem::take(&mut s.late)
                    .into_iter()
                    .map(|(k, n)| (name.clone(), k, n))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for (service, start, n) in late {
        let row = WindowRow {
            service,
            start_ns: start,
            end_ns: start + shared.cfg.window_ns,
            records: 0,
            findings: 0,
            late: n,
        };
        if let Err(e) = shared.ledger.record_window(&row, &[]).await {
            log!("af serve: recording late records: {e}");
        }
    }
}

/// Closes every window that is due (all of them with `all`) and starts their analyses.
fn close(shared: &Arc<Shared>, all: bool) {
    let w = &shared.windows;
    let mut due = Vec::new();
    {
        let mut inner = w.lock();
        let now = Instant::now();
        let idle = Duration::from_nanos(w.grace_ns.max(0) as u64);
        for (name, s) in inner.services.iter_mut() {
            let quiet = s.last_arrival.is_some_and(|t| now.duration_since(t) >= idle);
            let keys: Vec<i64> = s
                .open
                .keys()
                .copied()
                .filter(|&k| all || quiet || k + w.window_ns + w.grace_ns <= s.watermark)
                .collect();
            for k in keys {
                if let Some(open) = s.open.remove(&k) {
                    s.closed_before = s.closed_before.max(k + w.window_ns);
                    due.push((name.clone(), k, open));
                }
            }
        }
    }
    for (service, start, open) in due {
        shared.metrics.backlog.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            let bytes = open.bytes;
            let segments = open.segments.clone();
            // On failure the records stay in the segment log: a restart analyses the window
            // again.
            run_analysis(&shared, &service, start, open.exchanges, None).await;
            let mut gone = Vec::new();
            {
                let mut inner = shared.windows.lock();
                if let Some(s) = inner.services.get_mut(&service) {
                    s.buffered = s.buffered.saturating_sub(bytes);
                }
                for (seg, n) in segments {
                    if let Some(p) = inner.pending.get_mut(&seg) {
                        *p = p.saturating_sub(n);
                        if *p == 0 {
                            inner.pending.remove(&seg);
                            gone.push(seg);
                        }
                    }
                }
            }
            for seg in gone {
                shared.log.remove(seg);
            }
            shared.metrics.backlog.fetch_sub(1, Ordering::SeqCst);
            shared.windows.done.notify_waiters();
        });
    }
}

/// One window's analysis, in its service's turn and the pool's bound; whether it was written.
async fn run_analysis(
    shared: &Arc<Shared>,
    service: &str,
    start: i64,
    exchanges: Vec<Exchange>,
    claim: Option<&af_ledger::pending::DueWindow>,
) -> bool {
    let order = {
        let mut o = shared.windows.order.lock().unwrap_or_else(|e| e.into_inner());
        o.entry(service.to_owned()).or_default().clone()
    };
    let _turn = order.lock_owned().await;
    let _permit = shared.windows.pool.clone().acquire_owned().await;
    let t0 = Instant::now();
    match analyse(shared, service, start, exchanges, claim).await {
        Ok(()) => {
            shared.metrics.processed(t0.elapsed().as_secs_f64());
            true
        }
        Err(e) => {
            shared.metrics.analysis_errors.fetch_add(1, Ordering::Relaxed);
            log!("af serve: analysing {service} window {start}: {e}");
            false
        }
    }
}

/// Shared windows (a PostgreSQL ledger): claims the windows that are due over every replica's
/// records — the oldest of each service, one service's at a time — and analyses them here.
async fn close_shared(shared: &Arc<Shared>, all: bool) {
    let w = &shared.windows;
    let due = match shared.ledger.due_windows(w.window_ns, w.grace_ns, all).await {
        Ok(d) => d,
        Err(e) => {
            log!("af serve: looking for due windows: {e}");
            return;
        }
    };
    let mut tried = HashSet::new();
    for d in due {
        if !tried.insert(d.service.clone()) {
            continue; // one window of a service at a time, oldest first
        }
        if !w.claiming.lock().unwrap_or_else(|e| e.into_inner()).insert(d.service.clone()) {
            continue; // this replica is analysing one of its windows
        }
        let records = match shared.ledger.claim_window(&d, &w.holder).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                w.claiming.lock().unwrap_or_else(|e| e.into_inner()).remove(&d.service);
                continue;
            }
            Err(e) => {
                w.claiming.lock().unwrap_or_else(|e| e.into_inner()).remove(&d.service);
                log!("af serve: claiming {} window {}: {e}", d.service, d.window_ns);
                continue;
            }
        };
        shared.metrics.backlog.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut exchanges = Vec::with_capacity(records.len());
            for b in &records {
                match serde_json::from_slice::<Record>(b) {
                    Ok(r) => exchanges.push(r.exchange),
                    // Stored by this very code after it encoded them: cannot happen short of
                    // a damaged database, and is said when it does.
                    Err(e) => log!(
                        "af serve: {} window {}: a stored record does not decode ({e}); skipped",
                        d.service,
                        d.window_ns
                    ),
                }
            }
            let written = run_analysis(&shared, &d.service, d.window_ns, exchanges, Some(&d)).await;
            let holder = &shared.windows.holder;
            // Retried in ten seconds, here or by another replica; the records stay stored.
            if !written
                && let Err(e) = shared.ledger.release_window(&d, holder, 10_000_000_000).await
            {
                log!("af serve: releasing {} window {}: {e}", d.service, d.window_ns);
            }
            shared.windows.claiming.lock().unwrap_or_else(|e| e.into_inner()).remove(&d.service);
            shared.metrics.backlog.fetch_sub(1, Ordering::SeqCst);
            shared.windows.done.notify_waiters();
        });
    }
}

/// Closes all open windows and waits until every analysis has finished.
///
/// Shared windows stay open for the other replicas: this one only finishes the analyses it
/// started (and claims what is due now); the records are in the ledger.
pub async fn flush(shared: &Arc<Shared>) {
    if shared.ledger.shared_windows() {
        close_shared(shared, false).await;
    } else {
        close(shared, true);
    }
    loop {
        let notified = shared.windows.done.notified();
        if shared.metrics.backlog.load(Ordering::SeqCst) == 0 {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    }
    write_late(shared).await;
}

/// What the CPU part of an analysis found.
struct Analysis {
    findings: Vec<Finding>,
    endpoints: Vec<EndpointWindow>,
    capture: Capture,
}

fn compute(exchanges: &[Exchange]) -> Analysis {
    let t = Instant::now();
    let templater = Templater::new(Vec::new()).learning_from(exchanges);
    let t1 = t.elapsed();
    let capture = Capture::from_exchanges(exchanges, &templater, &CallerSpec::Auto);
    let t2 = t.elapsed();
    let findings = rank(analyze(&capture, &default_detectors()));
    if std::env::var_os("AF_TIMINGS").is_some() {
        log!(
            "timing: learn {t1:?} capture {:?} detect {:?} ({} exchanges)",
            t2 - t1,
            t.elapsed() - t2,
            exchanges.len()
        );
    }
    let (conc, _) = af_analyze::concurrency::concurrency_table(&capture);
    let mut endpoints = Vec::new();
    for (ep, idx) in capture.by_endpoint().iter().enumerate() {
        if idx.is_empty() {
            continue;
        }
        let e = &capture.endpoints[ep];
        let key = e.key();
        let calls: Vec<_> = idx.iter().map(|&i| &capture.calls[i]).collect();
        let mut durations: Vec<i64> =
            calls.iter().map(|c| c.duration()).filter(|d| *d > 0).collect();
        durations.sort_unstable();
        let p95 = (!durations.is_empty()).then(|| {
            let i = ((durations.len() as f64) * 0.95).ceil() as usize;
            durations[i.clamp(1, durations.len()) - 1] as f64 / 1e6
        });
        let peak = conc
            .iter()
            .find(|r| r.endpoint == key && r.host == e.host)
            .map_or(0, |r| r.peak_inflight_per_caller);
        endpoints.push(EndpointWindow {
            endpoint: key,
            calls: calls.len() as i64,
            errors: calls.iter().filter(|c| c.is_error()).count() as i64,
            throttled: calls.iter().filter(|c| c.status == 429 || c.status == 503).count() as i64,
            server_errors: calls.iter().filter(|c| c.status >= 500).count() as i64,
            p95_ms: p95,
            peak_inflight_caller: peak as i64,
        });
    }
    // Endpoints of one key on several hosts: one row each would collide in the ledger.
    endpoints.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    endpoints.dedup_by(|b, a| {
        if a.endpoint == b.endpoint {
            a.calls += b.calls;
            a.errors += b.errors;
            a.throttled += b.throttled;
            a.server_errors += b.server_errors;
            a.p95_ms = match (a.p95_ms, b.p95_ms) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
            a.peak_inflight_caller = a.peak_inflight_caller.max(b.peak_inflight_caller);
            true
        } else {
            false
        }
    });
    Analysis { findings, endpoints, capture }
}

async fn analyse(
    shared: &Arc<Shared>,
    service: &str,
    start: i64,
    exchanges: Vec<Exchange>,
    claim: Option<&af_ledger::pending::DueWindow>,
) -> Result<(), af_ledger::LedgerError> {
    let exchanges = Arc::new(exchanges);
    let ex = exchanges.clone();
    let a = tokio::task::spawn_blocking(move || compute(&ex))
        .await
        .map_err(|e| af_ledger::LedgerError::NotFound(format!("analysis task failed: {e}")))?;
    let timing = std::env::var_os("AF_TIMINGS").is_some();
    let t_ledger = Instant::now();
    let ledger = &shared.ledger;
    // Absolute findings first; endpoints they name do not teach the baseline.
    let mut observations: Vec<Observation> = Vec::new();
    let mut flagged: HashSet<String> = HashSet::new();
    // `info` findings say nothing is wrong: they do not open anything.
    for f in a.findings.iter().filter(|f| f.severity > af_analyze::Severity::Info) {
        if let Some(ep) = &f.endpoint {
            flagged.insert(ep.clone());
        }
        observations.push(Observation {
            key: Key::new(&f.detector, service, f.endpoint.as_deref(), f.status),
            status: f.status,
            severity: f.severity.as_str().to_owned(),
            summary: f.summary.clone(),
            metric: f.suggested_metric.clone(),
            window_ns: start,
        });
    }
    let mut baselines: HashMap<String, af_ledger::baseline::Baseline> =
        ledger.baselines(service).await?.into_iter().map(|b| (b.endpoint.clone(), b)).collect();
    for e in &a.endpoints {
        let b = baselines.entry(e.endpoint.clone()).or_insert_with(|| {
            af_ledger::baseline::Baseline { endpoint: e.endpoint.clone(), ..Default::default() }
        });
        let relative = b.judge(e);
        if flagged.contains(&e.endpoint) || !relative.is_empty() {
            for (kind, summary, metric) in relative {
                observations.push(Observation {
                    key: Key::new(kind, service, Some(&e.endpoint), None),
                    status: None,
                    severity: "medium".into(),
                    summary,
                    metric,
                    window_ns: start,
                });
            }
            continue;
        }
        b.learn(e);
        ledger.put_baseline(service, b).await?;
    }
    // Evidence first, so that no reader ever sees a new finding without it.
    let mut opens = false;
    for o in &observations {
        opens |= ledger.would_open(o).await?;
    }
    let evidence = if opens {
        Some(ledger.put_evidence(service, start, &exchanges).await?.digest)
    } else {
        None
    };
    for o in &observations {
        let (t, f) = ledger.observe(o, evidence.as_deref()).await?;
        if let Some(j) = &shared.cfg.jobs {
            crate::hooks::on_transition(j, t, &f).await;
        }
    }
    // Every finding of this service: its check's value on this window, for `af verify`.
    for f in ledger.findings(None, Some(service)).await? {
        if f.state == State::Suppressed {
            continue;
        }
        // Its own metric, or (a finding without one, e.g. an error burst) no errors of its
        // status on its endpoint: the check `af verify` weighs.
        let Ok(check) = af_ledger::verify::check_of(&f) else {
            continue;
        };
        let row = af_ledger::verify::check_row(&check, f.status, &a.capture, start);
        if row.calls > 0 {
            ledger.record_check(&f.fingerprint, &row).await?;
        }
    }
    let row = WindowRow {
        service: service.to_owned(),
        start_ns: start,
        end_ns: start + shared.cfg.window_ns,
        records: exchanges.len() as i64,
        findings: observations.len() as i64,
        late: 0,
    };
    let r = match claim {
        Some(_) => ledger.record_claimed_window(&row, &a.endpoints, &shared.windows.holder).await,
        None => ledger.record_window(&row, &a.endpoints).await,
    };
    if timing {
        log!("timing: ledger {:?} ({} observations)", t_ledger.elapsed(), observations.len());
    }
    r
}
