//! Where `af serve` meets the jobs: a finding's transition becomes a policy event; a forge's
//! "merged" webhook becomes a deploy marker and a `pr.merged` event; `/api/runs` shows and
//! steers the runs.
//!
//! Webhooks do not carry af's bearer token (GitHub and GitLab cannot send one); they are
//! authenticated by their own scheme instead — GitHub's `X-Hub-Signature-256` HMAC over the body,
//! GitLab's `X-Gitlab-Token` secret — with the secret of the service whose project they name.

#![allow(clippy::result_large_err)]

use std::sync::Arc;

use af_ledger::{FindingRow, Transition};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use crate::reply::error;
use crate::{Jobs, Shared};

/// Turns a ledger transition into the policy's jobs. A failure is logged, never fatal to the
/// window's analysis (the finding is in the ledger either way, and `af runs` can be used).
pub async fn on_transition(j: &Jobs, t: Transition, f: &FindingRow) {
    let (event, extra) = match t {
        Transition::Opened => ("finding.opened", json!({"since_ns": f.state_since})),
        Transition::Reopened => ("finding.reopened", json!({"since_ns": f.state_since})),
        Transition::Recurred => ("finding.recurred", json!({"occurrences": f.occurrences})),
        Transition::Suppressed => return,
    };
    if let Err(e) = af_jobs::emit(
        &j.queue,
        &j.policy,
        event,
        &f.fingerprint,
        &f.service,
        &f.severity,
        extra,
        "",
    )
    .await
    {
        log!("af serve: {event} {}: could not enqueue its jobs: {e}", f.fingerprint);
    }
}

fn jobs(shared: &Shared) -> Result<&Jobs, Response> {
    shared.cfg.jobs.as_ref().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "jobs are not configured: start af serve with --config af.toml",
        )
    })
}

/// A merged pull/merge request, read from either provider's payload.
struct Merged {
    kind: af_sinks::ForgeKind,
    project: String,
    number: u64,
    sha: Option<String>,
}

fn github_merged(headers: &HeaderMap, v: &Value) -> Option<Merged> {
    let event = headers.get("x-github-event").and_then(|h| h.to_str().ok())?;
    let pr = v.get("pull_request")?;
    (event == "pull_request"
        && v.get("action").and_then(Value::as_str) == Some("closed")
        && pr.get("merged").and_then(Value::as_bool) == Some(true))
    .then(|| Merged {
        kind: af_sinks::ForgeKind::Github,
        project: v
            .pointer("/repository/full_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        number: pr.get("number").and_then(Value::as_u64).unwrap_or_default(),
        sha: pr.get("merge_commit_sha").and_then(Value::as_str).map(str::to_owned),
    })
}

fn gitlab_merged(headers: &HeaderMap, v: &Value) -> Option<Merged> {
    let event = headers.get("x-gitlab-event").and_then(|h| h.to_str().ok())?;
    let a = v.get("object_attributes")?;
    (event == "Merge Request Hook"
        && (a.get("action").and_then(Value::as_str) == Some("merge")
            || a.get("state").and_then(Value::as_str) == Some("merged")))
    .then(|| Merged {
        kind: af_sinks::ForgeKind::Gitlab,
        project: v
            .pointer("/project/path_with_namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        number: a.get("iid").and_then(Value::as_u64).unwrap_or_default(),
        sha: a.get("merge_commit_sha").and_then(Value::as_str).map(str::to_owned),
    })
}

/// `POST /api/hooks/github` and `/api/hooks/gitlab`.
pub async fn forge_hook(
    State(shared): State<Arc<Shared>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match forge_hook_inner(&shared, &provider, &headers, &body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn forge_hook_inner(
    shared: &Shared,
    provider: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let j = jobs(shared)?;
    let kind = match provider {
        "github" => af_sinks::ForgeKind::Github,
        "gitlab" => af_sinks::ForgeKind::Gitlab,
        _ => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "webhooks: /api/hooks/github or /api/hooks/gitlab",
            ));
        }
    };
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("webhook body: not JSON: {e}")))?;
    let project = match kind {
        af_sinks::ForgeKind::Github => v.pointer("/repository/full_name"),
        af_sinks::ForgeKind::Gitlab => v.pointer("/project/path_with_namespace"),
    }
    .and_then(Value::as_str)
    .unwrap_or_default();
    // The service whose forge is this project, and its secret.
    let Some((service, forge)) = j.policy.services.iter().find_map(|s| {
        s.forge.as_ref().filter(|f| f.kind == kind && f.project == project).map(|f| (s, f))
    }) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no [[service]] has {provider} project {project:?}"),
        ));
    };
    let Some(secret) = forge.webhook_secret_env.as_deref().and_then(|e| std::env::var(e).ok())
    else {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!(
                "service {:?}: no webhook secret (set forge.webhook_secret_env and that variable)",
                service.name
            ),
        ));
    };
    let header = |n: &str| headers.get(n).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let ok = match kind {
        af_sinks::ForgeKind::Github => {
            af_sinks::verify_signature(secret.as_bytes(), body, header("x-hub-signature-256"))
        }
        af_sinks::ForgeKind::Gitlab => {
            bool::from(header("x-gitlab-token").as_bytes().ct_eq(secret.as_bytes()))
        }
    };
    if !ok {
        shared.metrics.refuse_request("webhook_signature");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "webhook: the signature does not match the secret",
        ));
    }
    let merged = match kind {
        af_sinks::ForgeKind::Github => github_merged(headers, &v),
        af_sinks::ForgeKind::Gitlab => gitlab_merged(headers, &v),
    };
    let Some(m) = merged else {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"ignored": "not a merged pull/merge request"})),
        )
            .into_response());
    };
    // Ours? The pull request af opened is an effect of a pr run.
    let target = format!("{}:{}!{}", m.kind.as_str(), m.project, m.number);
    let Some(done) = af_jobs::merged::on_merged(
        &j.queue,
        &j.policy,
        &shared.ledger,
        &target,
        m.number,
        m.sha.as_deref(),
    )
    .await
    .map_err(|e| match e {
        af_jobs::JobsError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        other => error(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    })?
    else {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"ignored": format!("{target} was not opened by af")})),
        )
            .into_response());
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"merged": target, "fingerprints": done.fingerprints, "runs": done.runs})),
    )
        .into_response())
}

/// `GET /api/runs` filters.
#[derive(Deserialize)]
pub struct RunsQuery {
    status: Option<String>,
    fingerprint: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/runs`.
pub async fn runs(State(shared): State<Arc<Shared>>, Query(q): Query<RunsQuery>) -> Response {
    let j = match jobs(&shared) {
        Ok(j) => j,
        Err(r) => return r,
    };
    match j
        .queue
        .list(q.status.as_deref(), q.fingerprint.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await
    {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /api/runs`: a job by hand (the same kind, finding and input twice is one run).
#[derive(Deserialize)]
pub struct NewRunBody {
    kind: String,
    fingerprint: String,
    service: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    delay_ms: u64,
}

/// `POST /api/runs`.
pub async fn enqueue(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let j = match jobs(&shared) {
        Ok(j) => j,
        Err(r) => return r,
    };
    let b: NewRunBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body: {e} (want kind, fingerprint, service, input)"),
            );
        }
    };
    let Some(kind) = af_jobs::Kind::parse(&b.kind) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("kind {:?}: expected plan, fix, verify, ticket, pr or stub", b.kind),
        );
    };
    if b.fingerprint.is_empty() || b.service.is_empty() {
        return error(StatusCode::BAD_REQUEST, "fingerprint and service must not be empty");
    }
    let input = if b.input.is_null() { json!({}) } else { b.input };
    let r = j
        .queue
        .enqueue(&af_jobs::NewRun {
            kind,
            fingerprint: b.fingerprint,
            service: b.service,
            input,
            priority: b.priority,
            delay: std::time::Duration::from_millis(b.delay_ms),
            cause: "POST /api/runs".into(),
        })
        .await;
    match r {
        Ok((run, created)) => (
            if created { StatusCode::CREATED } else { StatusCode::OK },
            Json(json!({"run": run, "created": created})),
        )
            .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/runs/{id}`: the run and its effects.
pub async fn run(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let j = match jobs(&shared) {
        Ok(j) => j,
        Err(r) => return r,
    };
    match j.queue.show(&id).await {
        Ok(r) => {
            let effects: Vec<_> = j
                .queue
                .effects(Some(&r.fingerprint))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e.run_id == r.id)
                .collect();
            Json(json!({"run": r, "effects": effects})).into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

/// `POST /api/runs/{id}/cancel` and `/requeue`.
pub async fn steer(
    State(shared): State<Arc<Shared>>,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    let j = match jobs(&shared) {
        Ok(j) => j,
        Err(r) => return r,
    };
    let r = match verb.as_str() {
        "cancel" => j.queue.cancel(&id).await.map(|c| json!({"cancelled": c})),
        "requeue" => j.queue.requeue(&id).await.map(|r| json!({"run": r})),
        _ => return error(StatusCode::NOT_FOUND, "POST /api/runs/{id}/cancel or /requeue"),
    };
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e @ af_jobs::JobsError::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ af_jobs::JobsError::Conflict(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(k: &'static str, v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(k, v.parse().unwrap());
        h
    }

    #[test]
    fn merges_are_read_from_both_providers_payloads_and_nothing_else_is() {
        let gh = json!({"action": "closed", "pull_request": {"number": 7, "merged": true, "merge_commit_sha": "abc"},
            "repository": {"full_name": "acme/radar"}});
        let m = github_merged(&headers("x-github-event", "pull_request"), &gh).unwrap();
        assert_eq!(
            (m.project.as_str(), m.number, m.sha.as_deref()),
            ("acme/radar", 7, Some("abc"))
        );
        // Closed without merging, another event, or the wrong header: not a merge.
        let closed = json!({"action": "closed", "pull_request": {"number": 7, "merged": false}, "repository": {"full_name": "acme/radar"}});
        assert!(github_merged(&headers("x-github-event", "pull_request"), &closed).is_none());
        assert!(github_merged(&headers("x-github-event", "issues"), &gh).is_none());
        assert!(github_merged(&HeaderMap::new(), &gh).is_none());
        let gl = json!({"object_kind": "merge_request", "project": {"path_with_namespace": "g/radar"},
            "object_attributes": {"iid": 3, "action": "merge", "state": "merged", "merge_commit_sha": "def"}});
        let m = gitlab_merged(&headers("x-gitlab-event", "Merge Request Hook"), &gl).unwrap();
        assert_eq!((m.project.as_str(), m.number, m.sha.as_deref()), ("g/radar", 3, Some("def")));
        let opened = json!({"object_attributes": {"iid": 3, "action": "open", "state": "opened"}});
        assert!(gitlab_merged(&headers("x-gitlab-event", "Merge Request Hook"), &opened).is_none());
        assert!(gitlab_merged(&headers("x-gitlab-event", "Push Hook"), &gl).is_none());
    }
}
