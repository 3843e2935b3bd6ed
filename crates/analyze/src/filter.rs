//! Which exchanges a command looks at: endpoint pattern, status classes, time window.

use af_snapshot::{Exchange, Timestamp, endpoint_matches};

/// A status selector: one code, a class (`4xx`), or transport errors (`error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusSel {
    /// Exactly this status.
    Code(u16),
    /// A class: `4` for `4xx`.
    Class(u16),
    /// Exchanges that ended in a transport error (no status).
    Transport,
}

impl StatusSel {
    fn matches(&self, ex: &Exchange) -> bool {
        match (self, ex.status()) {
            (Self::Code(c), Some(s)) => *c == s,
            (Self::Class(c), Some(s)) => s / 100 == *c,
            (Self::Transport, None) => ex.error.is_some(),
            _ => false,
        }
    }
}

/// Parses `429`, `4xx`, `error`, or a comma list of them.
pub fn parse_status_list(s: &str) -> Result<Vec<StatusSel>, String> {
    s.split(',')
        .map(str::trim)
        .map(|p| {
            let lower = p.to_ascii_lowercase();
            if lower == "error" || lower == "transport" {
                return Ok(StatusSel::Transport);
            }
            if let Some(c) = lower.strip_suffix("xx")
                && let Ok(d) = c.parse::<u16>()
                && (1..=9).contains(&d)
            {
                return Ok(StatusSel::Class(d));
            }
            match p.parse::<u16>() {
                Ok(c) if (100..=999).contains(&c) => Ok(StatusSel::Code(c)),
                _ => Err(format!("status {p:?} is not a code (429), a class (4xx) or `error`")),
            }
        })
        .collect()
}

/// Selection applied before anything is counted.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Endpoint pattern (`GET /a/{id}`, `/a/*`), matched against the template.
    pub endpoint: Option<String>,
    /// Any of these statuses.
    pub status: Vec<StatusSel>,
    /// Requests starting at or after this instant.
    pub since: Option<Timestamp>,
    /// Requests starting before this instant.
    pub until: Option<Timestamp>,
}

impl Filter {
    /// True when nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.endpoint.is_none()
            && self.status.is_empty()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// Does `ex` pass the time and status filters? (The endpoint filter needs the endpoint's
    /// template, known only once the whole capture was read: [`Filter::keeps_endpoint`].)
    pub fn keeps_exchange(&self, ex: &Exchange) -> bool {
        let start = ex.timing.start;
        if self.since.is_some_and(|s| start < s) || self.until.is_some_and(|u| start >= u) {
            return false;
        }
        self.status.is_empty() || self.status.iter().any(|s| s.matches(ex))
    }

    /// Does the endpoint `method template` pass the endpoint filter?
    pub fn keeps_endpoint(&self, method: &str, template: &str) -> bool {
        self.endpoint.as_deref().is_none_or(|p| endpoint_matches(p, method, template))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists() {
        assert_eq!(
            parse_status_list("429, 5xx,error"),
            Ok(vec![StatusSel::Code(429), StatusSel::Class(5), StatusSel::Transport])
        );
        assert!(parse_status_list("42").is_err());
        assert!(parse_status_list("0xx").is_err());
        assert!(parse_status_list("").is_err());
    }
}
