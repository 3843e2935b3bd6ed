//! One measurement: for each run, a fresh mock on 127.0.0.1:0 with its own journal, the program
//! started in its own process group with the mock's URL in its environment, killed with its
//! whole group on timeout; then the metrics, computed from the journal with the same code that
//! analyses snapshots.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use af_analyze::{CaptureBuilder, Check, Metric};
use af_mock::{Journal, Mock};
use af_snapshot::{CallerSpec, Exchange, ReadOptions, Templater, read_all};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::result::{MeasureResult, RunResult};
use crate::spec::HarnessSpec;

/// Why a measurement could not run at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A metric or expectation did not parse.
    #[error("{0}")]
    Spec(String),
    /// The mock could not start.
    #[error("mock: {0}")]
    Mock(String),
    /// The program could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// argv[0].
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Files in the output directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be written or read back.
    #[error(transparent)]
    Journal(#[from] af_snapshot::SnapshotError),
}

/// Where the program's output goes besides the run's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Copy each line to stderr, prefixed `[run N] `.
    Prefixed,
    /// Only save it.
    Quiet,
}

/// Environment variable names that carry credentials: removed from the program's environment
/// unless the spec keeps them.
pub fn is_credential(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "ACCESS_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "AUTH_",
    ]
    .iter()
    .any(|k| n.contains(k))
        || n.ends_with("_AUTH")
}

/// `120s`, `500ms`, `2m` → ms.
pub fn parse_timeout_ms(s: &str) -> Result<u64, String> {
    af_analyze::parse_duration_ns(s).map(|ns| (ns / 1_000_000).max(1) as u64)
}

struct Parsed {
    checks: Vec<(Metric, Option<Check>)>,
}

fn parse(spec: &HarnessSpec) -> Result<Parsed, MeasureError> {
    if !spec.expect.is_empty() && spec.expect.len() != spec.metrics.len() {
        return Err(MeasureError::Spec(format!(
            "{} --expect for {} --metric: give one expectation per metric, in order",
            spec.expect.len(),
            spec.metrics.len()
        )));
    }
    let mut checks = Vec::new();
    for (i, m) in spec.metrics.iter().enumerate() {
        let metric: Metric =
            m.parse().map_err(|e| MeasureError::Spec(format!("--metric {m:?}: {e}")))?;
        let check = match spec.expect.get(i) {
            Some(e) if crate::result::is_report_only(e) => None,
            Some(e) => Some(
                format!("{metric} {e}")
                    .parse::<Check>()
                    .map_err(|err| MeasureError::Spec(format!("--expect {e:?}: {err}")))?,
            ),
            None => None,
        };
        checks.push((metric, check));
    }
    if let Some(d) = &spec.driver {
        d.verify().map_err(MeasureError::Spec)?;
    }
    Ok(Parsed { checks })
}

/// How the program reaches the mock as a forward proxy.
#[derive(Clone, Debug)]
pub struct Proxy {
    /// TLS configuration for intercepted CONNECT tunnels (leaves from the local CA).
    pub intercept: Arc<rustls::ServerConfig>,
    /// Variables that make the program trust the local CA (`SSL_CERT_FILE`, ...).
    pub ca_env: Vec<(String, String)>,
}

/// Runs the harness: `spec.runs` runs against a mock of `exchanges`, files under `out_dir`.
/// With `proxy` (required when `spec.proxy`), the program gets `HTTP(S)_PROXY` pointing at the
/// mock and the CA variables.
pub async fn measure(
    spec: &HarnessSpec,
    exchanges: &[Exchange],
    out_dir: &Path,
    echo: Echo,
    proxy: Option<&Proxy>,
) -> Result<MeasureResult, MeasureError> {
    measure_in(spec, exchanges, out_dir, echo, proxy, None).await
}

/// [`measure`] with the program started in `cwd` (the code under test: the user's checkout
/// for a baseline, the worktree for a confirm run). The directory is not part of the harness:
/// the same harness runs against two versions of the code.
pub async fn measure_in(
    spec: &HarnessSpec,
    exchanges: &[Exchange],
    out_dir: &Path,
    echo: Echo,
    proxy: Option<&Proxy>,
    cwd: Option<&Path>,
) -> Result<MeasureResult, MeasureError> {
    let parsed = parse(spec)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| MeasureError::Io { path, source }
    };
    tokio::fs::create_dir_all(out_dir).await.map_err(io(out_dir))?;
    let stripped: Vec<String> = if spec.keep_env {
        Vec::new()
    } else {
        let mut v: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| is_credential(k))
            .collect();
        v.sort();
        v
    };
    // The snapshot's templates, for the mock and for reading its journals: one selector means
    // the same endpoint in both.
    let templater = spec.mock.templater(exchanges).map_err(MeasureError::Spec)?;
    check_selectors(&parsed, exchanges, &templater)?;
    let ctx = Ctx {
        spec,
        parsed: &parsed,
        exchanges,
        templater: &templater,
        out_dir,
        echo,
        stripped: &stripped,
        proxy,
        cwd,
    };
    let runs = if spec.parallel {
        let mut runs = futures_util::future::join_all((1..=spec.runs).map(|n| one_run(&ctx, n)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        rerun_interfered(&ctx, &mut runs).await?;
        runs
    } else {
        let mut runs = Vec::new();
        for n in 1..=spec.runs {
            runs.push(one_run(&ctx, n).await?);
        }
        runs
    };
    Ok(MeasureResult::new(
        spec,
        runs,
        &parsed.checks.iter().map(|(m, c)| (m.to_string(), c.clone())).collect::<Vec<_>>(),
        stripped,
    ))
}

/// Runs started together share the machine and the working directory. When one of them failed
/// without making a single request while another ran the workload, they got in each other's
/// way (a build step rewriting the files another run is loading, a lock file, a fixed port):
/// that run is measured again, alone, after the others. Its first try's output is kept as
/// `run-N.together.*` and the reason goes into the result's notes. A run that fails the same
/// way alone stays failed; a run that made requests is never re-run, so the bug's own failures
/// (a job that exits 1 because half its calls were rejected) are measured as they are.
async fn rerun_interfered(ctx: &Ctx<'_>, runs: &mut [RunResult]) -> Result<(), MeasureError> {
    let Some(busy) = runs.iter().map(|r| r.requests).max().filter(|&m| m > 0) else {
        return Ok(());
    };
    for r in runs.iter_mut() {
        if r.requests > 0 || r.timed_out || r.exit_code == Some(0) {
            continue;
        }
        let n = r.run;
        let first = match r.exit_code {
            Some(c) => format!("exited {c}"),
            None => "was killed by a signal".to_owned(),
        };
        for ext in ["journal.jsonl", "stdout", "stderr"] {
            let from = ctx.out_dir.join(format!("run-{n}.{ext}"));
            let to = ctx.out_dir.join(format!("run-{n}.together.{ext}"));
            if from.exists() {
                tokio::fs::rename(&from, &to)
                    .await
                    .map_err(|source| MeasureError::Io { path: from.clone(), source })?;
            }
        }
        let mut again = one_run(ctx, n).await?;
        again.rerun_alone = Some(format!(
            "started together with the other runs it {first} without a request while another made {busy}: \
             measured again alone (the first try's output is in run-{n}.together.*)"
        ));
        *r = again;
    }
    Ok(())
}

/// What every run of one measurement shares.
struct Ctx<'a> {
    spec: &'a HarnessSpec,
    parsed: &'a Parsed,
    exchanges: &'a [Exchange],
    templater: &'a Templater,
    out_dir: &'a Path,
    echo: Echo,
    stripped: &'a [String],
    proxy: Option<&'a Proxy>,
    cwd: Option<&'a Path>,
}

async fn one_run(ctx: &Ctx<'_>, n: u32) -> Result<RunResult, MeasureError> {
    let Ctx { spec, parsed, exchanges, templater, out_dir, echo, stripped, proxy, cwd } = *ctx;
    let journal_path = out_dir.join(format!("run-{n}.journal.jsonl"));
    let journal = Journal::create(&journal_path)?;
    let mock = Mock::new(exchanges, spec.mock.clone(), Some(journal))
        .map_err(|e| MeasureError::Mock(e.to_string()))?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = af_mock::bind(loopback).map_err(|e| MeasureError::Mock(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| MeasureError::Mock(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = af_mock::ServeOptions { tls: None, intercept: proxy.map(|p| p.intercept.clone()) };
    let server = tokio::spawn(af_mock::serve_with(listener, Arc::clone(&mock), opts, async move {
        let _ = stop_rx.await;
    }));

    let base = format!("http://{addr}");
    let mut cmd = tokio::process::Command::new(&spec.command[0]);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.args(&spec.command[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    crate::child::in_own_group(&mut cmd);
    for k in stripped {
        cmd.env_remove(k);
    }
    for name in &spec.url_env {
        cmd.env(name, &base);
    }
    cmd.env("AF_MOCK_URL", &base);
    if let Some(p) = proxy {
        for k in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
            cmd.env(k, &base);
        }
        // Everything goes to the mock, loopback included.
        cmd.env("NO_PROXY", "").env("no_proxy", "");
        for (k, v) in &p.ca_env {
            cmd.env(k, v);
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|source| MeasureError::Spawn { program: spec.command[0].clone(), source })?;
    let pump = |stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
                file: PathBuf,
                label: &'static str| {
        tokio::spawn(async move {
            let Some(stream) = stream else { return };
            let Ok(mut f) = tokio::fs::File::create(&file).await else { return };
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = f.write_all(line.as_bytes()).await;
                let _ = f.write_all(b"\n").await;
                if echo == Echo::Prefixed {
                    eprintln!("[run {n} {label}] {line}");
                }
            }
            let _ = f.flush().await;
        })
    };
    let out = pump(
        child.stdout.take().map(|s| Box::new(s) as _),
        out_dir.join(format!("run-{n}.stdout")),
        "out",
    );
    let err = pump(
        child.stderr.take().map(|s| Box::new(s) as _),
        out_dir.join(format!("run-{n}.stderr")),
        "err",
    );
    let ended =
        crate::child::wait_or_kill(&mut child, Duration::from_millis(spec.timeout_ms)).await;
    let (status, timed_out) = (ended.status, ended.timed_out);
    let wall = started.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;
    let _ = stop_tx.send(());
    let _ = server.await;
    mock.finish_journal()?;

    let (journal, _) = read_all(&journal_path, ReadOptions::default())?;
    let values = metric_values(
        &journal,
        templater,
        &parsed.checks.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
    );
    let tag = |e: &Exchange, v: &str| e.tags.get("af.match").and_then(|t| t.as_str()) == Some(v);
    Ok(RunResult {
        run: n,
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        wall_ms: wall.as_secs_f64() * 1000.0,
        requests: journal.len() as u64,
        misses: journal.iter().filter(|e| tag(e, "miss")).count() as u64,
        limited: journal.iter().filter(|e| tag(e, "limited")).count() as u64,
        values,
        rerun_alone: None,
        journal: journal_path.display().to_string(),
    })
}

/// Refuses metrics whose endpoint selector matches no exchange of the snapshot: a typo, or
/// a template spelled differently from the snapshot's, would measure nothing and pass.
fn check_selectors(
    parsed: &Parsed,
    exchanges: &[Exchange],
    templater: &Templater,
) -> Result<(), MeasureError> {
    if parsed.checks.iter().all(|(m, _)| m.endpoint.is_none()) {
        return Ok(());
    }
    let mut b = CaptureBuilder::default();
    for e in exchanges {
        b.add(e, templater, &CallerSpec::Auto);
    }
    let cap = b.finish();
    for (m, _) in &parsed.checks {
        if m.endpoint.is_some() {
            m.check_selects(&cap)
                .map_err(|e| MeasureError::Spec(format!("--metric: {e} (in the snapshot)")))?;
        }
    }
    Ok(())
}

/// The metrics over a journal (or any exchanges) with the snapshot's templates; `None` for a
/// metric that selected no call (it was not measured).
pub fn metric_values(
    journal: &[Exchange],
    templater: &Templater,
    metrics: &[Metric],
) -> Vec<Option<f64>> {
    // The journal records each request's caller as the mock saw it.
    let callers = CallerSpec::Auto;
    let mut b = CaptureBuilder::default();
    for e in journal {
        b.add(e, templater, &callers);
    }
    let cap = b.finish();
    metrics.iter().map(|m| m.measure(&cap).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_recognised() {
        for k in [
            "GITHUB_TOKEN",
            "OPENAI_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "aws_session_token",
            "BASIC_AUTH",
        ] {
            assert!(is_credential(k), "{k}");
        }
        for k in ["PATH", "HOME", "NODE_OPTIONS", "AUTHOR", "API_URL"] {
            assert!(!is_credential(k), "{k}");
        }
    }
}
