//! Localization: which code makes the failing endpoint's calls. The endpoint's literal path
//! segments are looked for in the code; functions that build that path are found; each
//! pattern site is scored by what links it to them — a call (direct, or through one more
//! function) to a function that builds the path, the path in its own file, SDK method chains
//! and names that spell the endpoint (`users.messages.get`, `getMessage`), and the base-URL
//! variable. Every point of a score comes with its reason, cited `file:line`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tree_sitter::Node;

use crate::patterns::Site;
use crate::repo::{Repo, SourceFile, walk};

/// A site with its score and the reasons for it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Ranked {
    /// The pattern site.
    #[serde(flatten)]
    pub site: Site,
    /// Higher is more likely.
    pub score: f64,
    /// Why, one line each.
    pub reasons: Vec<String>,
}

/// `GET /gmail/v1/users/{userId}/messages/{id}` → (`GET`, [gmail, v1, users, messages]).
pub fn endpoint_parts(endpoint: &str) -> (String, Vec<String>) {
    let (method, path) = endpoint.split_once(' ').unwrap_or(("", endpoint));
    let segs = path
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .map(str::to_owned)
        .collect();
    (method.to_ascii_uppercase(), segs)
}

/// Words of an identifier, lower case, singular: `getMessages` → [get, message].
fn words(ident: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in ident.chars() {
        if c == '_' || c == '.' || c == '-' || c == '$' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter().map(|w| singular(&w)).collect()
}

fn singular(w: &str) -> String {
    if w.len() > 3 && w.ends_with("ies") {
        format!("{}y", &w[..w.len() - 3])
    } else if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w[..w.len() - 1].to_owned()
    } else {
        w.to_owned()
    }
}

/// A function or method definition.
struct Def<'r> {
    name: String,
    file: &'r SourceFile,
    start: usize,
    end: usize,
}

fn defs(repo: &Repo) -> Vec<Def<'_>> {
    let mut out = Vec::new();
    for f in &repo.files {
        walk(f.tree.root_node(), &mut |n: Node<'_>| {
            let name = match n.kind() {
                "function_declaration"
                | "method_definition"
                | "function_definition"
                | "method_declaration"
                | "generator_function_declaration" => {
                    n.child_by_field_name("name").map(|x| f.text_of(x).to_owned())
                }
                "variable_declarator" => n
                    .child_by_field_name("value")
                    .filter(|v| {
                        matches!(v.kind(), "arrow_function" | "function_expression" | "function")
                    })
                    .and_then(|_| n.child_by_field_name("name"))
                    .map(|x| f.text_of(x).to_owned()),
                _ => None,
            };
            if let Some(name) = name {
                out.push(Def { name, file: f, start: n.start_byte(), end: n.end_byte() });
            }
        });
    }
    out
}

/// Where in `text` the endpoint's path is written: the offset of the last literal segment,
/// when every literal segment after the first two (the API prefix) appears as `/seg`. When the
/// endpoint goes on with a parameter (`/items/{id}`), an occurrence followed by `/` is
/// preferred to one that is not (`/items?page=`, the listing), and the other way round.
fn builds_path(text: &str, segs: &[String], then_param: bool) -> Option<usize> {
    let tail: Vec<&String> = segs.iter().skip(segs.len().saturating_sub(2)).collect();
    if tail.is_empty() {
        return None;
    }
    let mut at = None;
    for (k, s) in tail.iter().enumerate() {
        let needle = format!("/{s}");
        let mut found = text.match_indices(&needle).filter(|(i, _)| {
            let after = text[i + needle.len()..].chars().next();
            !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        let first = found.next()?;
        let best = if k + 1 == tail.len() {
            let fits = |i: usize| text[i + needle.len()..].starts_with('/') == then_param;
            std::iter::once(first).chain(found).find(|(i, _)| fits(*i)).unwrap_or(first)
        } else {
            first
        };
        at = Some(best.0 + 1);
    }
    at
}

/// Whether the endpoint's path ends in a parameter: `/items/{id}`.
fn ends_with_param(endpoint: &str) -> bool {
    endpoint.rsplit('/').next().is_some_and(|s| s.starts_with('{'))
}

/// Ranks the sites for the endpoint.
pub fn rank(repo: &Repo, sites: &[Site], endpoint: &str, url_env: &[String]) -> Vec<Ranked> {
    let (method, segs) = endpoint_parts(endpoint);
    let then_param = ends_with_param(endpoint);
    let defs = defs(repo);
    // Functions whose body writes the path.
    let builders: Vec<(&Def<'_>, usize)> = defs
        .iter()
        .filter_map(|d| {
            let body = &d.file.text[d.start..d.end];
            builds_path(body, &segs, then_param).map(|off| (d, d.start + off))
        })
        .collect();
    let mut ep_words: Vec<String> = segs.iter().flat_map(|s| words(s)).collect();
    ep_words.push(method.to_ascii_lowercase());
    let generic = ["v1", "v2", "v3", "api", "the", "a", "me"];
    ep_words.retain(|w| !generic.contains(&w.as_str()));

    let mut out: Vec<Ranked> = sites
        .iter()
        .map(|site| {
            let mut score = 0.0;
            let mut reasons = Vec::new();
            let f = repo.file(&site.file);
            // (a) the per-item call reaches a function that builds the path.
            let mut linked = false;
            for callee in &site.callees {
                if let Some((d, at)) = builders.iter().find(|(d, _)| &d.name == callee) {
                    score += 4.0;
                    reasons.push(format!(
                        "calls {callee}() per item, which builds the endpoint's path at {}:{}",
                        d.file.rel,
                        d.file.line_of(*at)
                    ));
                    linked = true;
                    break;
                }
            }
            if !linked {
                'hop: for callee in &site.callees {
                    for d in defs.iter().filter(|d| &d.name == callee) {
                        let body = &d.file.text[d.start..d.end];
                        for (b, at) in &builders {
                            if b.name != d.name && crate::repo::contains_word(body, &b.name) {
                                score += 3.0;
                                reasons.push(format!(
                                    "calls {callee}() ({}:{}) per item, which calls {}() — it builds the endpoint's path at {}:{}",
                                    d.file.rel,
                                    d.file.line_of(d.start),
                                    b.name,
                                    b.file.rel,
                                    b.file.line_of(*at)
                                ));
                                break 'hop;
                            }
                        }
                    }
                }
            }
            // (a') the other way round: the function the site is in (a retry helper, a pool
            // wrapper) is called by one that builds the path.
            if !linked {
                let enclosing = defs
                    .iter()
                    .filter(|d| d.file.rel == site.file && d.start <= site.start && site.start < d.end)
                    .min_by_key(|d| d.end - d.start);
                if let Some(e) = enclosing {
                    let caller = builders.iter().find(|(b, _)| {
                        b.name != e.name
                            && crate::repo::contains_word(&b.file.text[b.start..b.end], &e.name)
                    });
                    if let Some((b, at)) = caller {
                        score += 3.0;
                        reasons.push(format!(
                            "its function {}() is called by {}() ({}:{}), which builds the endpoint's path at {}:{}",
                            e.name,
                            b.name,
                            b.file.rel,
                            b.file.line_of(b.start),
                            b.file.rel,
                            b.file.line_of(*at)
                        ));
                    }
                }
            }
            // (b) the path is written in the site's own file.
            if let Some(off) = f.and_then(|f| builds_path(&f.text, &segs, then_param)) {
                score += 2.0;
                reasons.push(format!(
                    "{} writes the endpoint's path (line {})",
                    site.file,
                    f.map_or(0, |f| f.line_of(off))
                ));
            }
            // (c) names that spell the endpoint: SDK chains (users.messages.get), getMessage.
            let site_words: Vec<String> = site.callees.iter().flat_map(|c| words(c)).collect();
            let shared: Vec<&String> = ep_words.iter().filter(|w| site_words.contains(w)).collect();
            if !shared.is_empty() {
                let pts = (shared.len() as f64).min(3.0);
                score += pts;
                reasons.push(format!(
                    "names per item spell the endpoint: {}",
                    shared.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            // (d) the base-URL variable.
            if let Some(env) = url_env.iter().find(|e| f.is_some_and(|f| f.text.contains(e.as_str()))) {
                score += 0.5;
                reasons.push(format!("{} reads {env}", site.file));
            }
            if reasons.is_empty() {
                reasons.push("nothing links it to the endpoint; a candidate only".into());
            }
            Ranked { site: site.clone(), score, reasons }
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.site.file.cmp(&b.site.file))
            .then(a.site.line.cmp(&b.site.line))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_and_singularize() {
        assert_eq!(words("getMessages"), vec!["get", "message"]);
        assert_eq!(words("users.messages.get"), vec!["user", "message", "get"]);
        assert_eq!(words("fetch_order_items"), vec!["fetch", "order", "item"]);
    }

    #[test]
    fn the_item_path_is_preferred_to_the_listing_for_an_item_endpoint() {
        let text = "get(`/v1/items?page=${p}`);\nget(`/v1/items/${id}`);\n";
        let segs = vec!["v1".to_owned(), "items".to_owned()];
        let item = builds_path(text, &segs, true).expect("found");
        assert_eq!(&text[item..item + 6], "items/");
        let list = builds_path(text, &segs, false).expect("found");
        assert_eq!(&text[list..list + 6], "items?");
    }

    #[test]
    fn endpoint_literal_segments() {
        let (m, s) = endpoint_parts("GET /gmail/v1/users/{userId}/messages/{id}");
        assert_eq!(
            (m.as_str(), s),
            ("GET", vec!["gmail".into(), "v1".into(), "users".into(), "messages".into()])
        );
        assert!(
            builds_path(
                "x(`${base}/gmail/v1/users/me/messages/${id}`)",
                &["gmail".into(), "v1".into(), "users".into(), "messages".into()],
                true
            )
            .is_some()
        );
        assert!(
            builds_path("'/users/me/messagesX'", &["users".into(), "messages".into()], true)
                .is_none()
        );
    }
}
