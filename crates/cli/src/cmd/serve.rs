//! `af serve`, and the verbs that read its ledger: `af findings`, `af suppress`, `af verify`.

use std::io::Write as _;
use std::path::Path;

use af_ledger::verify::{Outcome, Verification, verify};
use af_ledger::{CheckRow, Ledger, State};

use crate::args::{FindingsArgs, FindingsCommand, ServeArgs, SuppressArgs, VerifyArgs};
use crate::exit::{self, UsageError};

/// `af verify`'s exit code for "too little traffic to tell".
pub const INCONCLUSIVE: i32 = 4;

fn rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// `af serve`.
pub fn serve(a: &ServeArgs) -> anyhow::Result<i32> {
    let mut cfg = af_serve::Config::new(a.data_dir.clone());
    cfg.http = a.listen;
    cfg.grpc = a.grpc_listen;
    cfg.token = a.token.clone().filter(|t| !t.is_empty());
    cfg.window_ns = a.window;
    cfg.grace_ns = a.grace;
    cfg.buffer_bytes = a.buffer;
    cfg.max_body = a.max_body;
    cfg.max_record = a.max_record;
    cfg.analysis_pool = a.pool;
    cfg.retention =
        af_ledger::evidence::Retention { max_age_ns: a.retention, max_bytes: a.evidence_max_bytes };
    cfg.watch = a.watch.clone().map(|d| (d, a.watch_service.clone()));
    cfg.seed = a
        .seed
        .iter()
        .map(|s| match s.rsplit_once('=') {
            Some((f, svc)) if !svc.is_empty() && !Path::new(s).exists() => {
                (std::path::PathBuf::from(f), svc.to_owned())
            }
            _ => (std::path::PathBuf::from(s), "unknown".to_owned()),
        })
        .collect();
    cfg.ledger_url = super::jobs::shared_ledger(a.jobs.database.as_deref());
    rt()?.block_on(async {
        cfg.jobs = super::jobs::serve_jobs(&a.jobs, &a.data_dir, a.workers).await?;
        let jobs_line = match &cfg.jobs {
            Some(j) => format!(
                " · jobs on {}{}{}",
                j.queue.db().engine(),
                if a.workers > 0 { format!(", {} here", a.workers) } else { String::new() },
                if a.jobs.live || j.policy.jobs.live { ", live" } else { ", dry-run" }
            ),
            None => String::new(),
        };
        let running = af_serve::start(cfg).await.map_err(|e| match e {
            af_serve::ServeError::Config(m) => anyhow::Error::from(UsageError(m)),
            other => other.into(),
        })?;
        eprintln!(
            "af serve: OTLP/HTTP, API and page on http://{} · OTLP/gRPC on {} · data in {}{}{}",
            running.http,
            running.grpc,
            a.data_dir.display(),
            jobs_line,
            if running.replayed > 0 {
                format!(" · {} records replayed from the segment log", running.replayed)
            } else {
                String::new()
            }
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("af serve: closing open windows");
        running.flush().await;
        Ok::<_, anyhow::Error>(exit::OK)
    })
}

fn ledger(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    database: Option<&str>,
) -> anyhow::Result<Ledger> {
    if let Some(url) = super::jobs::shared_ledger(database) {
        return Ok(rt.block_on(Ledger::connect(Some(&url), dir))?);
    }
    if !dir.join("ledger.db").exists() {
        return Err(UsageError(format!(
            "{}: no ledger here (start `af serve --data-dir {}` first, or pass --data-dir)",
            dir.display(),
            dir.display()
        ))
        .into());
    }
    Ok(rt.block_on(Ledger::open(dir))?)
}

fn input(e: af_ledger::LedgerError) -> anyhow::Error {
    match e {
        af_ledger::LedgerError::NotFound(m) => UsageError(m).into(),
        other => other.into(),
    }
}

fn time(ns: i64) -> String {
    let s = af_snapshot::Timestamp::from_nanos(ns).to_rfc3339();
    s.get(..19).unwrap_or(&s).replace('T', " ")
}

/// `af findings ls|show`.
pub fn findings(a: &FindingsArgs) -> anyhow::Result<i32> {
    let rt = rt()?;
    let mut out = std::io::stdout().lock();
    match &a.command {
        FindingsCommand::Ls { state, service, json, data_dir, database } => {
            let l = ledger(&rt, data_dir, database.as_deref())?;
            let state =
                state.as_deref().map(str::parse::<State>).transpose().map_err(UsageError)?;
            let rows = rt.block_on(l.findings(state, service.as_deref()))?;
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                return Ok(exit::OK);
            }
            if rows.is_empty() {
                writeln!(out, "no findings")?;
            }
            for f in rows {
                writeln!(
                    out,
                    "{}  {:<10} {:<6} {:<26} {} {} {}  ({} window{}, last {})",
                    f.fingerprint,
                    f.state.as_str(),
                    f.severity,
                    f.kind,
                    f.service,
                    f.method,
                    f.template,
                    f.occurrences,
                    if f.occurrences == 1 { "" } else { "s" },
                    time(f.last_seen)
                )?;
            }
        }
        FindingsCommand::Show { fingerprint, json, data_dir, database } => {
            let l = ledger(&rt, data_dir, database.as_deref())?;
            let detail = rt.block_on(l.finding_detail(fingerprint)).map_err(input)?;
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&detail)?)?;
                return Ok(exit::OK);
            }
            let af_ledger::FindingDetail { finding: f, checks, evidence, .. } = detail;
            writeln!(
                out,
                "{}  {}  [{}] {} on {} {} {}",
                f.fingerprint,
                f.state.as_str(),
                f.severity,
                f.kind,
                f.service,
                f.method,
                f.template
            )?;
            writeln!(out, "  {}", f.summary)?;
            if let Some(m) = &f.metric {
                writeln!(out, "  metric: {m}")?;
            }
            writeln!(
                out,
                "  seen in {} window(s), {} → {}",
                f.occurrences,
                time(f.first_seen),
                time(f.last_seen)
            )?;
            if let Some(r) = &f.suppressed_reason {
                writeln!(
                    out,
                    "  suppressed by {}: {r}{}",
                    f.suppressed_owner.as_deref().unwrap_or("?"),
                    f.suppressed_until.map_or(String::new(), |u| format!(" until {}", time(u)))
                )?;
            }
            match evidence {
                Some(e) if e.deleted.is_none() => writeln!(
                    out,
                    "  evidence: {} ({} exchanges, {} bytes)\n  reproduce: af fix --finding {} --source .",
                    e.path.display(),
                    e.exchanges,
                    e.bytes,
                    f.fingerprint
                )?,
                Some(e) => writeln!(out, "  evidence {} was deleted by retention", e.digest)?,
                None => writeln!(out, "  no evidence stored")?,
            }
            for c in checks.iter().rev().take(10) {
                writeln!(
                    out,
                    "  {}  metric {}  {} calls, {} errors",
                    time(c.window_ns),
                    c.value.map_or("-".into(), |v| v.to_string()),
                    c.calls,
                    c.errors
                )?;
            }
        }
    }
    Ok(exit::OK)
}

/// `af suppress`.
pub fn suppress(a: &SuppressArgs) -> anyhow::Result<i32> {
    if a.reason.trim().is_empty() {
        return Err(UsageError("--reason must say why".into()).into());
    }
    let until = a
        .until
        .as_deref()
        .map(|u| {
            af_snapshot::Timestamp::parse(u)
                .map_err(|e| UsageError(format!("--until: not an RFC 3339 time: {e}")))
        })
        .transpose()?
        .map(af_snapshot::Timestamp::as_nanos);
    let rt = rt()?;
    let l = ledger(&rt, &a.data_dir, a.database.as_deref())?;
    let owner = a.owner.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_default();
    let f = rt.block_on(l.suppress(&a.fingerprint, &a.reason, &owner, until)).map_err(input)?;
    println!("{} suppressed by {owner}: {}", f.fingerprint, a.reason);
    Ok(exit::OK)
}

/// One snapshot as one window of `check`.
fn snapshot_row(
    path: &Path,
    check: &af_analyze::Check,
    window_ns: i64,
) -> anyhow::Result<CheckRow> {
    let (exchanges, _) = af_snapshot::read_all(path, af_snapshot::ReadOptions::default())?;
    let templater = af_snapshot::Templater::new(Vec::new()).learning_from(&exchanges);
    let cap =
        af_analyze::Capture::from_exchanges(&exchanges, &templater, &af_snapshot::CallerSpec::Auto);
    // A metric that selects nothing in a snapshot is a mistake in the command, not "no traffic".
    check.metric.check_selects(&cap).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    let status = check.metric.status.as_deref().and_then(|s| s.parse::<u16>().ok());
    Ok(af_ledger::verify::check_row(check, status, &cap, window_ns))
}

/// `af verify`.
pub fn verify_cmd(a: &VerifyArgs) -> anyhow::Result<i32> {
    let v: Verification = match (&a.fingerprint, &a.before, &a.after, &a.metric) {
        (None, Some(before), Some(after), Some(metric)) => {
            let check: af_analyze::Check =
                metric.parse().map_err(|e| UsageError(format!("--metric: {e}")))?;
            let rows = [snapshot_row(before, &check, 0)?, snapshot_row(after, &check, 1)?];
            verify(&format!("{} → {}", before.display(), after.display()), &check, &rows, 1)
        }
        (Some(fp), None, _, _) => {
            let rt = rt()?;
            let l = ledger(&rt, &a.data_dir, a.database.as_deref())?;
            rt.block_on(l.verify_finding(fp, a.since.as_deref())).map_err(input)?
        }
        _ => {
            return Err(
                UsageError("give a fingerprint, or --before, --after and --metric".into()).into()
            );
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}: {}", v.outcome.as_str(), v.reason);
        println!(
            "  before: {} calls in {} window(s), {} errors, metric {}",
            v.before.calls,
            v.before.windows,
            v.before.errors,
            v.before.value.map_or("not measured".into(), |x| x.to_string())
        );
        println!(
            "  after:  {} calls in {} window(s), {} errors, metric {} ({} calls needed)",
            v.after.calls,
            v.after.windows,
            v.after.errors,
            v.after.value.map_or("not measured".into(), |x| x.to_string()),
            v.required_calls
        );
        let statuses = |s: &std::collections::BTreeMap<String, i64>| {
            s.iter().map(|(k, n)| format!("{k}×{n}")).collect::<Vec<_>>().join(" ")
        };
        println!(
            "  statuses before: {}  after: {}",
            statuses(&v.before.statuses),
            statuses(&v.after.statuses)
        );
    }
    Ok(match v.outcome {
        Outcome::Verified => exit::OK,
        Outcome::Regressed => exit::CHECK_FAILED,
        Outcome::Inconclusive => INCONCLUSIVE,
    })
}

/// `--finding FP`: the evidence snapshot of a finding in the ledger (at `dir`, or the shared
/// one at `database`), and its summary.
pub fn finding_snapshot(
    dir: &Path,
    database: Option<&str>,
    fp: &str,
) -> anyhow::Result<(std::path::PathBuf, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let l = ledger(&rt, dir, database)?;
    let (f, e) = rt.block_on(l.finding_evidence(fp)).map_err(input)?;
    Ok((e.path, f.summary))
}
