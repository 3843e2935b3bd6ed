//! Python: a retry that tries again at once — no `Retry-After`, no back-off. Recognized by
//! structure, whatever the statuses are called or where they are kept (a constant set, a
//! tuple, an exception type):
//!
//! - a loop that is not over a collection (`for attempt in range(N)`, `while True`,
//!   `while attempt < N`) around a call, which leaves on success (`return`/`break`) and goes
//!   round again on failure: a `continue` in an `except` or `if`, an `except` block that falls
//!   through to the end of the body, or a body that ends without leaving;
//!
//! with no wait in between (no `time.sleep`, `asyncio.sleep`, back-off helper).
//!
//! The codemod waits before each next attempt — `time.sleep` in a function, `await
//! asyncio.sleep` in a coroutine — for the server's `Retry-After` when it sent one (seconds or
//! an HTTP date), else exponential back-off with full jitter. The failure is taken from where
//! the code has it: the exception an `except` holds (requests' and httpx's errors carry the
//! response, aiohttp's and urllib's the headers; an `as` name is added when the clause has
//! none), else the last response the loop assigned.

use tree_sitter::Node;

use super::js_retry::is_wait_name;
use super::py_gather::prologue_end;
use super::{FileEdit, Fix, Pattern, Site};
use crate::repo::{Lang, Repo, SourceFile, Style, fresh_name};

/// The Python retry-without-back-off pattern.
pub struct PyRetry;

const LOOPS: &[&str] = &["for_statement", "while_statement"];
const SCOPES: &[&str] = &["function_definition", "lambda", "class_definition"];
/// Calls that are not requests: a loop making only these retries nothing.
const BUILTINS: &[&str] = &[
    "range",
    "len",
    "print",
    "int",
    "str",
    "float",
    "bool",
    "dict",
    "list",
    "set",
    "tuple",
    "isinstance",
    "min",
    "max",
    "sum",
    "format",
    "repr",
    "enumerate",
    "zip",
    "sorted",
];

/// Visits the nodes of `n` in its own scope: nested functions and classes are not entered.
fn walk_scope<'t>(n: Node<'t>, f: &mut impl FnMut(Node<'t>)) {
    super::walk_scope(n, SCOPES, f);
}

/// The loop a `continue`/`break` (or an `except` clause) belongs to.
fn target_loop(n: Node<'_>) -> Option<Node<'_>> {
    std::iter::successors(n.parent(), |p| p.parent())
        .take_while(|p| !SCOPES.contains(&p.kind()))
        .find(|p| LOOPS.contains(&p.kind()))
}

/// `requests.get` → `get`, `sleep` → `sleep`.
fn callee_name<'a>(f: &'a SourceFile, call: Node<'_>) -> &'a str {
    let Some(func) = call.child_by_field_name("function") else { return "" };
    match func.kind() {
        "attribute" => func.child_by_field_name("attribute").map_or("", |a| f.text_of(a)),
        _ => f.text_of(func),
    }
}

/// Whether `n` always leaves the flow it is in.
fn always_jumps(n: Node<'_>) -> bool {
    match n.kind() {
        "return_statement" | "raise_statement" | "continue_statement" | "break_statement" => true,
        "block" => {
            let mut c = n.walk();
            n.named_children(&mut c)
                .filter(|s| s.kind() != "comment")
                .last()
                .is_some_and(always_jumps)
        }
        "if_statement" => {
            let cons = n.child_by_field_name("consequence");
            let mut c = n.walk();
            let alts: Vec<Node<'_>> = n.children_by_field_name("alternative", &mut c).collect();
            let has_else = alts.iter().any(|a| a.kind() == "else_clause");
            cons.is_some_and(always_jumps)
                && has_else
                && alts.iter().all(|a| {
                    a.child_by_field_name("body")
                        .or_else(|| a.child_by_field_name("consequence"))
                        .is_some_and(always_jumps)
                })
        }
        "try_statement" => {
            let mut c = n.walk();
            let kids: Vec<Node<'_>> = n.named_children(&mut c).collect();
            let fin = kids.iter().find(|k| k.kind() == "finally_clause");
            if fin.is_some_and(|k| k.named_child(0).is_some_and(always_jumps)) {
                return true;
            }
            let body = n.child_by_field_name("body");
            body.is_some_and(always_jumps)
                && kids
                    .iter()
                    .filter(|k| k.kind() == "except_clause")
                    .all(|k| except_block(*k).is_some_and(always_jumps))
        }
        _ => false,
    }
}

/// The block of an `except` clause.
fn except_block(n: Node<'_>) -> Option<Node<'_>> {
    let mut c = n.walk();
    n.named_children(&mut c).find(|k| k.kind() == "block")
}

/// Whether `n` sits in a failure branch below `top`: inside an `if` or an `except`.
fn in_branch(n: Node<'_>, top: Node<'_>) -> bool {
    std::iter::successors(n.parent(), |p| p.parent())
        .take_while(|p| p.id() != top.id())
        .any(|p| matches!(p.kind(), "if_statement" | "except_clause" | "conditional_expression"))
}

/// The `except` clause `n` is in, below `top`.
fn enclosing_except<'t>(n: Node<'t>, top: Node<'t>) -> Option<Node<'t>> {
    std::iter::successors(n.parent(), |p| p.parent())
        .take_while(|p| p.id() != top.id())
        .find(|p| p.kind() == "except_clause")
}

/// Where an attempt goes round again, and what the code has of the failure there.
struct Point {
    /// Byte offset of the statement the wait goes before (a `continue`), or after which it
    /// goes (the end of a block that falls through).
    at: usize,
    /// The wait goes after the last statement of a block (fall-through), not before `at`.
    after: bool,
    /// A `continue` that is the whole body of a one-line `if x: continue`: the block's range,
    /// rewritten as an indented block.
    inline_block: Option<(usize, usize)>,
    /// A `continue` sharing its line with other statements (`x = 1; continue`).
    same_line: bool,
    /// For a fall-through: a statement of the block, whose indentation the wait takes.
    indent_from: usize,
    /// The `except` clause the point is in: (its alias, or where to add one when it has a type).
    except: Option<(Option<String>, Option<usize>)>,
}

struct Match<'t> {
    node: Node<'t>,
    body: Node<'t>,
    points: Vec<Point>,
    /// `for attempt in range(…)`: the counter (`_` counts as none).
    attempt: Option<String>,
    /// The `_` of `for _ in range(…)`, to name.
    underscore: Option<(usize, usize)>,
    /// Responses the loop binds: (name, byte offset where bound).
    responses: Vec<(String, usize)>,
    /// Inside `async def`.
    is_async: bool,
}

fn loop_match<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    if !LOOPS.contains(&n.kind()) {
        return None;
    }
    let body = n.child_by_field_name("body")?;
    let mut attempt = None;
    let mut underscore = None;
    if n.kind() == "for_statement" {
        // Only a counter: `range(…)` / `count()`, not over a collection or its indices.
        let right = n.child_by_field_name("right")?;
        let name = (right.kind() == "call").then(|| callee_name(f, right))?;
        if !matches!(name, "range" | "count") || f.text_of(right).contains("len(") {
            return None;
        }
        let left = n.child_by_field_name("left").filter(|l| l.kind() == "identifier")?;
        match f.text_of(left) {
            "_" => underscore = Some((left.start_byte(), left.end_byte())),
            v => attempt = Some(v.to_owned()),
        }
        // The counter indexes something: it walks items.
        if let Some(a) = &attempt {
            let mut indexes = false;
            walk_scope(body, &mut |m| {
                if m.kind() == "subscript"
                    && m.child_by_field_name("subscript").is_some_and(|s| f.text_of(s) == a)
                {
                    indexes = true;
                }
            });
            if indexes {
                return None;
            }
        }
    }
    let mut calls = false;
    let mut waits = false;
    let mut leaves = false;
    let mut points = Vec::new();
    let mut responses = Vec::new();
    walk_scope(body, &mut |m| match m.kind() {
        "call" => {
            let name = callee_name(f, m);
            if is_wait_name(name) {
                waits = true;
            } else if !BUILTINS.contains(&name) {
                calls = true;
            }
        }
        "return_statement" => leaves = true,
        "break_statement" if target_loop(m).is_some_and(|l| l.id() == n.id()) => leaves = true,
        "continue_statement"
            if target_loop(m).is_some_and(|l| l.id() == n.id()) && in_branch(m, body) =>
        {
            points.push(continue_point(f, m, body));
        }
        "assignment" => {
            let right = m.child_by_field_name("right");
            let is_call = right.is_some_and(|r| {
                r.kind() == "call"
                    || (r.kind() == "await" && r.named_child(0).is_some_and(|c| c.kind() == "call"))
            });
            if let (true, Some(l)) =
                (is_call, m.child_by_field_name("left").filter(|l| l.kind() == "identifier"))
            {
                responses.push((f.text_of(l).to_owned(), m.end_byte()));
            }
        }
        "as_pattern" if m.parent().is_some_and(|p| p.kind() == "with_item") => {
            if let Some(t) = m.child_by_field_name("alias") {
                responses.push((f.text_of(t).trim().to_owned(), t.end_byte()));
            }
        }
        _ => {}
    });
    if !calls || waits || !leaves {
        return None;
    }
    // Falling through: an `except` that does not leave, when its `try` ends the body.
    let mut c = body.walk();
    let stmts: Vec<Node<'_>> =
        body.named_children(&mut c).filter(|s| s.kind() != "comment").collect();
    let last = *stmts.last()?;
    if last.kind() == "try_statement" {
        let mut c = last.walk();
        for k in last.named_children(&mut c).filter(|k| k.kind() == "except_clause") {
            if let Some(b) = except_block(k).filter(|b| !always_jumps(*b)) {
                points.push(Point {
                    at: b.end_byte(),
                    after: true,
                    inline_block: None,
                    same_line: false,
                    indent_from: b.named_child(0).map_or(b.start_byte(), |s| s.start_byte()),
                    except: Some(except_alias(f, k)),
                });
            }
        }
    } else if !always_jumps(last) && points.is_empty() {
        points.push(Point {
            at: last.end_byte(),
            after: true,
            inline_block: None,
            same_line: false,
            indent_from: last.start_byte(),
            except: None,
        });
    }
    if points.is_empty() {
        return None;
    }
    let is_async = std::iter::successors(n.parent(), |p| p.parent())
        .find(|p| p.kind() == "function_definition")
        .is_some_and(|d| f.text_of(d).starts_with("async"));
    Some(Match { node: n, body, points, attempt, underscore, responses, is_async })
}

/// The `except` clause's alias, or where ` as NAME` can go (after its type).
fn except_alias(f: &SourceFile, k: Node<'_>) -> (Option<String>, Option<usize>) {
    if let Some(a) = k.child_by_field_name("alias") {
        return (Some(f.text_of(a).to_owned()), None);
    }
    let mut c = k.walk();
    let Some(ty) = k.children_by_field_name("value", &mut c).last() else { return (None, None) };
    // `except E as e` parses as an `as_pattern` value in tree-sitter-python 0.25.
    if ty.kind() == "as_pattern"
        && let Some(a) = ty.child_by_field_name("alias")
    {
        return (Some(f.text_of(a).trim().to_owned()), None);
    }
    (None, Some(ty.end_byte()))
}

fn continue_point(f: &SourceFile, m: Node<'_>, body: Node<'_>) -> Point {
    let line_start = f.text[..m.start_byte()].rfind('\n').map_or(0, |i| i + 1);
    let own_line = f.text[line_start..m.start_byte()].trim().is_empty();
    let block = m.parent().filter(|p| p.kind() == "block");
    let inline_block = block
        .filter(|b| !own_line && b.named_child_count() == 1)
        .map(|b| (b.start_byte(), b.end_byte()));
    Point {
        at: m.start_byte(),
        after: false,
        inline_block,
        same_line: !own_line && inline_block.is_none(),
        indent_from: m.start_byte(),
        except: enclosing_except(m, body).map(|k| except_alias(f, k)),
    }
}

/// Whether the module imports `module` as itself (`import time`, `import os, time`).
fn imports(f: &SourceFile, module: &str) -> bool {
    f.text.lines().any(|l| {
        let l = l.trim();
        l.strip_prefix("import ").is_some_and(|rest| rest.split(',').any(|m| m.trim() == module))
    })
}

impl Pattern for PyRetry {
    fn name(&self) -> &'static str {
        "py-retry-without-backoff"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        super::retry_sites(
            self.name(),
            f,
            |l| l == Lang::Python,
            |n| loop_match(f, n).map(|m| (m.node, m.body)),
        )
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let m = super::find_at(f, site, |n| loop_match(f, n))?;
        let style = Style::of(&f.text, f.lang);
        let i = style.indent.clone();
        let helper = fresh_name(&f.text, "retry_delay");
        let (counter, counts) = match &m.attempt {
            Some(a) => (a.clone(), false),
            None => (fresh_name(&f.text, "attempt"), m.underscore.is_none()),
        };
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        if let Some((s, e)) = m.underscore {
            edits.push((s, e, counter.clone()));
        }
        for p in &m.points {
            let failure = match &p.except {
                Some((Some(alias), _)) => alias.clone(),
                Some((None, Some(at))) => {
                    let name = fresh_name(f.text_of(m.body), "error");
                    if !edits.iter().any(|e| e.0 == *at && e.2.starts_with(" as ")) {
                        edits.push((*at, *at, format!(" as {name}")));
                    }
                    name
                }
                Some((None, None)) => "None".into(),
                None => m
                    .responses
                    .iter()
                    .rfind(|(_, at)| *at <= p.at)
                    .map_or_else(|| "None".to_owned(), |(n, _)| n.clone()),
            };
            let sleep = if m.is_async {
                format!("await asyncio.sleep({helper}({failure}, {counter}))")
            } else {
                format!("time.sleep({helper}({failure}, {counter}))")
            };
            let lines: Vec<String> =
                if counts { vec![format!("{counter} += 1"), sleep] } else { vec![sleep] };
            if p.after {
                let ind = f.indent_at(p.indent_from).to_owned();
                let text: String = lines.iter().map(|l| format!("\n{ind}{l}")).collect();
                edits.push((p.at, p.at, text));
            } else if let Some((s, e)) = p.inline_block {
                // `if x: continue` → an indented block, from just after the colon.
                let ind = format!("{}{i}", f.indent_at(s));
                let text: String = lines.iter().map(|l| format!("\n{ind}{l}")).collect();
                let from = f.text[..s].trim_end().len();
                edits.push((from, e, format!("{text}\n{ind}continue")));
            } else if p.same_line {
                edits.push((p.at, p.at, format!("{}; ", lines.join("; "))));
            } else {
                let ind = f.indent_at(p.at).to_owned();
                let text: String = lines.iter().map(|l| format!("{l}\n{ind}")).collect();
                edits.push((p.at, p.at, text));
            }
        }
        if counts {
            let ind = f.indent_at(m.node.start_byte()).to_owned();
            let at = m.node.start_byte() - ind.len();
            edits.push((at, at, format!("{ind}{counter} = 0\n")));
        }
        // The helper and the imports it needs, after the module's imports.
        let mut block = String::new();
        let mut needed = vec!["email.utils", "random", "time"];
        if m.is_async {
            needed.insert(0, "asyncio");
        }
        for module in needed {
            if !imports(f, module) {
                block.push_str(&format!("import {module}\n"));
            }
        }
        let q = style.quote;
        block.push_str(&format!(
            "\n\n# Seconds to wait before the next attempt: the server's Retry-After when it sent one (seconds\n\
             # or an HTTP date), else exponential back-off with full jitter (0.5 s base, 30 s cap).\n\
             # `failure` is what the code has of it: a response, or an error carrying the response or its\n\
             # headers. Added by af to keep {}.\n\
             def {helper}(failure, attempt):\n\
             {i}headers = getattr(failure, {q}headers{q}, None)\n\
             {i}if headers is None:\n\
             {i}{i}headers = getattr(getattr(failure, {q}response{q}, None), {q}headers{q}, None)\n\
             {i}value = None\n\
             {i}if headers is not None:\n\
             {i}{i}value = headers.get({q}Retry-After{q}) or headers.get({q}retry-after{q})\n\
             {i}if value:\n\
             {i}{i}try:\n\
             {i}{i}{i}return min(60.0, max(0.0, float(value)))\n\
             {i}{i}except ValueError:\n\
             {i}{i}{i}try:\n\
             {i}{i}{i}{i}when = email.utils.parsedate_to_datetime(value)\n\
             {i}{i}{i}{i}return min(60.0, max(0.0, when.timestamp() - time.time()))\n\
             {i}{i}{i}except (TypeError, ValueError):\n\
             {i}{i}{i}{i}pass\n\
             {i}return random.uniform(0, min(30.0, 0.5 * 2**attempt))\n",
            fix.metric
        ));
        let at = prologue_end(f);
        // Two blank lines after the function, counting those already there.
        let blank = f.text[at..].chars().take_while(|c| *c == '\n').count();
        block.push_str(&"\n".repeat(2usize.saturating_sub(blank)));
        edits.push((at, at, block));
        edits.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
        let mut text = f.text.clone();
        for (s, e, new) in edits {
            text.replace_range(s..e, &new);
        }
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}
