//! Events to jobs: the policy's rules that match an event become runs.

use serde_json::{Value, json};

use crate::JobsError;
use crate::policy::Policy;
use crate::runs::{NewRun, Queue, RunRow};

/// Turns an event into the policy's jobs. The job's input carries the event and `extra`, so
/// the same event for the same finding is the same job (idempotent), and a new one is new.
#[allow(clippy::too_many_arguments)]
pub async fn emit(
    queue: &Queue,
    policy: &Policy,
    event: &str,
    fingerprint: &str,
    service: &str,
    severity: &str,
    extra: Value,
    cause_run: &str,
) -> Result<Vec<RunRow>, JobsError> {
    let mut out = Vec::new();
    for rule in policy.matching(event, service, severity) {
        for kind in &rule.run {
            let mut input = json!({"event": event, "severity": severity});
            if let (Value::Object(m), Value::Object(x)) = (&mut input, &extra) {
                m.extend(x.clone());
            }
            let cause = if cause_run.is_empty() {
                format!("rule {event} → {}", kind.as_str())
            } else {
                format!("rule {event} → {} (after run {cause_run})", kind.as_str())
            };
            let (row, _) = queue
                .enqueue(&NewRun {
                    kind: *kind,
                    fingerprint: fingerprint.to_owned(),
                    service: service.to_owned(),
                    input,
                    priority: rule.priority,
                    delay: rule.delay.unwrap_or_default(),
                    cause,
                })
                .await?;
            out.push(row);
        }
    }
    Ok(out)
}
