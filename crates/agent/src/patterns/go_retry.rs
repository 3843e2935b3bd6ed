//! Go: a retry loop that tries again at once — no `Retry-After`, no back-off. Recognized by
//! structure: a `for` that is not over a collection (`for attempt := 0; attempt < n;
//! attempt++`, `for {`, `for tries < n {`) around a call, which leaves on success (`return` or
//! a `break` of the loop) and goes round again on failure (a `continue` in an `if` or a `case`,
//! or a body that ends without leaving), with no wait in between (`time.Sleep`, `time.After`,
//! a back-off helper).
//!
//! The codemod sleeps before each next attempt for the server's `Retry-After` when it sent one
//! (seconds or an HTTP date), else exponential back-off with full jitter. The response is the
//! `*http.Response` the loop got from `Do`/`Get`/`Post`/`Head` (net/http) when one is in scope;
//! else the wait is the back-off alone. Imports the helper needs are added in gofmt order.

use tree_sitter::Node;

use super::js_retry::is_wait_name;
use super::{FileEdit, Fix, Pattern, Site};
use crate::repo::{Lang, Repo, SourceFile, fresh_name};

/// The Go retry-without-back-off pattern.
pub struct GoRetry;

const FUNCS: &[&str] = &["function_declaration", "method_declaration", "func_literal"];
const BUILTINS: &[&str] = &[
    "len", "cap", "append", "make", "new", "copy", "delete", "panic", "print", "println", "close",
    "Errorf", "Sprintf", "Printf", "Println",
];
/// net/http calls that return a `*http.Response`.
const HTTP_CALLS: &[&str] = &["Do", "Get", "Post", "Head", "PostForm"];

fn walk_scope<'t>(n: Node<'t>, f: &mut impl FnMut(Node<'t>)) {
    super::walk_scope(n, FUNCS, f);
}

/// The statement a `continue`/`break` applies to (a `break` also leaves a switch or select).
fn target(n: Node<'_>) -> Option<Node<'_>> {
    std::iter::successors(n.parent(), |p| p.parent())
        .take_while(|p| !FUNCS.contains(&p.kind()))
        .find(|p| {
            p.kind() == "for_statement"
                || (n.kind() == "break_statement"
                    && matches!(
                        p.kind(),
                        "expression_switch_statement"
                            | "type_switch_statement"
                            | "select_statement"
                    ))
        })
}

fn callee_name<'a>(f: &'a SourceFile, call: Node<'_>) -> &'a str {
    let Some(func) = call.child_by_field_name("function") else { return "" };
    match func.kind() {
        "selector_expression" => func.child_by_field_name("field").map_or("", |x| f.text_of(x)),
        _ => f.text_of(func),
    }
}

/// The statements of a block (inside its `statement_list`).
fn statements(block: Node<'_>) -> Vec<Node<'_>> {
    let mut c = block.walk();
    let list: Vec<Node<'_>> = block.named_children(&mut c).collect();
    let mut out = Vec::new();
    for l in list {
        if l.kind() == "statement_list" {
            let mut c = l.walk();
            out.extend(l.named_children(&mut c).filter(|s| s.kind() != "comment"));
        } else if l.kind() != "comment" {
            out.push(l);
        }
    }
    out
}

fn always_jumps(n: Node<'_>) -> bool {
    match n.kind() {
        "return_statement" | "continue_statement" | "break_statement" | "goto_statement" => true,
        "block" => statements(n).last().is_some_and(|s| always_jumps(*s)),
        "if_statement" => {
            n.child_by_field_name("consequence").is_some_and(always_jumps)
                && n.child_by_field_name("alternative").is_some_and(always_jumps)
        }
        _ => false,
    }
}

fn in_branch(n: Node<'_>, top: Node<'_>) -> bool {
    std::iter::successors(n.parent(), |p| p.parent()).take_while(|p| p.id() != top.id()).any(|p| {
        matches!(
            p.kind(),
            "if_statement"
                | "expression_case"
                | "type_case"
                | "communication_case"
                | "default_case"
        )
    })
}

struct Match<'t> {
    node: Node<'t>,
    body: Node<'t>,
    /// Where a wait goes: (byte offset, after the statement ending there instead of before).
    points: Vec<(usize, bool)>,
    attempt: Option<String>,
    /// Responses bound in the loop body's own statements: (name, byte offset after the binding).
    responses: Vec<(String, usize)>,
}

fn loop_match<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    if n.kind() != "for_statement" {
        return None;
    }
    let body = n.child_by_field_name("body")?;
    let mut c = n.walk();
    let header: Vec<Node<'_>> = n.named_children(&mut c).filter(|h| h.id() != body.id()).collect();
    let mut attempt = None;
    for h in &header {
        match h.kind() {
            "range_clause" => return None,
            "for_clause" => {
                if h.child_by_field_name("condition").is_some_and(|c| f.text_of(c).contains("len("))
                {
                    return None;
                }
                attempt = h
                    .child_by_field_name("initializer")
                    .filter(|i| i.kind() == "short_var_declaration")
                    .and_then(|i| i.child_by_field_name("left"))
                    .and_then(|l| l.named_child(0))
                    .map(|v| f.text_of(v).to_owned());
            }
            _ if f.text_of(*h).contains("len(") => return None,
            _ => {}
        }
    }
    let (mut calls, mut waits, mut leaves) = (false, false, false);
    let mut points = Vec::new();
    let mut responses = Vec::new();
    let top: Vec<usize> = statements(body).iter().map(|s| s.id()).collect();
    let uses_http = f.text.contains("\"net/http\"");
    walk_scope(body, &mut |m| match m.kind() {
        "call_expression" => {
            let name = callee_name(f, m);
            let text = f.text_of(m);
            if is_wait_name(name)
                || text.starts_with("time.After")
                || text.starts_with("time.NewTimer")
            {
                waits = true;
            } else if !BUILTINS.contains(&name) {
                calls = true;
            }
        }
        "return_statement" => leaves = true,
        "break_statement" if target(m).is_some_and(|t| t.id() == n.id()) => leaves = true,
        "continue_statement"
            if m.named_child_count() == 0
                && target(m).is_some_and(|t| t.id() == n.id())
                && in_branch(m, body) =>
        {
            points.push((m.start_byte(), false));
        }
        "short_var_declaration" | "assignment_statement" if top.contains(&m.id()) && uses_http => {
            let right = m.child_by_field_name("right").and_then(|r| r.named_child(0));
            let http = right.is_some_and(|r| {
                r.kind() == "call_expression" && HTTP_CALLS.contains(&callee_name(f, r))
            });
            if let (true, Some(l)) =
                (http, m.child_by_field_name("left").and_then(|l| l.named_child(0)))
            {
                let name = f.text_of(l);
                if name != "_" {
                    responses.push((name.to_owned(), m.end_byte()));
                }
            }
        }
        _ => {}
    });
    if !calls || waits || !leaves {
        return None;
    }
    if points.is_empty() {
        let last = *statements(body).last()?;
        if always_jumps(last) {
            return None;
        }
        points.push((last.end_byte(), true));
    }
    Some(Match { node: n, body, points, attempt, responses })
}

/// The import paths the file has, and where a new one goes for each (gofmt order within the
/// first parenthesized block, else a new declaration after the package clause).
fn import_edits(f: &SourceFile, needed: &[&str]) -> Vec<(usize, String)> {
    let root = f.tree.root_node();
    let mut c = root.walk();
    let decls: Vec<Node<'_>> =
        root.named_children(&mut c).filter(|n| n.kind() == "import_declaration").collect();
    let mut specs: Vec<(String, Node<'_>)> = Vec::new();
    let mut list = None;
    for d in &decls {
        crate::repo::walk(*d, &mut |n| {
            if n.kind() == "import_spec"
                && let Some(p) = n.child_by_field_name("path")
            {
                specs.push((f.text_of(p).trim_matches('"').to_owned(), n));
            }
            if n.kind() == "import_spec_list" && list.is_none() {
                list = Some(n);
            }
        });
    }
    let mut out = Vec::new();
    for path in needed {
        if specs.iter().any(|(p, _)| p == path) {
            continue;
        }
        match list {
            Some(l) => {
                let mut c = l.walk();
                let in_list: Vec<Node<'_>> =
                    l.named_children(&mut c).filter(|s| s.kind() == "import_spec").collect();
                let after = in_list.iter().find(|s| {
                    s.child_by_field_name("path")
                        .is_some_and(|p| f.text_of(p).trim_matches('"') > *path)
                });
                match after {
                    Some(s) => {
                        let ind = f.indent_at(s.start_byte()).to_owned();
                        out.push((s.start_byte(), format!("\"{path}\"\n{ind}")));
                    }
                    None => {
                        let at = in_list.last().map_or(l.start_byte() + 1, |s| s.end_byte());
                        out.push((at, format!("\n\t\"{path}\"")));
                    }
                }
            }
            None => {
                let at = decls.last().map(|d| d.end_byte()).or_else(|| {
                    let mut c = root.walk();
                    root.named_children(&mut c)
                        .find(|n| n.kind() == "package_clause")
                        .map(|p| p.end_byte())
                });
                out.push((at.unwrap_or(0), format!("\nimport \"{path}\"")));
            }
        }
    }
    // Several at one place go in the order they were asked for.
    let mut merged: Vec<(usize, String)> = Vec::new();
    for (at, s) in out {
        match merged.iter_mut().find(|(a, _)| *a == at) {
            Some((_, t)) => t.push_str(&s),
            None => merged.push((at, s)),
        }
    }
    merged
}

impl Pattern for GoRetry {
    fn name(&self) -> &'static str {
        "go-retry-without-backoff"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        super::retry_sites(
            self.name(),
            f,
            |l| l == Lang::Go,
            |n| loop_match(f, n).map(|m| (m.node, m.body)),
        )
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let m = super::find_at(f, site, |n| loop_match(f, n))?;
        let helper = fresh_name(&f.text, "retryDelay");
        let (counter, counts) = match &m.attempt {
            Some(a) => (a.clone(), false),
            None => (fresh_name(&f.text, "attempt"), true),
        };
        let mut edits: Vec<(usize, String)> = Vec::new();
        for &(at, after) in &m.points {
            let resp = m
                .responses
                .iter()
                .rfind(|(_, end)| *end <= at)
                .map_or_else(|| "nil".to_owned(), |(n, _)| n.clone());
            let sleep = format!("time.Sleep({helper}({resp}, {counter}))");
            let lines: Vec<String> =
                if counts { vec![format!("{counter}++"), sleep] } else { vec![sleep] };
            let ind = f.indent_at(at).to_owned();
            if after {
                edits.push((at, lines.iter().map(|l| format!("\n{ind}{l}")).collect()));
            } else {
                edits.push((at, lines.iter().map(|l| format!("{l}\n{ind}")).collect()));
            }
        }
        if counts {
            let ind = f.indent_at(m.node.start_byte()).to_owned();
            let at = m.node.start_byte() - ind.len();
            edits.push((at, format!("{ind}{counter} := 0\n")));
        }
        edits.extend(import_edits(f, &["math/rand", "net/http", "strconv", "time"]));
        let helper_src = format!(
            "\n\n// {helper} is how long to wait before the next attempt: the server's Retry-After when it\n\
             // sent one (seconds or an HTTP date), else exponential back-off with full jitter (0.5 s\n\
             // base, 30 s cap). Added by af to keep {}.\n\
             func {helper}(resp *http.Response, attempt int) time.Duration {{\n\
             \tif resp != nil {{\n\
             \t\tif v := resp.Header.Get(\"Retry-After\"); v != \"\" {{\n\
             \t\t\td := time.Duration(-1)\n\
             \t\t\tif s, err := strconv.Atoi(v); err == nil {{\n\
             \t\t\t\td = time.Duration(s) * time.Second\n\
             \t\t\t}} else if t, err := http.ParseTime(v); err == nil {{\n\
             \t\t\t\td = time.Until(t)\n\
             \t\t\t}}\n\
             \t\t\tif d > time.Minute {{\n\t\t\t\td = time.Minute\n\t\t\t}}\n\
             \t\t\tif d >= 0 {{\n\t\t\t\treturn d\n\t\t\t}}\n\
             \t\t}}\n\
             \t}}\n\
             \tif attempt > 6 {{\n\t\tattempt = 6\n\t}}\n\
             \tbackoff := 500 * time.Millisecond << uint(attempt)\n\
             \tif backoff > 30*time.Second {{\n\t\tbackoff = 30 * time.Second\n\t}}\n\
             \t// Seeded here: before Go 1.20 the global source starts the same in every process.\n\
             \tjitter := rand.New(rand.NewSource(time.Now().UnixNano()))\n\
             \treturn time.Duration(jitter.Int63n(int64(backoff) + 1))\n\
             }}\n",
            fix.metric
        );
        let mut text = f.text.clone();
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (at, s) in edits {
            text.insert_str(at, &s);
        }
        let end = text.trim_end().len();
        text.truncate(end);
        text.push_str(&helper_src);
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}
