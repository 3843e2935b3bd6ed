//! A pull/merge request af opened was merged — told by the forge's webhook (`af serve`'s
//! `/api/hooks/…`) or found by polling (`[jobs] poll`). Either way the same thing happens, once:
//! a deploy marker (the merge sha) for the service, unless one with that sha exists, and the
//! `pr.merged` event for every finding the pull request fixes (one patch can fix two findings
//! of an incident). The event's input is the pull request and the sha, so a webhook and a poll
//! seeing the same merge queue one verify run.

use serde_json::json;

use crate::JobsError;
use crate::policy::Policy;
use crate::runs::{Queue, RunRow};

/// What a merge did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Merged {
    /// The findings it fixes.
    pub fingerprints: Vec<String>,
    /// The runs it queued (existing ones when already queued).
    pub runs: Vec<String>,
}

/// Handles the merge of `target` (`github:acme/radar!12`) at `sha`. `None`: af did not open it.
pub async fn on_merged(
    queue: &Queue,
    policy: &Policy,
    ledger: &af_ledger::Ledger,
    target: &str,
    number: u64,
    sha: Option<&str>,
) -> Result<Option<Merged>, JobsError> {
    let ours = queue.effects_on("pr", target).await?;
    if ours.is_empty() {
        return Ok(None);
    }
    let since = sha.map_or_else(|| jiff::Timestamp::now().to_string(), str::to_owned);
    let mut out = Merged::default();
    let mut marked = std::collections::BTreeSet::new();
    for e in &ours {
        let f = match ledger.finding(&e.fingerprint).await {
            Ok((f, _)) => f,
            Err(err) => return Err(JobsError::NotFound(err.to_string())),
        };
        if marked.insert(f.service.clone()) {
            let have =
                ledger.deploys(Some(&f.service)).await.map_err(|e| JobsError::Db(e.to_string()))?;
            if sha.is_none() || !have.iter().any(|d| d.sha.as_deref() == sha) {
                let now = jiff::Timestamp::now().as_nanosecond() as i64;
                ledger
                    .add_deploy(Some(&f.service), now, sha)
                    .await
                    .map_err(|e| JobsError::Db(e.to_string()))?;
            }
        }
        // Merged is fixed (verified comes from the traffic after the deploy).
        if matches!(
            f.state,
            af_ledger::State::Open | af_ledger::State::Reopened | af_ledger::State::Fixing
        ) {
            ledger
                .set_state(&f.fingerprint, af_ledger::State::Fixed)
                .await
                .map_err(|e| JobsError::Db(e.to_string()))?;
        }
        let runs: Vec<RunRow> = crate::events::emit(
            queue,
            policy,
            "pr.merged",
            &f.fingerprint,
            &f.service,
            &f.severity,
            json!({"pr": number, "since": since}),
            &e.run_id,
        )
        .await?;
        out.runs.extend(runs.into_iter().map(|r| r.id));
        out.fingerprints.push(f.fingerprint);
    }
    Ok(Some(out))
}

/// One poll: every open pull request af opened, asked of its forge; merged ones handled as a
/// webhook would be. Returns how many merges it found.
pub async fn poll_once(
    queue: &Queue,
    policy: &Policy,
    ledger: &af_ledger::Ledger,
    live: bool,
) -> Result<usize, JobsError> {
    if !live {
        return Ok(0); // dry-run opened nothing to poll
    }
    let effects = queue.effects(None).await?;
    let mut found = 0;
    let mut seen = std::collections::BTreeSet::new();
    for s in &policy.services {
        let Some(fc) = &s.forge else { continue };
        let prefix = format!("{}:{}!", fc.kind.as_str(), fc.project);
        let Ok(forge) = af_sinks::Forge::from_env(fc.kind, &fc.api, &fc.project, &fc.token_env)
        else {
            continue;
        };
        for e in effects.iter().filter(|e| e.kind == "pr" && e.target.starts_with(&prefix)) {
            // effect_key is `pr:<kind>:<project>:<branch>`.
            let Some(branch) =
                e.effect_key.strip_prefix(&format!("pr:{}:{}:", fc.kind.as_str(), fc.project))
            else {
                continue;
            };
            if !seen.insert(e.target.clone()) {
                continue;
            }
            match forge.find_pull(branch).await {
                Ok(Some(p)) if p.state == "merged" => {
                    if on_merged(queue, policy, ledger, &e.target, p.number, p.merge_sha.as_deref())
                        .await?
                        .is_some()
                    {
                        found += 1;
                    }
                }
                Ok(_) => {}
                Err(err) => eprintln!("af worker: polling {}: {err}", e.target),
            }
        }
    }
    Ok(found)
}
