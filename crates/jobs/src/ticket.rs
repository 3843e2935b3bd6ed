//! The text of a finding's issue and of the comments on it: the finding, its numbers, one
//! example request with its credentials redacted, and the commands that reproduce it.

use std::path::Path;

use af_ledger::FindingDetail;
use serde_json::Value;

/// Header and query names whose values never leave the process.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["authorization", "cookie", "set-cookie", "proxy-authorization"].contains(&n.as_str())
        || ["token", "secret", "key", "password", "passwd", "session", "signature", "auth"]
            .iter()
            .any(|w| n.contains(w))
}

fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_owned() };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if secret_name(k) => format!("{k}=REDACTED"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

fn ns_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map_or_else(|_| ns.to_string(), |t| t.to_string())
}

/// One request of the finding's endpoint (an erroring one when there is one) from its evidence.
pub(crate) fn example_request(d: &FindingDetail) -> Option<String> {
    let ev = d.evidence.as_ref()?;
    if ev.deleted.is_some() {
        return None;
    }
    let opts = af_snapshot::ReadOptions { lenient: true, ..Default::default() };
    let (xs, _) = af_snapshot::read_all(&ev.path, opts).ok()?;
    let f = &d.finding;
    let path_of = |u: &str| {
        let rest = u.split_once("://").map_or(u, |(_, r)| r);
        rest.find('/')
            .map_or("/".to_owned(), |i| rest[i..].split('?').next().unwrap_or("/").to_owned())
    };
    let same = |x: &&af_snapshot::Exchange| {
        x.request.method == f.method && template_matches(&f.template, &path_of(&x.request.url))
    };
    let pick = xs
        .iter()
        .filter(same)
        .find(|x| {
            x.response
                .as_ref()
                .is_some_and(|r| f.status.is_some_and(|s| r.status == s) || r.status >= 400)
        })
        .or_else(|| xs.iter().find(same))?;
    let mut s = format!("{} {}\n", pick.request.method, redact_url(&pick.request.url));
    for (k, v) in &pick.request.headers {
        let v = if secret_name(k) { "REDACTED" } else { v.as_str() };
        s.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(r) = &pick.response {
        s.push_str(&format!("\n→ {}\n", r.status));
    }
    Some(s)
}

/// `/users/{id}/messages/{id}` against a concrete path: same segment count, literals equal.
fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(a, b)| (a.starts_with('{') && a.ends_with('}')) || a == b)
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
    fn secrets_in_queries_and_names_are_redacted() {
        assert_eq!(
            redact_url("https://h/p?key=abc&q=1&access_token=x"),
            "https://h/p?key=REDACTED&q=1&access_token=REDACTED"
        );
        assert!(secret_name("X-Api-Key") && secret_name("Authorization") && !secret_name("Accept"));
        assert!(template_matches(
            "/gmail/v1/users/{id}/messages/{id}",
            "/gmail/v1/users/me/messages/18c"
        ));
        assert!(!template_matches("/a/{id}", "/a/b/c"));
    }
}
