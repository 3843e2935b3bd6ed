//! GitHub and GitLab through their REST APIs: one issue per fingerprint, found again by a hidden
//! marker in its body; one pull/merge request per fix branch, found again by its head branch;
//! comments found again by a marker of their own. Every create is preceded by that lookup, so a
//! job delivered twice (a worker killed after the provider answered) finds what the first
//! delivery made instead of making a second.

use http::Method;
use serde_json::{Value, json};

use crate::http::{HttpClient, SinkError, classify};

/// Which provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// `https://api.github.com`, `/repos/{owner}/{repo}/…`, `Authorization: Bearer`.
    Github,
    /// `https://gitlab.com/api/v4`, `/projects/{url-encoded path}/…`, `PRIVATE-TOKEN`.
    Gitlab,
}

impl ForgeKind {
    /// `github` or `gitlab`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }
}

/// An issue.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssueRef {
    /// GitHub `number`, GitLab `iid`.
    pub number: u64,
    /// The page.
    pub url: String,
    /// Open or not.
    pub open: bool,
}

/// A pull or merge request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PullRef {
    /// GitHub `number`, GitLab `iid`.
    pub number: u64,
    /// The page.
    pub url: String,
    /// `open`, `closed`, `merged`.
    pub state: String,
    /// The merge commit, once merged.
    #[serde(default)]
    pub merge_sha: Option<String>,
}

/// What a call did: made something, or found what an earlier delivery made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Created now.
    Created,
    /// Already there (found by its marker or branch); nothing new was made.
    Found,
    /// Updated in place.
    Updated,
}

/// The label every af issue carries, so the lookup lists only af's issues.
pub const LABEL: &str = "af-finding";

/// The hidden marker of a fingerprint's issue.
pub fn issue_marker(fingerprint: &str) -> String {
    format!("<!-- af:fingerprint {fingerprint} -->")
}

/// The hidden marker of one comment (by its idempotency key).
pub fn comment_marker(key: &str) -> String {
    format!("<!-- af:comment {key} -->")
}

/// One repository or project on one provider.
#[derive(Clone, Debug)]
pub struct Forge {
    kind: ForgeKind,
    api: String,
    project: String,
    token: String,
    token_env: String,
    http: HttpClient,
}

impl Forge {
    /// `api` is the REST base (`https://api.github.com`, `https://gitlab.com/api/v4`);
    /// `project` is `owner/name` (GitLab: the full path or the numeric id); the token is read
    /// from the variable `token_env` now and kept only in memory.
    pub fn from_env(
        kind: ForgeKind,
        api: &str,
        project: &str,
        token_env: &str,
    ) -> Result<Self, SinkError> {
        let token = std::env::var(token_env).map_err(|_| {
            SinkError::Config(format!(
                "{}: the token variable ${token_env} is not set",
                kind.as_str()
            ))
        })?;
        Self::new(kind, api, project, token, token_env)
    }

    /// As [`from_env`](Self::from_env) with the token given.
    pub fn new(
        kind: ForgeKind,
        api: &str,
        project: &str,
        token: String,
        token_env: &str,
    ) -> Result<Self, SinkError> {
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(SinkError::Config(format!(
                "{}: api {api:?} is not an http(s) URL",
                kind.as_str()
            )));
        }
        if project.is_empty() || (kind == ForgeKind::Github && project.split('/').count() != 2) {
            return Err(SinkError::Config(format!(
                "{}: project {project:?}: expected owner/name",
                kind.as_str()
            )));
        }
        Ok(Self {
            kind,
            api: api.trim_end_matches('/').to_owned(),
            project: project.to_owned(),
            token,
            token_env: token_env.to_owned(),
            http: HttpClient::shared()?,
        })
    }

    /// Provider.
    pub fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// Where an issue's text is: GitHub `body`, GitLab `description`.
    fn body_key(&self) -> &'static str {
        match self.kind {
            ForgeKind::Github => "body",
            ForgeKind::Gitlab => "description",
        }
    }

    fn base(&self) -> String {
        match self.kind {
            ForgeKind::Github => format!("{}/repos/{}", self.api, self.project),
            ForgeKind::Gitlab => format!("{}/projects/{}", self.api, encode(&self.project)),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<crate::http::Answer, SinkError> {
        let url = format!("{}{path}", self.base());
        let mut headers = vec![
            ("user-agent", "agent-factory".to_owned()),
            ("accept", "application/json".to_owned()),
        ];
        match self.kind {
            ForgeKind::Github => {
                headers.push(("authorization", format!("Bearer {}", self.token)));
                headers.push(("accept", "application/vnd.github+json".to_owned()));
                headers.push(("x-github-api-version", "2022-11-28".to_owned()));
            }
            ForgeKind::Gitlab => headers.push(("private-token", self.token.clone())),
        }
        if body.is_some() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        let what = format!("{method} {}", crate::http::path_of(&url));
        let a = self
            .http
            .send(
                self.kind.as_str(),
                method,
                &url,
                &headers,
                body.map(|b| b.to_string().into_bytes()),
            )
            .await?;
        if a.status.is_success() {
            Ok(a)
        } else {
            Err(classify(self.kind.as_str(), what, &a, &self.token_env, now_epoch()))
        }
    }

    /// Every page of a list (GitHub `Link: rel="next"`, GitLab `x-next-page`), up to 50.
    async fn list(&self, path: &str) -> Result<Vec<Value>, SinkError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let a = self
                .call(Method::GET, &format!("{path}{sep}per_page=100&page={page}"), None)
                .await?;
            let Value::Array(items) = a.json() else {
                return Err(SinkError::Invalid {
                    provider: self.kind.as_str(),
                    what: format!("GET {path}"),
                    status: a.status.as_u16(),
                    message: "expected a JSON array".into(),
                });
            };
            let got = items.len();
            out.extend(items);
            let next = match self.kind {
                ForgeKind::Github => a
                    .headers
                    .get("link")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|l| l.contains("rel=\"next\"")),
                ForgeKind::Gitlab => a
                    .headers
                    .get("x-next-page")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| !v.trim().is_empty()),
            };
            if !next || got == 0 || page >= 50 {
                return Ok(out);
            }
            page += 1;
        }
    }

    fn issue_of(&self, v: &Value) -> Option<IssueRef> {
        let (num, url) = match self.kind {
            ForgeKind::Github => ("number", "html_url"),
            ForgeKind::Gitlab => ("iid", "web_url"),
        };
        Some(IssueRef {
            number: v.get(num)?.as_u64()?,
            url: v.get(url).and_then(Value::as_str).unwrap_or_default().to_owned(),
            open: matches!(v.get("state").and_then(Value::as_str), Some("open" | "opened")),
        })
    }

    /// The fingerprint's issue, found by its marker among af-labelled issues.
    pub async fn find_issue(&self, fingerprint: &str) -> Result<Option<IssueRef>, SinkError> {
        let marker = issue_marker(fingerprint);
        let path = format!("/issues?state=all&labels={LABEL}");
        let body_key = self.body_key();
        Ok(self
            .list(&path)
            .await?
            .iter()
            // GitHub lists pull requests among issues; they carry `pull_request`.
            .filter(|v| v.get("pull_request").is_none())
            .filter(|v| {
                v.get(body_key).and_then(Value::as_str).is_some_and(|b| b.contains(&marker))
            })
            .find_map(|v| self.issue_of(v)))
    }

    /// Creates the fingerprint's issue, or updates the one an earlier run made (title and body;
    /// its open/closed state is left to [`set_issue_open`](Self::set_issue_open)).
    pub async fn upsert_issue(
        &self,
        fingerprint: &str,
        title: &str,
        body: &str,
    ) -> Result<(IssueRef, Effect), SinkError> {
        let body = format!("{body}\n\n{}\n", issue_marker(fingerprint));
        let body_key = self.body_key();
        let number_path = "/issues";
        if let Some(found) = self.find_issue(fingerprint).await? {
            let m = match self.kind {
                ForgeKind::Github => Method::PATCH,
                ForgeKind::Gitlab => Method::PUT,
            };
            self.call(
                m,
                &format!("{number_path}/{}", found.number),
                Some(json!({"title": title, body_key: body})),
            )
            .await?;
            return Ok((found, Effect::Updated));
        }
        let labels = match self.kind {
            ForgeKind::Github => json!([LABEL]),
            ForgeKind::Gitlab => json!(LABEL),
        };
        let a = self
            .call(
                Method::POST,
                number_path,
                Some(json!({"title": title, body_key: body, "labels": labels})),
            )
            .await?;
        let issue =
            self.issue_of(&a.json()).ok_or_else(|| self.shape("POST /issues", "number/iid"))?;
        Ok((issue, Effect::Created))
    }

    fn shape(&self, what: &str, field: &str) -> SinkError {
        SinkError::Invalid {
            provider: self.kind.as_str(),
            what: what.to_owned(),
            status: 200,
            message: format!("the answer has no {field}"),
        }
    }

    /// Adds a comment once per `key`: a comment carrying the key's marker is looked for first.
    pub async fn comment_once(
        &self,
        issue: u64,
        key: &str,
        body: &str,
    ) -> Result<Effect, SinkError> {
        let marker = comment_marker(key);
        let path = match self.kind {
            ForgeKind::Github => format!("/issues/{issue}/comments"),
            ForgeKind::Gitlab => format!("/issues/{issue}/notes"),
        };
        let existing = self.list(&path).await?;
        if existing
            .iter()
            .any(|c| c.get("body").and_then(Value::as_str).is_some_and(|b| b.contains(&marker)))
        {
            return Ok(Effect::Found);
        }
        self.call(Method::POST, &path, Some(json!({"body": format!("{body}\n\n{marker}\n")})))
            .await?;
        Ok(Effect::Created)
    }

    /// Closes (verified) or reopens (regressed) an issue; a no-op when it already is.
    pub async fn set_issue_open(&self, issue: u64, open: bool) -> Result<Effect, SinkError> {
        let (m, body) = match (self.kind, open) {
            (ForgeKind::Github, true) => (Method::PATCH, json!({"state": "open"})),
            (ForgeKind::Github, false) => {
                (Method::PATCH, json!({"state": "closed", "state_reason": "completed"}))
            }
            (ForgeKind::Gitlab, true) => (Method::PUT, json!({"state_event": "reopen"})),
            (ForgeKind::Gitlab, false) => (Method::PUT, json!({"state_event": "close"})),
        };
        let a = self.call(m, &format!("/issues/{issue}"), Some(body)).await?;
        Ok(match self.issue_of(&a.json()) {
            Some(i) if i.open == open => Effect::Updated,
            _ => Effect::Found,
        })
    }

    fn pull_of(&self, v: &Value) -> Option<PullRef> {
        let (num, url) = match self.kind {
            ForgeKind::Github => ("number", "html_url"),
            ForgeKind::Gitlab => ("iid", "web_url"),
        };
        let state = match (self.kind, v.get("state").and_then(Value::as_str)) {
            (ForgeKind::Github, Some("closed"))
                if v.get("merged_at").is_some_and(|m| !m.is_null()) =>
            {
                "merged"
            }
            (_, Some("opened" | "open")) => "open",
            (_, Some(s)) => s,
            (_, None) => "unknown",
        };
        Some(PullRef {
            number: v.get(num)?.as_u64()?,
            url: v.get(url).and_then(Value::as_str).unwrap_or_default().to_owned(),
            state: state.to_owned(),
            merge_sha: v.get("merge_commit_sha").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// The pull/merge request from `branch`, in any state.
    pub async fn find_pull(&self, branch: &str) -> Result<Option<PullRef>, SinkError> {
        let path = match self.kind {
            ForgeKind::Github => {
                let owner = self.project.split('/').next().unwrap_or_default();
                format!("/pulls?state=all&head={}", encode(&format!("{owner}:{branch}")))
            }
            ForgeKind::Gitlab => {
                format!("/merge_requests?state=all&source_branch={}", encode(branch))
            }
        };
        Ok(self.list(&path).await?.iter().find_map(|v| self.pull_of(v)))
    }

    /// Opens a pull/merge request from `branch` into `base`, unless one from `branch` exists.
    pub async fn open_pull(
        &self,
        branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<(PullRef, Effect), SinkError> {
        if let Some(p) = self.find_pull(branch).await? {
            return Ok((p, Effect::Found));
        }
        let (path, req) = match self.kind {
            ForgeKind::Github => {
                ("/pulls", json!({"title": title, "head": branch, "base": base, "body": body}))
            }
            ForgeKind::Gitlab => (
                "/merge_requests",
                json!({"title": title, "source_branch": branch, "target_branch": base, "description": body}),
            ),
        };
        let a = self.call(Method::POST, path, Some(req)).await?;
        let p = self.pull_of(&a.json()).ok_or_else(|| self.shape(path, "number/iid"))?;
        Ok((p, Effect::Created))
    }
}

/// Percent-encodes a path segment or query value (GitLab project paths: `group%2Fproject`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_paths_are_encoded_and_configs_are_checked() {
        assert_eq!(encode("group/sub project"), "group%2Fsub%20project");
        assert!(Forge::new(ForgeKind::Github, "ftp://x", "o/r", "t".into(), "T").is_err());
        assert!(Forge::new(ForgeKind::Github, "http://x", "justname", "t".into(), "T").is_err());
        assert!(Forge::new(ForgeKind::Gitlab, "http://x", "g/s/p", "t".into(), "T").is_ok());
        let e = Forge::from_env(ForgeKind::Github, "http://x", "o/r", "AF_TEST_SURELY_UNSET_VAR")
            .unwrap_err();
        assert!(e.to_string().contains("$AF_TEST_SURELY_UNSET_VAR"), "{e}");
    }
}
