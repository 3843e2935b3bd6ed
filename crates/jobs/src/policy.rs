//! The policy file (`--config af.toml` of `af serve` and `af worker`): which service lives in
//! which repository, where its tickets and pull requests go, the rules that turn an event into
//! jobs, limits and budgets. Dry-run is the default: jobs run, nothing is pushed or posted
//! until `live = true` (or `--live`).
//!
//! ```toml
//! [jobs]
//! live = false              # dry-run: tickets and pull requests are written to the run
//!                           # directory as the requests they would be, not sent
//! lease = "30s"             # a worker's heartbeat renews it every lease/3
//! max_attempts = 5
//! backoff = "5s"            # doubles each retry, capped at 10 min; a provider's retry-after wins
//! per_repo = 1              # fix/plan/pr runs at once per repository, across all workers
//! per_provider = { builtin = 2, anthropic = 1 }
//! wall = "20m"              # per-run budgets, recorded with the outcome
//! tokens = 200000
//! dollars = 5.0
//! poll = "2m"               # ask the forge whether af's pull requests were merged (no webhook)
//!
//! [[service]]
//! name = "radar"
//! repo = "/srv/radar"       # or a clone URL
//! branch = "main"
//! run = "node src/cli.js sync"
//! test = "node --test"
//! engine = "builtin"
//! remote = "origin"         # a remote name or URL the fix branch is pushed to
//! forge = { kind = "github", api = "https://api.github.com", project = "acme/radar", token_env = "GITHUB_TOKEN" }
//! webhook = { url = "https://hooks.example/af", secret_env = "AF_WEBHOOK_SECRET" }
//!
//! [[rule]]
//! on = "finding.opened"     # finding.opened|finding.reopened|finding.recurred|fix.confirmed|
//!                           # pr.merged|verify.verified|verify.regressed|verify.inconclusive
//! min_severity = "high"
//! do = ["ticket", "fix"]
//! [[rule]]
//! on = "pr.merged"
//! do = ["verify"]
//! delay = "10m"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::runs::Kind;

/// The parsed file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `[jobs]`.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// `[[service]]`.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// `[[rule]]`.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// Where the file is (relative repository paths are read from there).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// `[jobs]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Push and post for real.
    #[serde(default)]
    pub live: bool,
    /// Lease (visibility time-out).
    #[serde(default = "d_lease", with = "dur")]
    pub lease: Duration,
    /// Attempts per run.
    #[serde(default = "d_attempts")]
    pub max_attempts: i64,
    /// First back-off.
    #[serde(default = "d_backoff", with = "dur")]
    pub backoff: Duration,
    /// fix/plan/pr runs at once per repository, across every worker on the database.
    #[serde(default = "d_one")]
    pub per_repo: usize,
    /// fix/plan runs at once per engine provider (`builtin`, `openai`, `anthropic`), across
    /// every worker on the database.
    #[serde(default)]
    pub per_provider: std::collections::BTreeMap<String, usize>,
    /// Wall-time budget per run.
    #[serde(default = "d_wall", with = "dur")]
    pub wall: Duration,
    /// Token budget per run (LLM engines).
    #[serde(default)]
    pub tokens: Option<i64>,
    /// Dollar budget per run.
    #[serde(default)]
    pub dollars: Option<f64>,
    /// Ask the forges this often whether af's open pull requests were merged (for forges that
    /// cannot reach af's webhook); off by default.
    #[serde(default, with = "dur_opt")]
    pub poll: Option<Duration>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            live: false,
            lease: d_lease(),
            max_attempts: d_attempts(),
            backoff: d_backoff(),
            per_repo: 1,
            per_provider: Default::default(),
            wall: d_wall(),
            tokens: None,
            dollars: None,
            poll: None,
        }
    }
}

fn d_lease() -> Duration {
    Duration::from_secs(30)
}
fn d_attempts() -> i64 {
    5
}
fn d_backoff() -> Duration {
    Duration::from_secs(5)
}
fn d_one() -> usize {
    1
}
fn d_wall() -> Duration {
    Duration::from_secs(20 * 60)
}

/// `[[service]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service name traffic arrives under.
    pub name: String,
    /// A local path (relative to the file) or a clone URL.
    pub repo: String,
    /// The branch fixes start from and pull requests target.
    #[serde(default = "d_branch")]
    pub branch: String,
    /// The harness's program (else the repository's own af.toml).
    pub run: Option<String>,
    /// The tests (else the repository's own af.toml).
    pub test: Option<String>,
    /// `builtin`, `openai:MODEL`, `anthropic:MODEL`.
    #[serde(default = "d_engine")]
    pub engine: String,
    /// Where the fix branch is pushed: a remote name or URL.
    #[serde(default = "d_remote")]
    pub remote: String,
    /// Tickets and pull requests.
    pub forge: Option<ForgeConfig>,
    /// Events as signed JSON.
    pub webhook: Option<WebhookConfig>,
}

fn d_branch() -> String {
    "main".into()
}
fn d_engine() -> String {
    "builtin".into()
}
fn d_remote() -> String {
    "origin".into()
}

/// `forge = {…}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConfig {
    /// `github` or `gitlab`.
    pub kind: af_sinks::ForgeKind,
    /// REST base URL.
    pub api: String,
    /// `owner/name` or the GitLab project path.
    pub project: String,
    /// The variable holding the token.
    pub token_env: String,
    /// Webhook secret variable (GitHub: HMAC key of `X-Hub-Signature-256`; GitLab: the
    /// `X-Gitlab-Token` value).
    pub webhook_secret_env: Option<String>,
}

/// `webhook = {…}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where.
    pub url: String,
    /// The variable holding the HMAC secret.
    pub secret_env: String,
}

/// `[[rule]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The event.
    pub on: String,
    /// Only findings at least this severe (`low`, `medium`, `high`).
    pub min_severity: Option<String>,
    /// Only these services.
    #[serde(default)]
    pub services: Vec<String>,
    /// Jobs to enqueue.
    #[serde(rename = "do")]
    pub run: Vec<Kind>,
    /// Not before this delay.
    #[serde(default, with = "dur_opt")]
    pub delay: Option<Duration>,
    /// Priority of the jobs (higher first).
    #[serde(default)]
    pub priority: i64,
}

/// The events rules can name.
pub const EVENTS: &[&str] = &[
    "finding.opened",
    "finding.reopened",
    "finding.recurred",
    "fix.confirmed",
    "fix.unconfirmed",
    "pr.opened",
    "pr.merged",
    "verify.verified",
    "verify.regressed",
    "verify.inconclusive",
];

/// A severity's rank (`info` 0 … `high` 3); unknown is 0.
pub fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "low" => 1,
        "medium" => 2,
        "high" => 3,
        _ => 0,
    }
}

impl Policy {
    /// Reads and checks the file; errors name the file, the line and the field.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut p: Policy = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            match line {
                Some(l) => format!("{}:{l}: {}", path.display(), e.message()),
                None => format!("{}: {}", path.display(), e.message()),
            }
        })?;
        p.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (i, r) in p.rules.iter().enumerate() {
            if !EVENTS.contains(&r.on.as_str()) {
                return Err(format!(
                    "{}: rule {} (on = {:?}): unknown event; expected one of {}",
                    path.display(),
                    i + 1,
                    r.on,
                    EVENTS.join(", ")
                ));
            }
            if let Some(s) = &r.min_severity
                && severity_rank(s) == 0
            {
                return Err(format!(
                    "{}: rule {}: min_severity {s:?}: expected low, medium or high",
                    path.display(),
                    i + 1
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &p.services {
            if !seen.insert(s.name.as_str()) {
                return Err(format!("{}: service {:?} appears twice", path.display(), s.name));
            }
        }
        if p.jobs.max_attempts < 1 {
            return Err(format!("{}: [jobs] max_attempts must be at least 1", path.display()));
        }
        Ok(p)
    }

    /// The service's configuration.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The rules that fire on `event` for a finding of `service` and `severity`.
    pub fn matching<'a>(
        &'a self,
        event: &'a str,
        service: &'a str,
        severity: &'a str,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| {
            r.on == event
                && (r.services.is_empty() || r.services.iter().any(|s| s == service))
                && r.min_severity
                    .as_deref()
                    .is_none_or(|m| severity_rank(severity) >= severity_rank(m))
        })
    }

    /// A service's repository as a path: relative paths are read from the file's directory;
    /// a clone URL is cloned under `clones` (once) and fetched before each run.
    pub fn repo_path(&self, s: &ServiceConfig, clones: &Path) -> PathBuf {
        if s.repo.contains("://") || s.repo.starts_with("git@") {
            clones.join(&s.name)
        } else {
            let p = Path::new(&s.repo);
            if p.is_absolute() { p.to_owned() } else { self.dir.join(p) }
        }
    }
}

mod dur {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

mod dur_opt {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// `500ms`, `30s`, `10m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (500ms, 30s, 10m, 2h)"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unit {unit:?}: expected ms, s, m or h")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Policy, String> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("af.toml");
        std::fs::write(&p, text).unwrap();
        Policy::load(&p)
    }

    #[test]
    fn rules_match_on_event_severity_and_service() {
        let p = load(
            "[[service]]\nname = \"radar\"\nrepo = \"../radar\"\n\n[[rule]]\non = \"finding.opened\"\nmin_severity = \"high\"\ndo = [\"ticket\", \"fix\"]\n\n[[rule]]\non = \"pr.merged\"\ndo = [\"verify\"]\ndelay = \"2s\"\n",
        )
        .unwrap();
        assert!(!p.jobs.live, "dry-run is the default");
        assert_eq!(p.matching("finding.opened", "radar", "high").count(), 1);
        assert_eq!(p.matching("finding.opened", "radar", "medium").count(), 0);
        let r: Vec<_> = p.matching("pr.merged", "x", "").collect();
        assert_eq!(r[0].delay, Some(Duration::from_secs(2)));
        assert_eq!(r[0].run, vec![Kind::Verify]);
        let s = p.service("radar").unwrap();
        assert_eq!(p.repo_path(s, Path::new("/c")), p.dir.join("../radar"));
    }

    #[test]
    fn bad_files_name_the_line_and_field() {
        let e = load("[jobs]\nlive = true\nbogus = 1\n").unwrap_err();
        assert!(e.contains("af.toml:3") && e.contains("bogus"), "{e}");
        let e = load("[[rule]]\non = \"finding.seen\"\ndo = [\"fix\"]\n").unwrap_err();
        assert!(e.contains("unknown event"), "{e}");
        let e = load("[[rule]]\non = \"fix.confirmed\"\ndo = [\"deploy\"]\n").unwrap_err();
        assert!(e.contains("af.toml:3") || e.contains("deploy"), "{e}");
        let e = load("[jobs]\nlease = \"5 parsecs\"\n").unwrap_err();
        assert!(e.contains("lease") || e.contains("parsecs"), "{e}");
    }
}
