//! What each kind of job does. Fix and plan runs execute `af fix`/`af plan --finding` as a
//! child process (killed with its process group past the wall-time budget or on cancel);
//! tickets, pull requests and verification call the sinks and the ledger in-process.
//!
//! Every external effect is found before it is made: first in `af_effects`, then at the
//! provider (the issue's hidden marker, the pull request's branch, the comment's marker). A
//! delivery repeated after a crash therefore finds what the first one made.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use af_sinks::{Effect, Forge, Webhook};
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::outcome::{Done, Failure, Spent};
use crate::policy::ServiceConfig;
use crate::runs::{EffectRow, Kind, RunRow, now_ms};
use crate::ticket::redact_remote;

type Res = Result<Done, Failure>;

pub(crate) async fn run(ctx: Arc<Ctx>, r: RunRow) -> Res {
    match r.kind() {
        Some(Kind::Stub) => stub(&ctx, &r).await,
        Some(Kind::Fix) => agent(&ctx, &r, "fix").await,
        Some(Kind::Plan) => agent(&ctx, &r, "plan").await,
        Some(Kind::Pr) => pr(&ctx, &r).await,
        Some(Kind::Ticket) => ticket(&ctx, &r).await,
        Some(Kind::Verify) => verify(&ctx, &r).await,
        None => Err(Failure::permanent(format!("unknown job kind {:?}", r.kind))),
    }
}

fn done(status: &'static str, outcome: Value) -> Done {
    Done { status, outcome, run_dir: None, spent: Spent::default(), events: Vec::new() }
}

fn service<'a>(ctx: &'a Ctx, r: &RunRow) -> Result<&'a ServiceConfig, Failure> {
    ctx.policy.service(&r.service).ok_or_else(|| {
        Failure::permanent(format!(
            "no [[service]] named {:?} in the policy file; add one with its repo",
            r.service
        ))
    })
}

/// Where a service's tickets and pull requests go: the forge when live, else the run's
/// outbox (the requests as they would be sent, without the token).
enum Out {
    Live(Box<Forge>),
    Dry(PathBuf),
    None,
}

fn out(ctx: &Ctx, s: &ServiceConfig, r: &RunRow) -> Result<Out, Failure> {
    let Some(f) = &s.forge else { return Ok(Out::None) };
    if ctx.live() {
        Ok(Out::Live(Box::new(
            Forge::from_env(f.kind, &f.api, &f.project, &f.token_env)
                .map_err(|e| Failure::permanent(e.to_string()))?,
        )))
    } else {
        Ok(Out::Dry(run_dir(ctx, r).join("outbox")))
    }
}

fn run_dir(ctx: &Ctx, r: &RunRow) -> PathBuf {
    ctx.opts.data_dir.join("runs").join(&r.id)
}

fn target(s: &ServiceConfig) -> String {
    s.forge.as_ref().map_or_else(String::new, |f| format!("{}:{}", f.kind.as_str(), f.project))
}

/// Writes what would have been sent (dry-run).
fn outbox(dir: &Path, what: &str, v: &Value) -> Result<String, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::permanent(format!("{}: {e}", dir.display())))?;
    let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let p = dir.join(format!("{:03}-{what}.json", n + 1));
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap_or_default())
        .map_err(|e| Failure::permanent(format!("{}: {e}", p.display())))?;
    Ok(p.display().to_string())
}

async fn record(
    ctx: &Ctx,
    r: &RunRow,
    key: String,
    kind: &str,
    target: String,
    url: &str,
) -> Result<(), Failure> {
    ctx.queue
        .record_effect(&EffectRow {
            effect_key: key,
            run_id: r.id.clone(),
            kind: kind.to_owned(),
            fingerprint: r.fingerprint.clone(),
            target,
            url: url.to_owned(),
            created_ms: now_ms(),
        })
        .await?;
    Ok(())
}

/// A test and benchmark job: sleeps `ms`, then comments once on issue `comment` of the
/// service's forge (when given).
async fn stub(ctx: &Ctx, r: &RunRow) -> Res {
    let input = r.input();
    let ms = input.get("ms").and_then(Value::as_u64).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    if input.get("fail_first").and_then(Value::as_i64).is_some_and(|n| r.attempts <= n) {
        return Err(Failure::transient(
            format!("stub: failing attempt {} on purpose", r.attempts),
            Duration::ZERO,
        ));
    }
    let mut outcome = json!({"slept_ms": ms});
    if let Some(issue) = input.get("comment").and_then(Value::as_u64) {
        let s = service(ctx, r)?;
        let key = format!("comment:{}", r.idem_key);
        if ctx.queue.effect(&key).await?.is_none() {
            match out(ctx, s, r)? {
                Out::Live(f) => {
                    let e =
                        f.comment_once(issue, &r.idem_key, &format!("stub run {}", r.id)).await?;
                    record(ctx, r, key, "comment", format!("{}#{issue}", target(s)), "").await?;
                    outcome["comment"] = json!(e);
                }
                Out::Dry(dir) => {
                    outcome["would"] = json!(outbox(
                        &dir,
                        "comment",
                        &json!({"issue": issue, "body": format!("stub run {}", r.id)})
                    )?);
                }
                Out::None => {}
            }
        } else {
            outcome["comment"] = json!("found");
        }
    }
    Ok(done("succeeded", outcome))
}

/// A finding's evidence snapshot and a file in the run directory holding its summary.
async fn evidence_of(
    ctx: &Ctx,
    r: &RunRow,
    dir: &std::path::Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf), Failure> {
    let (f, e) = ctx
        .ledger()
        .await?
        .finding_evidence(&r.fingerprint)
        .await
        .map_err(|e| Failure::permanent(format!("finding {}: {e}", r.fingerprint)))?;
    let issue = dir.join("issue.md");
    std::fs::write(&issue, &f.summary)
        .map_err(|e| Failure::permanent(format!("{}: {e}", issue.display())))?;
    Ok((e.path, issue))
}

/// `af fix` (or `af plan`) on the finding's evidence, in the service's repository.
async fn agent(ctx: &Ctx, r: &RunRow, verb: &str) -> Res {
    let s = service(ctx, r)?;
    let repo = ensure_repo(ctx, s).await?;
    // The ledger shows the finding being worked on.
    if verb == "fix" {
        set_state(
            ctx,
            &r.fingerprint,
            &[af_ledger::State::Open, af_ledger::State::Reopened],
            af_ledger::State::Fixing,
        )
        .await?;
    }
    let dir = run_dir(ctx, r);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::permanent(format!("{}: {e}", dir.display())))?;
    let mut cmd = tokio::process::Command::new(&ctx.opts.af_exe);
    cmd.arg(verb).args(["--quiet", "--json", "--source"]).arg(&repo);
    // The finding's evidence, as this machine has it (a shared ledger writes a file another
    // machine stored from the database), and its summary as the issue text.
    let (snapshot, issue) = evidence_of(ctx, r, &dir).await?;
    cmd.arg("--snapshot").arg(&snapshot).arg("--issue").arg(&issue);
    cmd.arg("--runs-dir").arg(dir.join("runs"));
    cmd.args(["--engine", &s.engine]);
    if let Some(run) = &s.run {
        cmd.args(["--run", run]);
    }
    if let Some(t) = ctx.policy.jobs.tokens {
        cmd.args(["--max-tokens", &t.to_string()]);
    }
    cmd.args(["--max-wall", &format!("{}s", ctx.policy.jobs.wall.as_secs().max(1))]);
    let stderr = std::fs::File::create(dir.join(format!("{verb}.stderr")))
        .map_err(|e| Failure::permanent(format!("{}: {e}", dir.display())))?;
    // The harness runs the service's own program: it gets no forge token or webhook secret
    // (an LLM engine's key stays; the engine needs it).
    for v in secret_vars(&ctx.policy) {
        cmd.env_remove(v);
    }
    cmd.current_dir(&repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    cmd.process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| Failure::permanent(format!("{}: {e}", ctx.opts.af_exe.display())))?;
    let pid = child.id();
    // Dropped (cancel, budget): the whole process group goes, harness and program included.
    let _group = KillGroup(pid);
    let o = child
        .wait_with_output()
        .await
        .map_err(|e| Failure::transient(format!("af {verb}: {e}"), Duration::ZERO))?;
    let code = o.status.code();
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    std::fs::write(dir.join(format!("{verb}.json")), &o.stdout).ok();
    let tail = || {
        let e = std::fs::read_to_string(dir.join(format!("{verb}.stderr"))).unwrap_or_default();
        e.lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ")
    };
    match code {
        Some(0 | 1) if !doc.is_null() => {}
        Some(2) => {
            return Err(Failure::permanent(format!("af {verb} refused its arguments: {}", tail())));
        }
        _ => {
            return Err(Failure::transient(
                format!("af {verb} exited {code:?}: {}", tail()),
                Duration::ZERO,
            ));
        }
    }
    let tokens = doc
        .pointer("/usage/input_tokens")
        .and_then(Value::as_i64)
        .zip(doc.pointer("/usage/output_tokens").and_then(Value::as_i64))
        .map(|(a, b)| a + b);
    let dollars = doc.pointer("/usage/cost_usd").and_then(Value::as_f64).map(|d| (d * 1e6) as i64);
    let spent = Spent { wall_ms: None, tokens, dollars_micros: dollars };
    if verb == "plan" {
        let proceed = doc.get("decision").and_then(Value::as_str) == Some("proceed");
        let mut d = done(
            if proceed { "succeeded" } else { "failed" },
            json!({"decision": doc.get("decision"), "run_dir": doc.get("run_dir")}),
        );
        d.run_dir = Some(dir.display().to_string());
        d.spent = spent;
        return Ok(d);
    }
    let confirmed = doc.get("confirmed").and_then(Value::as_bool) == Some(true);
    let plan_dir =
        doc.pointer("/plan/run_dir").and_then(Value::as_str).unwrap_or_default().to_owned();
    let outcome = json!({
        "confirmed": confirmed,
        "verdict": doc.get("verdict"),
        "branch": doc.get("branch"),
        "commit": doc.get("commit"),
        "base_commit": doc.get("base_commit"),
        "worktree": doc.get("worktree"),
        "report": if plan_dir.is_empty() { Value::Null } else { json!(Path::new(&plan_dir).join("report.md")) },
        "plan_run_dir": plan_dir,
    });
    if !confirmed {
        set_state(ctx, &r.fingerprint, &[af_ledger::State::Fixing], af_ledger::State::Open).await?;
    }
    let mut d = done(if confirmed { "succeeded" } else { "failed" }, outcome.clone());
    d.run_dir = Some(dir.display().to_string());
    d.spent = spent;
    let next = json!({
        "branch": outcome["branch"], "commit": outcome["commit"], "worktree": outcome["worktree"],
        "base_commit": outcome["base_commit"], "report": outcome["report"], "fix_run": r.id,
    });
    d.events.push((if confirmed { "fix.confirmed" } else { "fix.unconfirmed" }, next));
    Ok(d)
}

/// The variables the policy reads secrets from.
fn secret_vars(p: &crate::policy::Policy) -> Vec<&str> {
    let mut v = Vec::new();
    for s in &p.services {
        if let Some(f) = &s.forge {
            v.push(f.token_env.as_str());
            v.extend(f.webhook_secret_env.as_deref());
        }
        if let Some(w) = &s.webhook {
            v.push(w.secret_env.as_str());
        }
    }
    v
}

/// Moves a finding to `to` when it is in one of `from` (a finding the traffic reopened meanwhile
/// is left as it is).
async fn set_state(
    ctx: &Ctx,
    fp: &str,
    from: &[af_ledger::State],
    to: af_ledger::State,
) -> Result<(), Failure> {
    let ledger = ctx.ledger().await?;
    match ledger.finding(fp).await {
        Ok((f, _)) if from.contains(&f.state) => ledger
            .set_state(&f.fingerprint, to)
            .await
            .map_err(|e| Failure::transient(e.to_string(), Duration::from_secs(1))),
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::permanent(e.to_string())),
    }
}

struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The service's repository, cloned under the data directory when it is a URL.
async fn ensure_repo(ctx: &Ctx, s: &ServiceConfig) -> Result<PathBuf, Failure> {
    let clones = ctx.opts.data_dir.join("clones");
    let path = ctx.policy.repo_path(s, &clones);
    if s.repo.contains("://") || s.repo.starts_with("git@") {
        if path.join(".git").exists() {
            git(&path, &["fetch", "-q", "origin", &s.branch]).await?;
        } else {
            std::fs::create_dir_all(&clones)
                .map_err(|e| Failure::permanent(format!("{}: {e}", clones.display())))?;
            let st = tokio::process::Command::new("git")
                .args(["clone", "-q", "--branch", &s.branch, &s.repo])
                .arg(&path)
                .status()
                .await
                .map_err(|e| Failure::permanent(format!("git: {e}")))?;
            if !st.success() {
                return Err(Failure::transient(
                    format!("git clone {} failed", redact_remote(&s.repo)),
                    Duration::ZERO,
                ));
            }
        }
    } else if !path.is_dir() {
        return Err(Failure::permanent(format!(
            "service {:?}: repo {} is not a directory",
            s.name,
            path.display()
        )));
    }
    Ok(path)
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, Failure> {
    let o = tokio::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Failure::permanent(format!("git: {e}")))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        let shown: Vec<String> = args.iter().map(|a| redact_remote(a)).collect();
        Err(Failure::transient(
            format!("git {}: {}", shown.join(" "), redact_remote(err.trim())),
            Duration::ZERO,
        ))
    }
}

/// Pushes the fix branch and opens the pull/merge request with the report as its body.
async fn pr(ctx: &Ctx, r: &RunRow) -> Res {
    let s = service(ctx, r)?;
    let input = r.input();
    let field = |k: &str| input.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (branch, commit, worktree, report) =
        (field("branch"), field("commit"), field("worktree"), field("report"));
    if branch.is_empty() || commit.is_empty() {
        return Err(Failure::permanent(
            "pr: the fix run left no branch and commit (was it confirmed?)",
        ));
    }
    let body = std::fs::read_to_string(&report)
        .map_err(|e| Failure::permanent(format!("pr: the report {report}: {e}")))?;
    let body =
        format!("{}\n\n{}\n", crate::ticket::redact(&body), af_sinks::issue_marker(&r.fingerprint));
    let title = pr_title(&body, &r.fingerprint);
    let mut outcome = json!({"branch": branch, "commit": commit});
    match out(ctx, s, r)? {
        Out::None => Err(Failure::permanent(format!(
            "service {:?} has no forge to open a pull request on",
            s.name
        ))),
        Out::Dry(dir) => {
            outcome["would_push"] =
                json!(format!("{commit} → {}:{branch}", redact_remote(&s.remote)));
            outcome["would"] = json!(outbox(
                &dir,
                "pull-request",
                &json!({"head": branch, "base": s.branch, "title": title, "body": body})
            )?);
            let mut d = done("succeeded", outcome);
            d.run_dir = Some(run_dir(ctx, r).display().to_string());
            Ok(d)
        }
        Out::Live(forge) => {
            // One pull request per change: a second finding fixed by the same patch (two
            // findings of one incident) links to the first's pull request instead of opening
            // its own.
            let patch_key = format!(
                "pr-patch:{}:{}",
                target(s),
                patch_digest(&input, &worktree, &commit).await
            );
            if let Some(first) = ctx.queue.effect(&patch_key).await? {
                let pr_key = format!("pr:{}:{branch}", target(s));
                record(ctx, r, pr_key, "pr", first.target.clone(), &first.url).await?;
                // Merged already (this finding's fix came after the merge)? Then it is handled
                // as the merge was: a webhook or poll that came earlier did not know of it.
                let first_branch = ctx
                    .queue
                    .effects_on("pr", &first.target)
                    .await?
                    .into_iter()
                    .find(|e| e.run_id == first.run_id)
                    .and_then(|e| e.effect_key.rsplit_once(':').map(|(_, b)| b.to_owned()));
                if let Some(b) = first_branch
                    && let Some(p) = forge.find_pull(&b).await?
                    && p.state == "merged"
                {
                    let ledger = ctx.ledger().await?;
                    crate::merged::on_merged(
                        &ctx.queue,
                        &ctx.policy,
                        ledger,
                        &first.target,
                        p.number,
                        p.merge_sha.as_deref(),
                    )
                    .await?;
                }
                let number: u64 = first
                    .target
                    .rsplit('!')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_default();
                outcome["pull"] = json!({"number": number, "url": first.url, "state": "open"});
                outcome["effect"] = json!("found");
                outcome["same_patch_as"] = json!(first.run_id);
                let mut d = done("succeeded", outcome);
                d.events.push((
                    "pr.opened",
                    json!({"pr": number, "url": first.url, "branch": branch, "commit": commit}),
                ));
                return Ok(d);
            }
            if !ctx
                .queue
                .lease_effect(&patch_key, &r.id, ctx.policy.jobs.lease.as_millis() as i64)
                .await?
            {
                return Err(Failure::transient(
                    "another run is opening the pull request for this patch",
                    Duration::from_secs(2),
                ));
            }
            let push_key = format!("push:{}:{branch}:{commit}", redact_remote(&s.remote));
            if ctx.queue.effect(&push_key).await?.is_none() {
                let dir = if worktree.is_empty() {
                    ctx.policy.repo_path(s, &ctx.opts.data_dir.join("clones"))
                } else {
                    PathBuf::from(&worktree)
                };
                git(&dir, &["push", "-q", &s.remote, &format!("{commit}:refs/heads/{branch}")])
                    .await?;
                record(ctx, r, push_key, "push", redact_remote(&s.remote), "").await?;
            }
            let pr_key = format!("pr:{}:{branch}", target(s));
            let (p, effect) = forge.open_pull(&branch, &s.branch, &title, &body).await?;
            let pr_target = format!("{}!{}", target(s), p.number);
            record(ctx, r, pr_key, "pr", pr_target.clone(), &p.url).await?;
            record(ctx, r, patch_key.clone(), "pr-patch", pr_target, &p.url).await?;
            ctx.queue.release_effect(&patch_key, &r.id).await?;
            outcome["pull"] = json!(p);
            outcome["effect"] = json!(effect);
            let mut d = done("succeeded", outcome);
            d.events.push((
                "pr.opened",
                json!({"pr": p.number, "url": p.url, "branch": branch, "commit": commit}),
            ));
            Ok(d)
        }
    }
}

/// The change a pr run proposes, as a digest: the fix's diff against its base (`git diff
/// BASE COMMIT` in the worktree), else the commit.
async fn patch_digest(input: &Value, worktree: &str, commit: &str) -> String {
    use sha2::Digest as _;
    let base = input.get("base_commit").and_then(Value::as_str).unwrap_or_default();
    let diff = if base.is_empty() || worktree.is_empty() {
        None
    } else {
        git(Path::new(worktree), &["diff", base, commit]).await.ok()
    };
    let d = sha2::Sha256::digest(diff.unwrap_or_else(|| commit.to_owned()).as_bytes());
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn pr_title(report: &str, fp: &str) -> String {
    let first =
        report.lines().find(|l| l.starts_with("# ")).map(|l| l.trim_start_matches("# ").trim());
    match first {
        Some(t) if !t.is_empty() => format!("af: {t}"),
        _ => format!("af: fix for {fp}"),
    }
}

/// The finding's issue, per the event: opened → create or update; recurred → a comment;
/// verified → comment and close; regressed → comment and reopen. The service's webhook (if
/// any) gets the event too, with the run id as its delivery id.
async fn ticket(ctx: &Ctx, r: &RunRow) -> Res {
    let s = service(ctx, r)?;
    let input = r.input();
    let event = input.get("event").and_then(Value::as_str).unwrap_or("finding.opened").to_owned();
    let ledger = ctx.ledger().await?;
    let detail = ledger
        .finding_detail(&r.fingerprint)
        .await
        .map_err(|e| Failure::permanent(e.to_string()))?;
    let title = format!(
        "[af] {} on {} {} ({})",
        detail.finding.kind, detail.finding.method, detail.finding.template, detail.finding.service
    );
    let title = crate::ticket::redact(&title);
    let body = crate::ticket::redact(&crate::ticket::issue_body(&detail, &ctx.opts.data_dir));
    let mut outcome = json!({"event": event});
    if let Some(w) = &s.webhook {
        let hook = Webhook::from_env(&w.url, &w.secret_env)
            .map_err(|e| Failure::permanent(e.to_string()))?;
        let ev = json!({"event": event, "fingerprint": r.fingerprint, "service": r.service, "title": title, "input": input});
        let ev: Value = serde_json::from_str(&crate::ticket::redact(&ev.to_string())).unwrap_or(ev);
        if ctx.live() {
            hook.send(&r.id, &ev).await?;
            outcome["webhook"] = json!("sent");
        } else {
            outcome["webhook_would"] =
                json!(outbox(&run_dir(ctx, r).join("outbox"), "webhook", &ev)?);
        }
    }
    let note =
        crate::ticket::comment_for(&event, &input, &detail).map(|n| crate::ticket::redact(&n));
    match out(ctx, s, r)? {
        Out::None => {}
        Out::Dry(dir) => {
            outcome["would"] = json!(outbox(
                &dir,
                "issue",
                &json!({"title": title, "body": body, "comment": note})
            )?);
        }
        Out::Live(forge) => {
            let issue_key = format!("issue:{}:{}", target(s), r.fingerprint);
            let (issue, effect) = match forge.find_issue(&r.fingerprint).await? {
                Some(i) if !event.starts_with("finding.") => (i, Effect::Found),
                _ => forge.upsert_issue(&r.fingerprint, &title, &body).await?,
            };
            let issue_target = format!("{}#{}", target(s), issue.number);
            record(ctx, r, issue_key, "issue", issue_target.clone(), &issue.url).await?;
            outcome["issue"] = json!(issue);
            outcome["issue_effect"] = json!(effect);
            if let Some(note) = &note {
                let c = forge.comment_once(issue.number, &r.idem_key, note).await?;
                let key = format!("comment:{}", r.idem_key);
                record(ctx, r, key, "comment", issue_target, &issue.url).await?;
                outcome["comment"] = json!(c);
            }
            let want_open = match event.as_str() {
                "verify.verified" => Some(false),
                "verify.regressed" | "finding.reopened" => Some(true),
                _ => None,
            };
            if let Some(open) = want_open
                && issue.open != open
            {
                outcome["state"] = json!(forge.set_issue_open(issue.number, open).await?);
            }
            outcome["open"] = json!(want_open.unwrap_or(issue.open));
        }
    }
    Ok(done("succeeded", outcome))
}

/// `af verify` after the deploy: verified and regressed are outcomes; too little traffic yet is
/// retried (with back-off) until the attempts run out, then reported as inconclusive.
async fn verify(ctx: &Ctx, r: &RunRow) -> Res {
    let input = r.input();
    let since = input
        .get("since")
        .or_else(|| input.get("merge_sha"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ledger = ctx.ledger().await?;
    let v = ledger
        .verify_finding(&r.fingerprint, since.as_deref())
        .await
        .map_err(|e| Failure::permanent(e.to_string()))?;
    let outcome = serde_json::to_value(&v).unwrap_or(Value::Null);
    let extra = json!({"since": since, "verify_run": r.id, "outcome": v.outcome.as_str(), "reason": v.reason});
    let d = match v.outcome {
        af_ledger::verify::Outcome::Verified => {
            let mut d = done("succeeded", outcome);
            d.events.push(("verify.verified", extra));
            d
        }
        af_ledger::verify::Outcome::Regressed => {
            let mut d = done("failed", outcome);
            d.events.push(("verify.regressed", extra));
            d
        }
        af_ledger::verify::Outcome::Inconclusive if r.attempts < r.max_attempts => {
            return Err(Failure::transient(format!("inconclusive: {}", v.reason), Duration::ZERO));
        }
        af_ledger::verify::Outcome::Inconclusive => {
            let mut d = done("failed", outcome);
            d.events.push(("verify.inconclusive", extra));
            d
        }
    };
    Ok(d)
}
