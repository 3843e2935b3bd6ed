//! The text of a finding's issue and of the comments on it: the finding, its numbers, one
//! example request with its credentials redacted, and the commands that reproduce it.

use std::path::Path;

use af_ledger::FindingDetail;
use serde_json::Value;

fn ns_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map_or_else(|_| ns.to_string(), |t| t.to_string())
}

/// One request of the finding's endpoint (an erroring one when there is one) from its evidence,
/// templated as the window's analysis templated it (the same templater, learned from the same
/// exchanges). Redaction is the caller's: everything sent to a forge goes through
/// [`redact`](crate::ticket::redact).
pub(crate) fn example_request(d: &FindingDetail) -> Option<String> {
    let ev = d.evidence.as_ref()?;
    if ev.deleted.is_some() {
        return None;
    }
    let opts = af_snapshot::ReadOptions { lenient: true, ..Default::default() };
    let (xs, _) = af_snapshot::read_all(&ev.path, opts).ok()?;
    let templater = af_snapshot::Templater::new(Vec::new()).learning_from(&xs);
    let f = &d.finding;
    let same = |x: &&af_snapshot::Exchange| {
        let parts = x.url_parts();
        x.request.method == f.method
            && templater.template_on(parts.host(), parts.path) == f.template
    };
    let pick = xs
        .iter()
        .filter(same)
        .find(|x| {
            x.response.as_ref().is_some_and(|r| f.status.map_or(r.status >= 400, |s| r.status == s))
        })
        .or_else(|| xs.iter().find(same))?;
    let mut s = format!("{} {}\n", pick.request.method, pick.request.url);
    for (k, v) in &pick.request.headers {
        s.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(r) = &pick.response {
        s.push_str(&format!("\n→ {}\n", r.status));
    }
    Some(s)
}

/// A URL (a git remote, a database) without credentials (`https://user:token@host/…` → `https://***@host/…`).
pub fn redact_remote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_inclusive(char::is_whitespace) {
        match (word.find("://"), word.find('@')) {
            (Some(i), Some(at)) if at > i => {
                out.push_str(&word[..i + 3]);
                out.push_str("***");
                out.push_str(&word[at..]);
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// What leaves the process for a forge or a webhook, with credentials (authorization and
/// cookie headers, bearer tokens, API keys and tokens by shape and by name) and e-mail addresses
/// redacted: the same redaction as every model request (`af_agent::llm::Redactor`).
pub fn redact(text: &str) -> String {
    static R: std::sync::LazyLock<af_agent::llm::Redactor> =
        std::sync::LazyLock::new(af_agent::llm::Redactor::default);
    R.text(text)
}

/// The issue's body (the fingerprint marker is added by the sink).
pub fn issue_body(d: &FindingDetail, data_dir: &Path) -> String {
    let f = &d.finding;
    let mut b = format!(
        "**{}** on `{} {}` of service `{}` — severity {}, state {}.\n\n{}\n\n",
        f.kind,
        f.method,
        f.template,
        f.service,
        f.severity,
        f.state.as_str(),
        f.summary
    );
    b.push_str("| | |\n|---|---|\n");
    b.push_str(&format!("| fingerprint | `{}` |\n", f.fingerprint));
    b.push_str(&format!(
        "| first seen | {} |\n| last seen | {} |\n",
        ns_time(f.first_seen),
        ns_time(f.last_seen)
    ));
    b.push_str(&format!("| windows seen in | {} |\n", f.occurrences));
    if let Some(m) = &f.metric {
        b.push_str(&format!("| metric | `{m}` |\n"));
    }
    if let Some(c) = d.checks.iter().rev().find(|c| c.value.is_some()) {
        b.push_str(&format!(
            "| latest window | value {:.2}, {} calls, {} errors |\n",
            c.value.unwrap_or_default(),
            c.calls,
            c.errors
        ));
    }
    if let Some(e) = &d.evidence {
        b.push_str(&format!("| evidence | {} exchanges, `{}` |\n", e.exchanges, e.digest));
    }
    if let Some(req) = example_request(d) {
        b.push_str(&format!(
            "\nAn example request (credentials redacted):\n\n```http\n{}```\n",
            req
        ));
    }
    b.push_str(&format!(
        "\nReproduce and fix on the stored evidence:\n\n```sh\naf findings show {fp} --data-dir {dir}\naf fix --finding {fp} --data-dir {dir}\n```\n",
        fp = f.fingerprint,
        dir = data_dir.display()
    ));
    b
}

/// The comment an event adds (none for a first opening: the issue says it all).
pub fn comment_for(event: &str, input: &Value, d: &FindingDetail) -> Option<String> {
    let f = &d.finding;
    let reason = input.get("reason").and_then(Value::as_str).unwrap_or_default();
    Some(match event {
        "finding.opened" => return None,
        "finding.recurred" => format!(
            "Seen again: {} windows in all, last at {}.\n\n{}",
            f.occurrences,
            ns_time(f.last_seen),
            f.summary
        ),
        "finding.reopened" => format!(
            "Reopened: the signal came back after it was {}.\n\n{}",
            f.state.as_str(),
            f.summary
        ),
        "verify.verified" => format!("Verified after the deploy: {reason}. Closing."),
        "verify.regressed" => format!("Regressed after the deploy: {reason}. Reopening."),
        "verify.inconclusive" => format!("Not verified yet: {reason}."),
        "pr.opened" => format!(
            "Fix proposed: {}",
            input.get("url").and_then(Value::as_str).unwrap_or_default()
        ),
        other => format!("{other}."),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_lose_their_credentials() {
        assert_eq!(
            redact_remote("https://x-access-token:ghs_abc@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(
            redact_remote("fatal: unable to access 'https://u:p@h/r/': 403"),
            "fatal: unable to access 'https://***@h/r/': 403"
        );
        assert_eq!(redact_remote("/srv/bare.git"), "/srv/bare.git");
    }

    #[test]
    fn secrets_in_queries_and_headers_are_redacted() {
        let r = redact(
            "GET https://h/p?q=1&access_token=ya29.a0AfH6SMBx\nAuthorization: Bearer ghp_abcdefghijklmnopqrstuv\nAccept: application/json\n",
        );
        assert!(!r.contains("ya29.a0AfH6SMBx") && !r.contains("ghp_abcdefghijklmnopqrstuv"), "{r}");
        assert!(r.contains("q=1") && r.contains("Accept: application/json"), "{r}");
    }
}
