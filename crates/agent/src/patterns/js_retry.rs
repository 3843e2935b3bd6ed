//! JS/TS: a retry that tries again at once — no `Retry-After`, no back-off. Every failure comes
//! straight back as another request: a retry storm. Recognized by structure, whatever the
//! statuses are called or where they are kept:
//!
//! - a loop that is not over a collection (`for (;;)`, `for (let attempt …)`, `while`,
//!   `do … while`) around an awaited call, which leaves on success (`return`/`break`) and goes
//!   round again on failure (a `continue` — from a `catch`, after a status check against a
//!   constant, a `Set`, anything — or falling off the end of the body);
//! - a function that calls itself again from a failure branch (`if`/`catch`): recursion;
//!
//! with no wait in between (no awaited timer, `sleep`, `delay`, back-off helper).
//!
//! The codemod waits before each next attempt: the server's `Retry-After` when it sent one,
//! else exponential back-off with full jitter. The response is taken from where the code has
//! it: the awaited call's result, the `headers` of a destructured result (added to the pattern
//! when missing), or the error a `catch` holds (an axios error carries its response).

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers};
use crate::repo::{Repo, SourceFile, Style, contains_word, fresh_name};

/// The JS retry-without-back-off pattern.
pub struct JsRetry;

const LOOPS: &[&str] = &["for_statement", "while_statement", "do_statement"];
const ALL_LOOPS: &[&str] =
    &["for_statement", "for_in_statement", "while_statement", "do_statement"];
use super::JS_FUNCTIONS as FUNCS;

/// Names of calls that wait: a retry loop calling one of these already backs off.
pub(super) fn is_wait_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["sleep", "delay", "wait", "backoff", "pause", "settimeout", "timeout", "throttle"]
        .iter()
        .any(|w| n.contains(w))
}

/// Visits the nodes of `n` in its own scope: nested functions are not entered.
fn walk_scope<'t>(n: Node<'t>, f: &mut impl FnMut(Node<'t>)) {
    super::walk_scope(n, FUNCS, f);
}

/// The loop a `continue`/`break` inside `n`'s scope belongs to.
fn target_loop(n: Node<'_>) -> Option<Node<'_>> {
    std::iter::successors(n.parent(), |p| p.parent())
        .take_while(|p| !FUNCS.contains(&p.kind()))
        .find(|p| {
            ALL_LOOPS.contains(&p.kind())
                || (n.kind() == "break_statement" && p.kind() == "switch_statement")
        })
}

/// The name a call is made by: `fetch`, `request`, `client.get` → `get`.
fn callee_name<'a>(f: &'a SourceFile, call: Node<'_>) -> &'a str {
    let Some(func) = call.child_by_field_name("function") else { return "" };
    match func.kind() {
        "member_expression" => func.child_by_field_name("property").map_or("", |p| f.text_of(p)),
        _ => f.text_of(func),
    }
}

/// Whether the scope waits somewhere: an awaited timer or a call whose name says it waits.
fn waits(f: &SourceFile, scope: Node<'_>) -> bool {
    let mut found = false;
    walk_scope(scope, &mut |n| {
        if n.kind() == "call_expression" && is_wait_name(callee_name(f, n)) {
            found = true;
        }
    });
    found
}

/// Whether `n` always leaves the flow it is in (return, throw, continue, break — or a block,
/// `if`/`else` or `try`/`catch` whose every path does).
fn always_jumps(n: Node<'_>) -> bool {
    match n.kind() {
        "return_statement" | "throw_statement" | "continue_statement" | "break_statement" => true,
        "statement_block" => {
            let mut c = n.walk();
            n.named_children(&mut c)
                .filter(|s| s.kind() != "comment")
                .last()
                .is_some_and(always_jumps)
        }
        "if_statement" => {
            let cons = n.child_by_field_name("consequence");
            let alt = n.child_by_field_name("alternative").and_then(|a| a.named_child(0));
            cons.is_some_and(always_jumps) && alt.is_some_and(always_jumps)
        }
        "try_statement" => {
            let body = n.child_by_field_name("body");
            let handler =
                n.child_by_field_name("handler").and_then(|h| h.child_by_field_name("body"));
            let finalizer = n.child_by_field_name("finalizer").and_then(|h| h.named_child(0));
            finalizer.is_some_and(always_jumps)
                || (body.is_some_and(always_jumps) && handler.is_none_or(always_jumps))
        }
        _ => false,
    }
}

/// Whether `n` sits in a failure branch below `top`: inside an `if` or a `catch`.
fn in_branch(n: Node<'_>, top: Node<'_>) -> bool {
    std::iter::successors(n.parent(), |p| p.parent())
        .take_while(|p| p.id() != top.id())
        .any(|p| matches!(p.kind(), "if_statement" | "catch_clause" | "ternary_expression"))
}

/// How the code holds the attempt's response.
#[derive(Clone, Debug)]
enum Binding {
    /// `const res = await …`: the variable.
    Name(String),
    /// `const { status, body } = await …`: the object pattern (byte range), and the name its
    /// `headers` key is bound to, when it has one.
    Pattern { start: usize, end: usize, headers: Option<String> },
}

/// A declaration of the awaited call's result.
#[derive(Clone, Debug)]
struct Decl {
    binding: Binding,
    /// The declaration statement (byte range).
    stmt: (usize, usize),
    /// The block the statement is in (byte range): where its name is visible.
    block: (usize, usize),
}

fn declarations(f: &SourceFile, scope: Node<'_>) -> Vec<Decl> {
    let mut out = Vec::new();
    walk_scope(scope, &mut |n| {
        if !matches!(n.kind(), "lexical_declaration" | "variable_declaration") {
            return;
        }
        let Some(d) = n.named_child(0).filter(|d| d.kind() == "variable_declarator") else {
            return;
        };
        let (Some(name), Some(value)) =
            (d.child_by_field_name("name"), d.child_by_field_name("value"))
        else {
            return;
        };
        if value.kind() != "await_expression" {
            return;
        }
        let binding = match name.kind() {
            "identifier" => Binding::Name(f.text_of(name).to_owned()),
            "object_pattern" => {
                let mut headers = None;
                let mut c = name.walk();
                for p in name.named_children(&mut c) {
                    match p.kind() {
                        "shorthand_property_identifier_pattern" if f.text_of(p) == "headers" => {
                            headers = Some("headers".to_owned());
                        }
                        "pair_pattern" => {
                            let key = p.child_by_field_name("key").map(|k| f.text_of(k));
                            let val = p.child_by_field_name("value");
                            if key == Some("headers")
                                && val.is_some_and(|v| v.kind() == "identifier")
                            {
                                headers = val.map(|v| f.text_of(v).to_owned());
                            }
                        }
                        _ => {}
                    }
                }
                Binding::Pattern { start: name.start_byte(), end: name.end_byte(), headers }
            }
            _ => return,
        };
        let block = n.parent().map_or((0, 0), |b| (b.start_byte(), b.end_byte()));
        out.push(Decl { binding, stmt: (n.start_byte(), n.end_byte()), block });
    });
    out
}

/// A place the code goes round again: where the wait goes.
#[derive(Clone, Debug)]
struct Point {
    /// Insert before this byte (a `continue`, the recursive call's statement, or the body's
    /// closing brace).
    at: usize,
    /// The statement is alone on its line (else it is wrapped in braces with the wait).
    own_line: bool,
    /// End of the statement (for wrapping).
    end: usize,
    /// The `catch` parameter in scope, if any.
    caught: Option<String>,
    /// End of the body (the wait goes on its own line before the closing brace).
    body_end: bool,
}

/// A matched retry.
struct Match<'t> {
    /// The loop, or the function that calls itself.
    node: Node<'t>,
    /// The loop body or function body.
    body: Node<'t>,
    points: Vec<Point>,
    /// The attempt counter, when the code has one.
    attempt: Option<String>,
    decls: Vec<Decl>,
    recursion: bool,
}

fn caught_at(f: &SourceFile, n: Node<'_>, top: Node<'_>) -> Option<String> {
    std::iter::successors(n.parent(), |p| p.parent())
        .take_while(|p| p.id() != top.id())
        .find(|p| p.kind() == "catch_clause")
        .and_then(|c| c.child_by_field_name("parameter"))
        .filter(|p| p.kind() == "identifier")
        .map(|p| f.text_of(p).to_owned())
}

fn point(f: &SourceFile, stmt: Node<'_>, top: Node<'_>) -> Point {
    Point {
        at: stmt.start_byte(),
        own_line: f
            .line_text(stmt.start_byte())
            .trim_start()
            .starts_with(f.text_of(stmt).lines().next().unwrap_or("")),
        end: stmt.end_byte(),
        caught: caught_at(f, stmt, top),
        body_end: false,
    }
}

/// Whether the scope awaits a call that is not a timer: the attempt.
fn awaits_a_call(f: &SourceFile, scope: Node<'_>, skip: Option<&str>) -> bool {
    let mut found = false;
    walk_scope(scope, &mut |n| {
        if n.kind() == "await_expression"
            && let Some(call) = n.named_child(0).filter(|c| c.kind() == "call_expression")
        {
            let name = callee_name(f, call);
            if !is_wait_name(name) && Some(name) != skip {
                found = true;
            }
        }
    });
    found
}

fn loop_match<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    if !LOOPS.contains(&n.kind()) {
        return None;
    }
    let body = n.child_by_field_name("body")?;
    if body.kind() != "statement_block" || waits(f, n) || !awaits_a_call(f, body, None) {
        return None;
    }
    let mut exits = false;
    let mut points = Vec::new();
    walk_scope(body, &mut |m| match m.kind() {
        "return_statement" => exits = true,
        "break_statement" if target_loop(m).is_some_and(|l| l.id() == n.id()) => exits = true,
        "continue_statement" if target_loop(m).is_some_and(|l| l.id() == n.id()) => {
            points.push(point(f, m, body));
        }
        _ => {}
    });
    if !exits {
        return None;
    }
    let mut c = body.walk();
    let last = body.named_children(&mut c).filter(|s| s.kind() != "comment").last();
    let falls_through = !last.is_some_and(always_jumps);
    // Going round again has to be what happens on failure: a `continue` in a branch, or falling
    // off the end when the way out is itself conditional.
    let mut conditional = false;
    walk_scope(body, &mut |m| {
        if m.kind() == "continue_statement"
            && target_loop(m).is_some_and(|l| l.id() == n.id())
            && in_branch(m, body)
        {
            conditional = true;
        }
    });
    if !conditional && !falls_through {
        return None;
    }
    if falls_through {
        points.push(Point {
            at: body.end_byte() - 1,
            own_line: true,
            end: body.end_byte() - 1,
            caught: None,
            body_end: true,
        });
    }
    let attempt = if n.kind() == "for_statement" {
        n.child_by_field_name("initializer")
            .and_then(|i| i.named_child(0))
            .and_then(|d| d.child_by_field_name("name"))
            .filter(|v| v.kind() == "identifier")
            .map(|v| f.text_of(v).to_owned())
    } else {
        None
    };
    // A counter that indexes a list, or runs to a length, walks items: not a retry.
    if let Some(a) = &attempt {
        let cond = n.child_by_field_name("condition").map_or("", |c| f.text_of(c));
        let mut indexes = cond.contains(".length") || cond.contains(".size");
        walk_scope(body, &mut |m| {
            if m.kind() == "subscript_expression"
                && m.child_by_field_name("index").is_some_and(|i| f.text_of(i) == a)
            {
                indexes = true;
            }
        });
        if indexes {
            return None;
        }
    }
    Some(Match { node: n, body, points, attempt, decls: declarations(f, body), recursion: false })
}

/// The name a function is called by: its own, or the variable it is assigned to.
fn function_name<'a>(f: &'a SourceFile, n: Node<'_>) -> Option<&'a str> {
    if let Some(name) = n.child_by_field_name("name") {
        return Some(f.text_of(name));
    }
    let p = n.parent()?;
    (p.kind() == "variable_declarator")
        .then(|| p.child_by_field_name("name"))
        .flatten()
        .map(|v| f.text_of(v))
}

fn recursion_match<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    if !FUNCS.contains(&n.kind()) {
        return None;
    }
    let name = function_name(f, n)?.to_owned();
    let body = n.child_by_field_name("body").filter(|b| b.kind() == "statement_block")?;
    if waits(f, body) || !awaits_a_call(f, body, Some(&name)) {
        return None;
    }
    let mut points = Vec::new();
    let mut counter = None;
    walk_scope(body, &mut |m| {
        if m.kind() != "call_expression" {
            return;
        }
        let func = m.child_by_field_name("function");
        let called = func.map(|x| match x.kind() {
            "member_expression"
                if x.child_by_field_name("object").is_some_and(|o| o.kind() == "this") =>
            {
                x.child_by_field_name("property").map_or("", |p| f.text_of(p))
            }
            _ => f.text_of(x),
        });
        if called != Some(name.as_str()) || !in_branch(m, body) {
            return;
        }
        // The statement the call is in.
        let Some(stmt) = std::iter::successors(Some(m), |p| p.parent())
            .find(|p| matches!(p.kind(), "return_statement" | "expression_statement"))
        else {
            return;
        };
        // `attempt + 1` among the arguments: the counter.
        if let Some(args) = m.child_by_field_name("arguments") {
            let mut c = args.walk();
            for a in args.named_children(&mut c) {
                if a.kind() == "binary_expression"
                    && a.child_by_field_name("operator").is_some_and(|o| f.text_of(o) == "+")
                    && let Some(l) =
                        a.child_by_field_name("left").filter(|l| l.kind() == "identifier")
                {
                    counter = Some(f.text_of(l).to_owned());
                }
            }
        }
        points.push(point(f, stmt, body));
    });
    if points.is_empty() {
        return None;
    }
    Some(Match {
        node: n,
        body,
        points,
        attempt: counter,
        decls: declarations(f, body),
        recursion: true,
    })
}

fn matches<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    loop_match(f, n).or_else(|| recursion_match(f, n))
}

impl Pattern for JsRetry {
    fn name(&self) -> &'static str {
        "js-retry-without-backoff"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        if !f.lang.is_js() {
            return Vec::new();
        }
        super::sites_in(f, |n| {
            let m = matches(f, n)?;
            let what = if m.recursion {
                "a function that calls itself again on failure at once, ignoring Retry-After"
            } else {
                "a retry loop that sends the next attempt at once, ignoring Retry-After"
            };
            Some(Site::at(
                self.name(),
                f,
                m.node,
                what.into(),
                vec![FixKind::Retry],
                identifiers(f.text_of(m.body)),
            ))
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let m = super::find_at(f, site, |n| matches(f, n))?;
        let style = Style::of(&f.text, f.lang);
        let semi = if style.semicolons { ";" } else { "" };
        let ts = matches!(f.lang, crate::repo::Lang::TypeScript | crate::repo::Lang::Tsx);
        let helper = fresh_name(&f.text, "backoffBeforeRetry");
        let counter = m.attempt.clone().unwrap_or_else(|| fresh_name(&f.text, "attempt"));
        // With a counter of its own the code counts; else one is added before the loop (a
        // recursion without one backs off from the first step each time).
        let arg = match (&m.attempt, m.recursion) {
            (Some(a), _) => a.clone(),
            (None, false) => format!("{counter}++"),
            (None, true) => "0".into(),
        };
        let mut inserts: Vec<(usize, String)> = Vec::new();
        // Where the response comes from: the last declaration before the first retry point,
        // when every point can see it; else hoisted into a variable the points can see.
        let first = m.points.iter().map(|p| p.at).min().unwrap_or(0);
        let decl = m.decls.iter().rfind(|d| d.stmt.1 <= first).cloned();
        let visible = |d: &Decl, at: usize| d.block.0 <= at && at < d.block.1;
        let mut hoisted = None;
        let source = match &decl {
            None => None,
            Some(d) => {
                let value = match &d.binding {
                    Binding::Name(n) => n.clone(),
                    Binding::Pattern { headers: Some(h), .. } => h.clone(),
                    Binding::Pattern { start, end, headers: None } => {
                        // Add the headers to the pattern: before a rest element, else last.
                        let body_text = f.text_of(m.body);
                        let name = if contains_word(body_text, "headers") {
                            fresh_name(body_text, "responseHeaders")
                        } else {
                            "headers".into()
                        };
                        let entry = if name == "headers" {
                            name.clone()
                        } else {
                            format!("headers: {name}")
                        };
                        let inner = &f.text[*start + 1..*end - 1];
                        let at = match inner.rfind("...") {
                            Some(i) => {
                                inserts.push((*start + 1 + i, format!("{entry}, ")));
                                None
                            }
                            None => Some(*start + 1 + inner.trim_end().trim_end_matches(',').len()),
                        };
                        if let Some(at) = at {
                            inserts.push((at, format!(", {entry}")));
                        }
                        name
                    }
                };
                if m.points.iter().all(|p| visible(d, p.at)) {
                    Some(value)
                } else {
                    let var = fresh_name(&f.text, "retryFrom");
                    let ind = f.indent_at(d.stmt.0).to_owned();
                    inserts.push((d.stmt.1, format!("\n{ind}{var} = {value}{semi}")));
                    hoisted = Some(var.clone());
                    Some(var)
                }
            }
        };
        if let Some(var) = &hoisted {
            let ind = format!("{}{}", f.indent_at(m.body.start_byte()), style.indent);
            let open = m.body.start_byte() + 1;
            let ty = if ts { ": unknown" } else { "" };
            inserts.push((open, format!("\n{ind}let {var}{ty} = null{semi}")));
        }
        for p in &m.points {
            let from = match (&source, &p.caught) {
                (Some(s), Some(e)) => format!("{s} || {e}"),
                (Some(s), None) => s.clone(),
                (None, Some(e)) => e.clone(),
                (None, None) => "null".into(),
            };
            let wait = format!("await {helper}({from}, {arg}){semi}");
            if p.body_end {
                let close_ind = f.indent_at(m.body.start_byte()).to_owned();
                inserts.push((p.at, format!("{}{wait}\n{close_ind}", style.indent)));
            } else if p.own_line {
                let ind = f.indent_at(p.at).to_owned();
                inserts.push((p.at, format!("{wait}\n{ind}")));
            } else {
                inserts.push((p.at, format!("{{ {wait} ")));
                inserts.push((p.end, " }".into()));
            }
        }
        let mut text = f.text.clone();
        inserts.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
        for (p, s) in inserts {
            text.insert_str(p, &s);
        }
        if m.attempt.is_none() && !m.recursion {
            let ind = f.indent_at(m.node.start_byte()).to_owned();
            let at = m.node.start_byte() - ind.len();
            text.insert_str(at, &format!("{ind}let {counter} = 0{semi}\n"));
        }
        let q = style.quote;
        let i = &style.indent;
        let helper_src = format!(
            "\n// Waits before the next attempt: the server's Retry-After when it sent one, else exponential\n\
             // back-off with full jitter (0.5 s base, 30 s cap). `from` is what the code has of the\n\
             // failure: a response, its headers, or an error carrying the response. Added by af to keep\n\
             // {}.\n\
             async function {helper}{sig} {{\n\
             {i}const res = from && from.response ? from.response : from{semi}\n\
             {i}const headers = res && res.headers ? res.headers : res{semi}\n\
             {i}const header = !headers ? null : typeof headers.get === {q}function{q} ? headers.get({q}retry-after{q}) : headers[{q}retry-after{q}]{semi}\n\
             {i}let ms = NaN{semi}\n\
             {i}if (header) {{\n{i}{i}const secs = Number(header){semi}\n{i}{i}ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(header) - Date.now(){semi}\n{i}}}\n\
             {i}if (!(ms >= 0)) ms = Math.random() * Math.min(30000, 500 * 2 ** attempt){semi}\n\
             {i}await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 60000))){semi}\n}}\n",
            fix.metric,
            sig = if ts {
                // Whatever the client library's response or error type is.
                "(from: any, attempt: number): Promise<void>"
            } else {
                "(from, attempt)"
            }
        );
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&helper_src);
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Lang;

    fn sites(src: &str) -> Vec<Site> {
        let f = SourceFile::new("a.js", Lang::JavaScript, src.into()).expect("parses");
        let repo = Repo::from_files(std::path::Path::new("."), Vec::new());
        JsRetry.find(&f, &repo)
    }

    #[test]
    fn retry_shapes_are_recognized_by_structure() {
        // Statuses in a Set outside the loop, the retry a `continue` from a `catch`.
        assert_eq!(sites("const R = new Set([429]);\nasync function g(u) {\n  for (let a = 1; a <= 5; a++) {\n    try {\n      const { statusCode, body } = await request(u);\n      if (R.has(statusCode)) throw new Error('x');\n      return await body.json();\n    } catch (err) {\n      if (a < 5) continue;\n      throw err;\n    }\n  }\n}\n").len(), 1);
        // while (true), falling off the end when the response is not ok.
        assert_eq!(sites("async function g(u) {\n  while (true) {\n    const r = await fetch(u);\n    if (r.ok) return r;\n  }\n}\n").len(), 1);
        // Recursion from a status branch.
        assert_eq!(sites("async function g(u, n = 0) {\n  const r = await fetch(u);\n  if (r.status === 429 && n < 3) return g(u, n + 1);\n  return r;\n}\n").len(), 1);
    }

    #[test]
    fn loops_that_are_not_retries_are_left_alone() {
        // A loop over items skipping failures.
        assert!(sites("async function g(ids) {\n  for (const id of ids) {\n    try { await fetch(id); } catch { continue; }\n  }\n}\n").is_empty());
        // A retry that already sleeps.
        assert!(sites("async function g(u) {\n  for (let a = 0; a < 3; a++) {\n    const r = await fetch(u);\n    if (r.ok) return r;\n    await sleep(100 * 2 ** a);\n  }\n}\n").is_empty());
        // An index loop over items.
        assert!(sites("async function g(ids) {\n  for (let i = 0; i < ids.length; i++) {\n    const r = await fetch(ids[i]);\n    if (!r.ok) return null;\n  }\n}\n").is_empty());
        // A polling loop that never leaves.
        assert!(
            sites("async function g(u) {\n  for (;;) {\n    await fetch(u);\n  }\n}\n").is_empty()
        );
        // A worker draining a queue: leaves when the queue is empty, but has no failure branch
        // that goes round — every item is new work, not a repeat.
        assert!(sites("async function w(q) {\n  while (q.length) {\n    const id = q.shift();\n    try { await get(id); } catch { failed++; }\n  }\n}\n").is_empty());
    }
}
