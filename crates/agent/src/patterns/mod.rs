//! Builtin code patterns (DESIGN.md §6): each finds one shape of bug in source code and knows
//! the codemod that fixes it. One file each, one list ([`builtin_patterns`]).
//!
//! Every codemod's output is re-parsed; an edit that leaves a syntax error is refused, so a
//! codemod can fail but never corrupt a file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::repo::{Repo, SourceFile, parses_cleanly};

mod go_errgroup;
mod go_fanout;
mod go_retry;
mod js_fanout;
mod js_retry;
mod py_gather;
mod py_pool;
mod py_retry;
mod py_taskgroup;

pub use go_errgroup::GoErrgroup;
pub use go_fanout::GoFanout;
pub use go_retry::GoRetry;
pub use js_fanout::JsFanout;
pub use js_retry::JsRetry;
pub use py_gather::PyGather;
pub use py_pool::PyPool;
pub use py_retry::PyRetry;
pub use py_taskgroup::PyTaskGroup;

/// The JS/TS node kinds that start a function's own scope (the fan-out and retry patterns do
/// not look into nested functions).
pub(crate) const JS_FUNCTIONS: &[&str] = &[
    "function_declaration",
    "function_expression",
    "arrow_function",
    "method_definition",
    "generator_function_declaration",
];

/// What a fix has to bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FixKind {
    /// Calls in flight at once.
    Concurrency,
    /// Calls started per second.
    Rate,
    /// Retries: back off, honouring `Retry-After`.
    Retry,
}

impl FixKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Rate => "rate",
            Self::Retry => "retry",
        }
    }
}

/// The fix to apply: what to bound and the bound (the plan's threshold).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Fix {
    /// What to bound.
    pub kind: FixKind,
    /// In-flight calls, or calls per second; for retries the number of attempts.
    pub bound: u32,
    /// The metric expression the bound comes from (cited in a comment beside the code).
    pub metric: String,
}

/// Where a pattern matched.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Site {
    /// Pattern name (`js-unbounded-fanout`, …).
    pub pattern: String,
    /// File, relative to the repository root.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Byte range of the matched node.
    pub start: usize,
    /// End of the byte range.
    pub end: usize,
    /// The matched code (first line or two).
    pub snippet: String,
    /// What the pattern does in one phrase, for reports.
    pub description: String,
    /// The fixes this site can take.
    pub fixes: Vec<FixKind>,
    /// Identifiers called per item (localization links them to endpoints).
    pub callees: Vec<String>,
    /// Where the bound lives when it is not at the site (`settings.py:4`).
    pub bound_at: Option<String>,
    /// The current bound, when there is one (oversized pools).
    pub current_bound: Option<u64>,
}

impl Site {
    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A file's new text.
#[derive(Clone, Debug)]
pub struct FileEdit {
    /// Relative path.
    pub file: String,
    /// The whole new text.
    pub text: String,
}

/// One builtin pattern: a detector and its codemod.
pub trait Pattern: Send + Sync {
    /// Stable name.
    fn name(&self) -> &'static str;
    /// Sites in one file (the repository is there to follow names to other files).
    fn find(&self, file: &SourceFile, repo: &Repo) -> Vec<Site>;
    /// The edits that fix `site` with `fix`. Output is re-parsed by [`apply`].
    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String>;
}

/// Every builtin pattern, in the order sites are reported.
pub fn builtin_patterns() -> Vec<Box<dyn Pattern>> {
    vec![
        Box::new(JsFanout),
        Box::new(PyGather),
        Box::new(PyTaskGroup),
        Box::new(PyPool),
        Box::new(GoFanout),
        Box::new(GoErrgroup),
        Box::new(JsRetry),
        Box::new(PyRetry),
        Box::new(GoRetry),
    ]
}

/// Every site of every pattern in the repository.
pub fn find_all(repo: &Repo, patterns: &[Box<dyn Pattern>]) -> Vec<Site> {
    let mut out = Vec::new();
    for f in &repo.files {
        for p in patterns {
            out.extend(p.find(f, repo));
        }
    }
    out
}

/// Runs a pattern's codemod and checks every output file still parses.
pub fn apply(
    pattern: &dyn Pattern,
    site: &Site,
    repo: &Repo,
    fix: &Fix,
) -> Result<Vec<FileEdit>, String> {
    if !site.fixes.contains(&fix.kind) {
        return Err(format!(
            "{} at {} cannot take a {} fix",
            site.pattern,
            site.location(),
            fix.kind.as_str()
        ));
    }
    let edits = pattern.rewrite(site, repo, fix)?;
    for e in &edits {
        let lang = repo
            .file(&e.file)
            .map(|f| f.lang)
            .or_else(|| crate::repo::Lang::from_path(std::path::Path::new(&e.file)))
            .ok_or_else(|| format!("{}: unknown language", e.file))?;
        if !parses_cleanly(lang, &e.text) {
            return Err(format!(
                "the {} codemod left a syntax error in {}; not applied",
                site.pattern, e.file
            ));
        }
    }
    Ok(edits)
}

/// The pattern called `name`.
pub fn by_name<'a>(patterns: &'a [Box<dyn Pattern>], name: &str) -> Option<&'a dyn Pattern> {
    patterns.iter().find(|p| p.name() == name).map(AsRef::as_ref)
}

/// Snippet of a node's text: its first two lines, trimmed.
pub(crate) fn snippet(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().take(2).map(str::trim).collect();
    if text.lines().count() > 2 {
        lines.push("…");
    }
    lines.join(" ")
}

/// Identifiers in a piece of code (calls per item), in order, deduplicated.
pub(crate) fn identifiers(code: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in code.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' || c == '$' {
            cur.push(c);
        } else {
            if !cur.is_empty()
                && !cur.chars().next().is_some_and(|c| c.is_ascii_digit())
                && !out.contains(&cur)
            {
                out.push(cur.clone());
            }
            cur.clear();
        }
    }
    out
}

/// Splices `new` over `start..end` of `text`.
pub(crate) fn splice(text: &str, start: usize, end: usize, new: &str) -> String {
    let mut s = String::with_capacity(text.len() + new.len());
    s.push_str(&text[..start]);
    s.push_str(new);
    s.push_str(&text[end..]);
    s
}

/// Whether the function around `n` already paces or bounds its calls (a semaphore, a timer):
/// a `gather`/`Promise.all` there is not unbounded. This is also what keeps the codemods'
/// own helpers from matching.
pub(crate) fn in_bounded_function(f: &SourceFile, n: tree_sitter::Node<'_>) -> bool {
    const FUNCS: &[&str] = &[
        "function_declaration",
        "function_expression",
        "arrow_function",
        "method_definition",
        "function_definition",
    ];
    std::iter::successors(n.parent(), |p| p.parent()).filter(|p| FUNCS.contains(&p.kind())).any(
        |p| {
            let t = f.text_of(p);
            t.contains("Semaphore(") || t.contains("setTimeout(") || t.contains("asyncio.sleep(")
        },
    )
}

impl Site {
    /// A site no detector matched (chosen or edited by a model): a location, no byte range,
    /// no bound.
    pub fn chosen(
        pattern: &str,
        file: &str,
        line: usize,
        snippet: String,
        description: &str,
        fixes: Vec<FixKind>,
    ) -> Self {
        Self {
            pattern: pattern.into(),
            file: file.into(),
            line,
            start: 0,
            end: 0,
            snippet,
            description: description.into(),
            fixes,
            callees: Vec::new(),
            bound_at: None,
            current_bound: None,
        }
    }

    /// A site at `node` in `f`: location and snippet from the node; no bound.
    pub(crate) fn at(
        pattern: &str,
        f: &SourceFile,
        node: tree_sitter::Node<'_>,
        description: String,
        fixes: Vec<FixKind>,
        callees: Vec<String>,
    ) -> Self {
        Self {
            pattern: pattern.into(),
            file: f.rel.clone(),
            line: node.start_position().row + 1,
            start: node.start_byte(),
            end: node.end_byte(),
            snippet: snippet(f.text_of(node)),
            description,
            fixes,
            callees,
            bound_at: None,
            current_bound: None,
        }
    }
}

/// Every site `m` makes of a node of `f`, in tree order: the walk each detector shares.
pub(crate) fn sites_in(
    f: &SourceFile,
    mut m: impl FnMut(tree_sitter::Node<'_>) -> Option<Site>,
) -> Vec<Site> {
    let mut out = Vec::new();
    crate::repo::walk(f.tree.root_node(), &mut |n| out.extend(m(n)));
    out
}

/// Visits the nodes of `n` in its own scope: nodes of a kind in `scopes` (nested functions,
/// classes) are not entered. The retry patterns' walk in every language.
pub(crate) fn walk_scope<'t>(
    n: tree_sitter::Node<'t>,
    scopes: &[&str],
    f: &mut impl FnMut(tree_sitter::Node<'t>),
) {
    let mut c = n.walk();
    for child in n.children(&mut c) {
        if scopes.contains(&child.kind()) {
            continue;
        }
        f(child);
        walk_scope(child, scopes, f);
    }
}

/// The retry loops `loop_at` matches in `f` (when its language is `lang`), as sites: what
/// the three retry patterns report, whatever their language's loop looks like.
pub(crate) fn retry_sites<'t>(
    pattern: &str,
    f: &'t SourceFile,
    lang: impl Fn(crate::repo::Lang) -> bool,
    loop_at: impl Fn(tree_sitter::Node<'t>) -> Option<(tree_sitter::Node<'t>, tree_sitter::Node<'t>)>,
) -> Vec<Site> {
    if !lang(f.lang) {
        return Vec::new();
    }
    let mut out = Vec::new();
    crate::repo::walk(f.tree.root_node(), &mut |n| {
        if let Some((node, body)) = loop_at(n) {
            out.push(Site::at(
                pattern,
                f,
                node,
                "a retry loop that sends the next attempt at once, ignoring Retry-After".into(),
                vec![FixKind::Retry],
                identifiers(f.text_of(body)),
            ));
        }
    });
    out
}

/// The site's file in `repo`.
pub(crate) fn site_file<'r>(repo: &'r Repo, site: &Site) -> Result<&'r SourceFile, String> {
    repo.file(&site.file).ok_or_else(|| format!("{} is not in the repository", site.file))
}

/// The first match of `m` among the nodes that start at the site's byte offset: how a codemod
/// finds again what its detector matched.
pub(crate) fn find_at<'t, T>(
    f: &'t SourceFile,
    site: &Site,
    mut m: impl FnMut(tree_sitter::Node<'t>) -> Option<T>,
) -> Result<T, String> {
    let mut found = None;
    crate::repo::walk(f.tree.root_node(), &mut |n| {
        if found.is_none() && n.start_byte() == site.start {
            found = m(n);
        }
    });
    found.ok_or_else(|| format!("{}: the matched code is not there any more", site.location()))
}
