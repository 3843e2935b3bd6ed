//! `af worker` and `af runs`, and the jobs side of `af serve` (`--config`, `--workers`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use af_jobs::{Kind, NewRun, Policy, Queue, WorkerOptions};

use crate::args::{JobsArgs, RunsArgs, RunsCommand, WorkerArgs};
use crate::exit::{self, UsageError};

fn rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The ledger's database: the jobs database when it is PostgreSQL (one database for every
/// replica and worker), else none (`ledger.db` in the data directory).
pub fn shared_ledger(database: Option<&str>) -> Option<String> {
    database.filter(|u| af_ledger::is_postgres(u)).map(str::to_owned)
}

/// The policy (`--config`), or an empty one (stub jobs only).
pub fn policy(a: &JobsArgs) -> anyhow::Result<Policy> {
    match &a.config {
        Some(p) => Ok(Policy::load(p).map_err(UsageError)?),
        None => Ok(Policy::default()),
    }
}

/// The queue on `--database` (or the data directory's jobs.db).
pub async fn queue(
    database: Option<&str>,
    data_dir: &Path,
    policy: &Policy,
) -> anyhow::Result<Queue> {
    let db = af_jobs::Db::open(database, data_dir).await?;
    let mut q = Queue::new(db);
    q.max_attempts = policy.jobs.max_attempts;
    Ok(q)
}

/// What `af serve --config` hands the server, and the in-process workers to start.
pub async fn serve_jobs(
    a: &JobsArgs,
    data_dir: &Path,
    workers: usize,
) -> anyhow::Result<Option<af_serve::Jobs>> {
    if a.config.is_none() {
        if workers > 0 {
            return Err(UsageError(
                "--workers needs --config af.toml (the policy the jobs follow)".into(),
            )
            .into());
        }
        return Ok(None);
    }
    let policy = Arc::new(policy(a)?);
    let q = queue(a.database.as_deref(), data_dir, &policy).await?;
    if workers > 0 {
        let ctx = af_jobs::Ctx::new(
            q.clone(),
            policy.clone(),
            WorkerOptions {
                name: af_jobs::worker::worker_name("serve"),
                concurrency: workers,
                data_dir: data_dir.to_owned(),
                af_exe: std::env::current_exe()?,
                live: a.live,
                ledger_url: shared_ledger(a.database.as_deref()),
            },
        );
        tokio::spawn(async move {
            if let Err(e) = af_jobs::worker::run(ctx, std::future::pending()).await {
                eprintln!("af serve: jobs worker stopped: {e}");
            }
        });
    }
    Ok(Some(af_serve::Jobs { queue: q, policy }))
}

/// `af worker`.
pub fn worker(a: &WorkerArgs) -> anyhow::Result<i32> {
    let policy = Arc::new(policy(&a.jobs)?);
    rt()?.block_on(async {
        let q = queue(a.jobs.database.as_deref(), &a.data_dir, &policy).await?;
        let name = a.name.clone().unwrap_or_else(|| af_jobs::worker::worker_name("worker"));
        let live = a.jobs.live || policy.jobs.live;
        eprintln!(
            "af worker {name}: {} at once on {} · lease {}s · {} · data in {}",
            a.concurrency.max(1),
            q.db().engine(),
            policy.jobs.lease.as_secs(),
            if live { "live" } else { "dry-run (nothing is pushed or posted)" },
            a.data_dir.display()
        );
        let ctx = af_jobs::Ctx::new(
            q,
            policy.clone(),
            WorkerOptions {
                name,
                concurrency: a.concurrency,
                data_dir: a.data_dir.clone(),
                af_exe: std::env::current_exe()?,
                live: a.jobs.live,
                ledger_url: shared_ledger(a.jobs.database.as_deref()),
            },
        );
        let shutdown = async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                std::future::pending::<()>().await;
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        af_jobs::worker::run(ctx, shutdown).await?;
        eprintln!("af worker: stopped");
        Ok(exit::OK)
    })
}

/// `af runs …`.
pub fn runs(a: &RunsArgs) -> anyhow::Result<i32> {
    rt()?.block_on(async {
        let q = queue(a.database.as_deref(), &a.data_dir, &Policy::default()).await?;
        match &a.command {
            RunsCommand::Ls { status, finding, limit } => {
                if let Some(s) = status
                    && !af_jobs::runs::STATES.contains(&s.as_str())
                {
                    return Err(UsageError(format!(
                        "--status {s:?}: expected one of {}",
                        af_jobs::runs::STATES.join(", ")
                    ))
                    .into());
                }
                let rows = q.list(status.as_deref(), finding.as_deref(), *limit).await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print!("{}", table(&rows));
                    let counts = q.counts().await?;
                    println!(
                        "{}",
                        counts
                            .iter()
                            .map(|(s, n)| format!("{n} {s}"))
                            .collect::<Vec<_>>()
                            .join(" · ")
                    );
                }
                Ok(exit::OK)
            }
            RunsCommand::Show { run } => {
                let r = q.show(run).await.map_err(not_found)?;
                let effects: Vec<_> = q
                    .effects(Some(&r.fingerprint))
                    .await?
                    .into_iter()
                    .filter(|e| e.run_id == r.id)
                    .collect();
                if a.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"run": r, "effects": effects})
                        )?
                    );
                } else {
                    print!("{}", show(&r, &effects));
                }
                Ok(exit::OK)
            }
            RunsCommand::Cancel { run } => {
                let r = q.show(run).await.map_err(not_found)?;
                if q.cancel(&r.id).await? {
                    println!("cancelled {} ({} {})", r.id, r.kind, r.fingerprint);
                    Ok(exit::OK)
                } else {
                    println!("{} had already finished ({}); nothing to cancel", r.id, r.status);
                    Ok(exit::CHECK_FAILED)
                }
            }
            RunsCommand::Requeue { run } => {
                let r = q.requeue(run).await.map_err(|e| match e {
                    af_jobs::JobsError::NotFound(m) | af_jobs::JobsError::Conflict(m) => {
                        anyhow::Error::from(UsageError(m))
                    }
                    other => other.into(),
                })?;
                println!(
                    "requeued {} ({} {}): delivery {}",
                    r.id, r.kind, r.fingerprint, r.deliveries
                );
                Ok(exit::OK)
            }
            RunsCommand::Enqueue {
                kind,
                finding,
                service,
                input,
                priority,
                delay,
                max_attempts,
                count,
            } => {
                let Some(kind) = Kind::parse(kind) else {
                    return Err(UsageError(format!(
                        "--kind {kind:?}: expected plan, fix, verify, ticket, pr or stub"
                    ))
                    .into());
                };
                let input: serde_json::Value = serde_json::from_str(input)
                    .map_err(|e| UsageError(format!("--input: not JSON: {e}")))?;
                let mut q = q;
                q.max_attempts = (*max_attempts).max(1);
                let mut made = 0;
                let mut ids = Vec::new();
                for i in 0..*count {
                    let mut input = input.clone();
                    if *count > 1
                        && let serde_json::Value::Object(m) = &mut input
                    {
                        m.insert("n".into(), i.into());
                    }
                    let (r, new) = q
                        .enqueue(&NewRun {
                            kind,
                            fingerprint: finding.clone(),
                            service: service.clone(),
                            input,
                            priority: *priority,
                            delay: Duration::from_nanos(delay.unwrap_or(0).max(0) as u64),
                            cause: "af runs enqueue".into(),
                        })
                        .await?;
                    made += usize::from(new);
                    ids.push(r.id);
                }
                if a.json {
                    println!("{}", serde_json::json!({"queued": made, "runs": ids}));
                } else {
                    println!("{made} queued, {} already there", ids.len() - made);
                }
                Ok(exit::OK)
            }
        }
    })
}

fn not_found(e: af_jobs::JobsError) -> anyhow::Error {
    match e {
        af_jobs::JobsError::NotFound(m) => UsageError(m).into(),
        other => other.into(),
    }
}

fn ms_time(ms: Option<i64>) -> String {
    ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
        .map_or_else(|| "-".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

fn table(rows: &[af_jobs::RunRow]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(["run", "kind", "state", "tries", "finding", "service", "created", "why"]);
    for r in rows {
        t.add_row([
            r.id.clone(),
            r.kind.clone(),
            r.status.clone(),
            format!("{}/{}", r.attempts, r.max_attempts),
            r.fingerprint.chars().take(15).collect(),
            r.service.clone(),
            ms_time(Some(r.created_ms)),
            r.cause.clone(),
        ]);
    }
    format!("{t}\n")
}

fn show(r: &af_jobs::RunRow, effects: &[af_jobs::runs::EffectRow]) -> String {
    let mut s = format!(
        "run {} · {} {} ({})\nstate: {} · attempt {} of {} · {} deliveries · worker {}\ncause: {}\ncreated {} · started {} · finished {}\n",
        r.id,
        r.kind,
        r.fingerprint,
        r.service,
        r.status,
        r.attempts,
        r.max_attempts,
        r.deliveries,
        r.worker.as_deref().unwrap_or("-"),
        r.cause,
        ms_time(Some(r.created_ms)),
        ms_time(r.started_ms),
        ms_time(r.finished_ms),
    );
    s.push_str(&format!(
        "spent: wall {} · tokens {} · dollars {}\n",
        r.wall_ms.map_or("-".into(), |w| format!("{:.1}s", w as f64 / 1000.0)),
        r.tokens.map_or("-".into(), |t| t.to_string()),
        r.dollars_micros.map_or("-".into(), |d| format!("${:.4}", d as f64 / 1e6)),
    ));
    if let Some(d) = &r.run_dir {
        s.push_str(&format!("run directory: {d}\n"));
    }
    s.push_str(&format!("input: {}\n", r.input));
    if let Some(o) = &r.outcome {
        s.push_str(&format!("outcome: {o}\n"));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("error: {e}\n"));
    }
    for e in effects {
        s.push_str(&format!("made: {} {} {}\n", e.kind, e.target, e.url));
    }
    s
}
