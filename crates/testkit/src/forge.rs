//! A GitHub- and GitLab-shaped REST server on loopback for tests: the request and response
//! shapes of the endpoints af's sinks call, as the providers' OpenAPI descriptions give them
//! (issues, comments/notes, pulls/merge requests, their error bodies and rate-limit headers),
//! with state, token checks, pagination, validation (a pull request's head branch must exist in
//! the bare repository it fronts) and scripted faults. It is a test double of the *providers*,
//! never of af's own components.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One issue (GitHub issue / GitLab issue).
#[derive(Clone, Debug)]
pub struct Issue {
    /// `number` / `iid`.
    pub number: u64,
    /// Title.
    pub title: String,
    /// `body` / `description`.
    pub body: String,
    /// Open?
    pub open: bool,
    /// Labels.
    pub labels: Vec<String>,
    /// Comment / note bodies.
    pub comments: Vec<String>,
}

/// One pull / merge request.
#[derive(Clone, Debug)]
pub struct Pull {
    /// `number` / `iid`.
    pub number: u64,
    /// Head / source branch.
    pub head: String,
    /// Base / target branch.
    pub base: String,
    /// Title.
    pub title: String,
    /// Body / description.
    pub body: String,
    /// `open`, `closed`, `merged`.
    pub state: String,
    /// The merge commit, once merged.
    pub merge_sha: Option<String>,
}

/// A scripted answer: the next `times` requests whose method and path match get it. With
/// `after_effect`, the request is carried out first and the answer replaced (a lost response).
#[derive(Clone, Debug)]
pub struct Fault {
    /// `GET`, `POST`, … (empty: any).
    pub method: String,
    /// Path prefix or substring to match.
    pub path_contains: String,
    /// Status to answer.
    pub status: u16,
    /// Headers to add.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// How many requests.
    pub times: usize,
    /// Do the work, then answer with the fault.
    pub after_effect: bool,
    /// Wait this long before answering (a slow provider; a worker can be killed meanwhile).
    pub delay_ms: u64,
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Status answered.
    pub status: u16,
}

/// The server's state.
#[derive(Debug, Default)]
pub struct ForgeState {
    /// Issues.
    pub issues: Vec<Issue>,
    /// Pull/merge requests.
    pub pulls: Vec<Pull>,
    /// Faults to serve, in order.
    pub faults: VecDeque<Fault>,
    /// Every request.
    pub seen: Vec<Seen>,
    next: u64,
}

/// A running fake forge.
#[derive(Clone, Debug)]
pub struct FakeForge {
    /// `http://127.0.0.1:PORT` (GitHub API base; GitLab's is `{base}/api/v4`).
    pub base: String,
    /// The state.
    pub state: Arc<Mutex<ForgeState>>,
    token: String,
    /// The project (`owner/name` or GitLab path).
    pub project: String,
    bare: Option<PathBuf>,
}

#[derive(Clone)]
struct App {
    f: FakeForge,
}

impl FakeForge {
    /// Starts on a free loopback port (its own thread and runtime). Requests must carry
    /// `token`; a pull request's head must exist in `bare` when given.
    pub fn start(project: &str, token: &str, bare: Option<PathBuf>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let f = FakeForge {
            base: format!("http://{addr}"),
            state: Arc::new(Mutex::new(ForgeState { next: 1, ..Default::default() })),
            token: token.to_owned(),
            project: project.to_owned(),
            bare,
        };
        let app = App { f: f.clone() };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).expect("listener");
                let router = Router::new().fallback(handle).with_state(app);
                let _ = axum::serve(l, router).await;
            });
        });
        f
    }

    /// GitLab's API base.
    pub fn gitlab_api(&self) -> String {
        format!("{}/api/v4", self.base)
    }

    /// Adds a fault.
    pub fn fault(&self, f: Fault) {
        self.lock().faults.push_back(f);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ForgeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the issues.
    pub fn issues(&self) -> Vec<Issue> {
        self.lock().issues.clone()
    }

    /// A copy of the pulls.
    pub fn pulls(&self) -> Vec<Pull> {
        self.lock().pulls.clone()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Merges pull `number` with `sha` and returns the provider's webhook payload (GitHub
    /// `pull_request` "closed"+merged, or GitLab "Merge Request Hook" "merge").
    pub fn merge(&self, number: u64, sha: &str, gitlab: bool) -> Value {
        let mut s = self.lock();
        let Some(p) = s.pulls.iter_mut().find(|p| p.number == number) else {
            return Value::Null;
        };
        p.state = "merged".into();
        p.merge_sha = Some(sha.to_owned());
        if gitlab {
            json!({
                "object_kind": "merge_request", "event_type": "merge_request",
                "project": {"path_with_namespace": self.project},
                "object_attributes": {"iid": p.number, "action": "merge", "state": "merged",
                    "source_branch": p.head, "target_branch": p.base, "merge_commit_sha": sha}
            })
        } else {
            json!({
                "action": "closed", "number": p.number,
                "pull_request": {"number": p.number, "merged": true, "merge_commit_sha": sha,
                    "head": {"ref": p.head}, "base": {"ref": p.base}, "state": "closed"},
                "repository": {"full_name": self.project}
            })
        }
    }
}

fn gh_issue(f: &FakeForge, i: &Issue) -> Value {
    json!({
        "id": 1000 + i.number, "number": i.number, "title": i.title, "body": i.body,
        "state": if i.open { "open" } else { "closed" },
        "labels": i.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        "html_url": format!("{}/{}/issues/{}", f.base, f.project, i.number),
        "url": format!("{}/repos/{}/issues/{}", f.base, f.project, i.number),
        "user": {"login": "af-bot"}
    })
}

fn gl_issue(f: &FakeForge, i: &Issue) -> Value {
    json!({
        "id": 1000 + i.number, "iid": i.number, "project_id": 1, "title": i.title, "description": i.body,
        "state": if i.open { "opened" } else { "closed" }, "labels": i.labels,
        "web_url": format!("{}/{}/-/issues/{}", f.base, f.project, i.number)
    })
}

fn gh_pull(f: &FakeForge, p: &Pull) -> Value {
    json!({
        "id": 2000 + p.number, "number": p.number, "title": p.title, "body": p.body,
        "state": if p.state == "open" { "open" } else { "closed" },
        "merged_at": if p.state == "merged" { json!("2026-12-01T00:00:00Z") } else { Value::Null },
        "merge_commit_sha": p.merge_sha,
        "head": {"ref": p.head, "label": format!("{}:{}", f.project.split('/').next().unwrap_or(""), p.head)},
        "base": {"ref": p.base},
        "html_url": format!("{}/{}/pull/{}", f.base, f.project, p.number)
    })
}

fn gl_pull(f: &FakeForge, p: &Pull) -> Value {
    json!({
        "id": 2000 + p.number, "iid": p.number, "title": p.title, "description": p.body,
        "state": if p.state == "open" { "opened" } else { p.state.as_str() },
        "source_branch": p.head, "target_branch": p.base, "merge_commit_sha": p.merge_sha,
        "web_url": format!("{}/{}/-/merge_requests/{}", f.base, f.project, p.number)
    })
}

fn answer(status: u16, v: Value, headers: &[(String, String)]) -> Response {
    let mut r =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(v))
            .into_response();
    for (k, val) in headers {
        if let (Ok(k), Ok(val)) = (axum::http::HeaderName::from_bytes(k.as_bytes()), val.parse()) {
            r.headers_mut().insert(k, val);
        }
    }
    r
}

fn page<T: Clone>(items: &[T], q: &std::collections::HashMap<String, String>) -> (Vec<T>, bool) {
    let per: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30).clamp(1, 100);
    let pg: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let start = (pg - 1) * per;
    let out: Vec<T> = items.iter().skip(start).take(per).cloned().collect();
    (out, start + per < items.len())
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let f = &app.f;
    let path = uri.path().to_owned();
    let hdrs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body_s = String::from_utf8_lossy(&body).into_owned();
    // Credentials first, as the providers do: a bad token is a 401 whatever else is scripted.
    if let Some(r) = unauthorized(f, &path, &headers) {
        f.lock().seen.push(Seen {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: hdrs,
            body: body_s,
            status: 401,
        });
        return r;
    }
    let fault = {
        let mut s = f.lock();
        let i = s.faults.iter().position(|x| {
            (x.method.is_empty() || x.method == method.as_str())
                && path.contains(&x.path_contains)
                && x.times > 0
        });
        i.map(|i| {
            let x = &mut s.faults[i];
            x.times -= 1;
            let out = x.clone();
            if x.times == 0 {
                s.faults.remove(i);
            }
            out
        })
    };
    if let Some(x) = &fault
        && x.delay_ms > 0
    {
        if x.after_effect {
            let _ = route(f, &method, &path, &q, &body);
        }
        // Seen on arrival: a test may act while the answer is still pending.
        f.lock().seen.push(Seen {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: hdrs,
            body: body_s,
            status: x.status,
        });
        tokio::time::sleep(std::time::Duration::from_millis(x.delay_ms)).await;
        return answer(
            x.status,
            serde_json::from_str(&x.body).unwrap_or(json!({"message": x.body})),
            &x.headers,
        );
    }
    let mut resp = match &fault {
        Some(x) if !x.after_effect => answer(
            x.status,
            serde_json::from_str(&x.body).unwrap_or(json!({"message": x.body})),
            &x.headers,
        ),
        _ => route(f, &method, &path, &q, &body),
    };
    if let Some(x) = fault.filter(|x| x.after_effect) {
        resp = answer(
            x.status,
            serde_json::from_str(&x.body).unwrap_or(json!({"message": x.body})),
            &x.headers,
        );
    }
    f.lock().seen.push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: hdrs,
        body: body_s,
        status: resp.status().as_u16(),
    });
    resp
}

/// The provider's 401 when the request lacks the token.
fn unauthorized(f: &FakeForge, path: &str, headers: &HeaderMap) -> Option<Response> {
    let gitlab = path.starts_with("/api/v4/");
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let bearer = h("authorization") == format!("Bearer {}", f.token);
    let authed = if gitlab {
        h("private-token") == f.token || bearer
    } else {
        bearer || h("authorization") == format!("token {}", f.token)
    };
    (!authed).then(|| {
        if gitlab {
            answer(401, json!({"message": "401 Unauthorized"}), &[])
        } else {
            answer(401, json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}), &[])
        }
    })
}

fn route(
    f: &FakeForge,
    method: &Method,
    path: &str,
    q: &std::collections::HashMap<String, String>,
    body: &[u8],
) -> Response {
    // Credentials were checked by `handle`, before any scripted fault.
    let gitlab = path.starts_with("/api/v4/");

    let prefix = if gitlab {
        format!("/api/v4/projects/{}", f.project.replace('/', "%2F"))
    } else {
        format!("/repos/{}", f.project)
    };
    let Some(rest) = path.strip_prefix(&prefix) else {
        return answer(
            404,
            json!({"message": if gitlab { "404 Project Not Found" } else { "Not Found" }}),
            &[],
        );
    };
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let mut s = f.lock();
    let body_key = if gitlab { "description" } else { "body" };
    let not_found =
        || answer(404, json!({"message": if gitlab { "404 Not found" } else { "Not Found" }}), &[]);
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["issues"]) => {
            let label = q.get("labels").cloned();
            let items: Vec<Value> = s
                .issues
                .iter()
                .filter(|i| label.as_ref().is_none_or(|l| i.labels.contains(l)))
                .map(|i| if gitlab { gl_issue(f, i) } else { gh_issue(f, i) })
                .collect();
            let (items, more) = page(&items, q);
            let mut hs = Vec::new();
            if more {
                let next = q.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1) + 1;
                if gitlab {
                    hs.push(("x-next-page".into(), next.to_string()));
                } else {
                    hs.push((
                        "link".into(),
                        format!("<{}{path}?page={next}>; rel=\"next\"", f.base),
                    ));
                }
            } else if gitlab {
                hs.push(("x-next-page".into(), String::new()));
            }
            answer(200, Value::Array(items), &hs)
        }
        ("POST", ["issues"]) => {
            let title = v.get("title").and_then(Value::as_str).unwrap_or("");
            if title.is_empty() {
                return if gitlab {
                    answer(400, json!({"error": "title is missing"}), &[])
                } else {
                    answer(
                        422,
                        json!({"message": "Validation Failed", "errors": [{"resource": "Issue", "field": "title", "code": "missing_field"}]}),
                        &[],
                    )
                };
            }
            let labels = match v.get("labels") {
                Some(Value::Array(a)) => {
                    a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()
                }
                Some(Value::String(l)) => l.split(',').map(str::to_owned).collect(),
                _ => Vec::new(),
            };
            let n = s.next;
            s.next += 1;
            let i = Issue {
                number: n,
                title: title.to_owned(),
                body: v.get(body_key).and_then(Value::as_str).unwrap_or("").to_owned(),
                open: true,
                labels,
                comments: Vec::new(),
            };
            s.issues.push(i.clone());
            answer(201, if gitlab { gl_issue(f, &i) } else { gh_issue(f, &i) }, &[])
        }
        ("PATCH" | "PUT", ["issues", n]) => {
            let Some(i) = s.issues.iter_mut().find(|i| i.number.to_string() == *n) else {
                return not_found();
            };
            if let Some(t) = v.get("title").and_then(Value::as_str) {
                i.title = t.to_owned();
            }
            if let Some(b) = v.get(body_key).and_then(Value::as_str) {
                i.body = b.to_owned();
            }
            match (
                v.get("state").and_then(Value::as_str),
                v.get("state_event").and_then(Value::as_str),
            ) {
                (Some("closed"), _) | (_, Some("close")) => i.open = false,
                (Some("open"), _) | (_, Some("reopen")) => i.open = true,
                (Some(other), _) | (_, Some(other)) => {
                    let other = other.to_owned();
                    return answer(
                        422,
                        json!({"message": "Validation Failed", "errors": [{"field": "state", "code": "invalid", "value": other}]}),
                        &[],
                    );
                }
                _ => {}
            }
            let i = i.clone();
            answer(200, if gitlab { gl_issue(f, &i) } else { gh_issue(f, &i) }, &[])
        }
        ("GET", ["issues", n, "comments" | "notes"]) => {
            let Some(i) = s.issues.iter().find(|i| i.number.to_string() == *n) else {
                return not_found();
            };
            let items: Vec<Value> = i
                .comments
                .iter()
                .enumerate()
                .map(|(k, b)| json!({"id": 3000 + k, "body": b}))
                .collect();
            let (items, _) = page(&items, q);
            answer(200, Value::Array(items), &[])
        }
        ("POST", ["issues", n, "comments" | "notes"]) => {
            let Some(i) = s.issues.iter_mut().find(|i| i.number.to_string() == *n) else {
                return not_found();
            };
            let b = v.get("body").and_then(Value::as_str).unwrap_or("").to_owned();
            if b.is_empty() {
                return answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "IssueComment", "field": "body", "code": "missing_field"}]}),
                    &[],
                );
            }
            i.comments.push(b.clone());
            answer(201, json!({"id": 3000 + i.comments.len(), "body": b}), &[])
        }
        ("GET", ["pulls" | "merge_requests"]) => {
            let head = q
                .get("head")
                .map(|h| h.rsplit(':').next().unwrap_or("").to_owned())
                .or_else(|| q.get("source_branch").cloned());
            let items: Vec<Value> = s
                .pulls
                .iter()
                .filter(|p| head.as_ref().is_none_or(|h| &p.head == h))
                .map(|p| if gitlab { gl_pull(f, p) } else { gh_pull(f, p) })
                .collect();
            let (items, _) = page(&items, q);
            answer(200, Value::Array(items), &[])
        }
        ("POST", ["pulls" | "merge_requests"]) => {
            let (hk, bk, tk) = if gitlab {
                ("source_branch", "target_branch", "description")
            } else {
                ("head", "base", "body")
            };
            let head = v.get(hk).and_then(Value::as_str).unwrap_or("").to_owned();
            let base = v.get(bk).and_then(Value::as_str).unwrap_or("").to_owned();
            let title = v.get("title").and_then(Value::as_str).unwrap_or("").to_owned();
            if head.is_empty() || base.is_empty() || title.is_empty() {
                return answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": if head.is_empty() { hk } else if base.is_empty() { bk } else { "title" }, "code": "missing_field"}]}),
                    &[],
                );
            }
            if let Some(bare) = &f.bare {
                let ok = std::process::Command::new("git")
                    .arg("-C")
                    .arg(bare)
                    .args(["rev-parse", "--verify", "-q", &format!("refs/heads/{head}")])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !ok {
                    return answer(
                        422,
                        json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}),
                        &[],
                    );
                }
            }
            if let Some(p) = s.pulls.iter().find(|p| p.head == head && p.state == "open") {
                return if gitlab {
                    answer(
                        409,
                        json!({"message": [format!("Another open merge request already exists for this source branch: !{}", p.number)]}),
                        &[],
                    )
                } else {
                    answer(
                        422,
                        json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {}:{head}.", f.project.split('/').next().unwrap_or(""))}]}),
                        &[],
                    )
                };
            }
            let n = s.next;
            s.next += 1;
            let p = Pull {
                number: n,
                head,
                base,
                title,
                body: v.get(tk).and_then(Value::as_str).unwrap_or("").to_owned(),
                state: "open".into(),
                merge_sha: None,
            };
            s.pulls.push(p.clone());
            answer(201, if gitlab { gl_pull(f, &p) } else { gh_pull(f, &p) }, &[])
        }
        _ => not_found(),
    }
}
