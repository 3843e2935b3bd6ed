//! JS/TS: one call per item, all at once — unbounded fan-out. Three shapes:
//!
//! - `Promise.all(items.map(fn))` (and `allSettled`);
//! - `Promise.all(pending)` over an array a loop over the items filled with `pending.push(call)`;
//! - `items.forEach(async (item) => …)`, which starts every call and waits for none.
//!
//! The codemod keeps the call site's meaning (results in input order, `allSettled` shape kept)
//! through a small helper that runs at most N at a time, or starts at most R per second when
//! the limit is a rate. A pushed array whose loop only pushes becomes the same `map`-shaped
//! call (the array and loop go); one whose loop does more pushes thunks instead, run by the
//! helper.

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers, splice};
use crate::repo::{Lang, Repo, SourceFile, Style, fresh_name};

/// The JS/TS unbounded fan-out pattern.
pub struct JsFanout;

use super::JS_FUNCTIONS as FUNCS;

/// A `for (const x of items)` loop filling an array with one call per item.
struct Pushed<'t> {
    /// `const pending = []`.
    decl: Node<'t>,
    /// The loop.
    looped: Node<'t>,
    /// The pushed call.
    elem: Node<'t>,
    /// The array's name.
    array: String,
    /// `(x, items)` when the loop only pushes and the array is used for nothing else: the
    /// loop and the array can go.
    clean: Option<(Node<'t>, Node<'t>)>,
}

enum Shape<'t> {
    /// `Promise.all(items.map(fn))`: the items and the function.
    Map { items: Node<'t>, func: Node<'t> },
    /// `Promise.all(pending)` over a pushed array.
    Pushed(Pushed<'t>),
    /// `items.forEach(async fn)`: the items, the function, and whether the statement is in an
    /// async function (the bounded call can then be awaited).
    ForEach { items: Node<'t>, func: Node<'t>, in_async: bool },
}

struct Match<'t> {
    /// The call that is replaced (`Promise.all(…)`, `items.forEach(…)`).
    call: Node<'t>,
    settled: bool,
    shape: Shape<'t>,
}

/// The function (or program) `n` is in.
fn scope_of(n: Node<'_>) -> Node<'_> {
    std::iter::successors(n.parent(), |p| p.parent())
        .find(|p| FUNCS.contains(&p.kind()) || p.kind() == "program")
        .unwrap_or(n)
}

fn promise_all<'t>(f: &SourceFile, n: Node<'t>) -> Option<(bool, Node<'t>)> {
    if n.kind() != "call_expression" {
        return None;
    }
    let callee = n.child_by_field_name("function")?;
    if callee.kind() != "member_expression"
        || f.text_of(callee.child_by_field_name("object")?) != "Promise"
    {
        return None;
    }
    let settled = match f.text_of(callee.child_by_field_name("property")?) {
        "all" => false,
        "allSettled" => true,
        _ => return None,
    };
    let args = n.child_by_field_name("arguments")?;
    if args.named_child_count() != 1 {
        return None;
    }
    Some((settled, args.named_child(0)?))
}

/// `items.method(one argument)`: `(items, argument)`.
fn method_call<'t>(f: &SourceFile, n: Node<'t>, method: &str) -> Option<(Node<'t>, Node<'t>)> {
    if n.kind() != "call_expression" {
        return None;
    }
    let m = n.child_by_field_name("function")?;
    if m.kind() != "member_expression" || f.text_of(m.child_by_field_name("property")?) != method {
        return None;
    }
    let args = n.child_by_field_name("arguments")?;
    if args.named_child_count() != 1 {
        return None;
    }
    Some((m.child_by_field_name("object")?, args.named_child(0)?))
}

fn is_async_fn(f: &SourceFile, n: Node<'_>) -> bool {
    FUNCS.contains(&n.kind()) && f.text_of(n).trim_start().starts_with("async")
}

/// The pushed-array shape behind `Promise.all(array)`.
fn pushed<'t>(f: &SourceFile, all: Node<'t>, array: &str) -> Option<Pushed<'t>> {
    let scope = scope_of(all);
    let mut decl = None;
    let mut pushes = Vec::new();
    crate::repo::walk(scope, &mut |n| {
        if matches!(n.kind(), "lexical_declaration" | "variable_declaration")
            && n.end_byte() <= all.start_byte()
            && let Some(d) = n.named_child(0)
            && d.child_by_field_name("name").is_some_and(|x| f.text_of(x) == array)
            && d.child_by_field_name("value")
                .is_some_and(|v| v.kind() == "array" && v.named_child_count() == 0)
            && scope_of(n).id() == scope.id()
        {
            decl = Some(n);
        }
        if let Some((obj, arg)) = method_call(f, n, "push")
            && f.text_of(obj) == array
        {
            pushes.push((n, arg));
        }
    });
    let decl = decl?;
    let [(push, elem)] = pushes[..] else { return None };
    if elem.kind() != "call_expression" && elem.kind() != "await_expression" {
        return None;
    }
    if elem.kind() == "await_expression" {
        // `push(await f(x))` waits for each call: not a fan-out.
        return None;
    }
    // The push is in a loop over items, between the array and the `Promise.all`, in the same
    // function.
    let looped = std::iter::successors(push.parent(), |p| p.parent())
        .take_while(|p| p.id() != scope.id())
        .find(|p| matches!(p.kind(), "for_in_statement" | "for_statement"))?;
    if looped.start_byte() < decl.end_byte() || looped.end_byte() > all.start_byte() {
        return None;
    }
    let over_items = match looped.kind() {
        "for_in_statement" => {
            let head =
                &f.text[looped.start_byte()..looped.child_by_field_name("body")?.start_byte()];
            head.contains(" of ")
        }
        _ => looped.child_by_field_name("condition").is_some_and(|c| {
            let t = f.text_of(c);
            t.contains(".length") || t.contains(".size")
        }),
    };
    if !over_items {
        return None;
    }
    // One call *per item*: the pushed call uses the loop's variable (a loop pushing
    // `worker()` N times builds a pool, not a fan-out).
    let var = match looped.kind() {
        "for_in_statement" => looped.child_by_field_name("left"),
        _ => looped
            .child_by_field_name("initializer")
            .and_then(|i| i.named_child(0))
            .and_then(|d| d.child_by_field_name("name")),
    }?;
    let mut names = Vec::new();
    crate::repo::walk(var, &mut |n| {
        if matches!(n.kind(), "identifier" | "shorthand_property_identifier_pattern") {
            names.push(f.text_of(n).to_owned());
        }
    });
    if !names.iter().any(|v| crate::repo::contains_word(f.text_of(elem), v)) {
        return None;
    }
    let push_stmt = push.parent().filter(|p| p.kind() == "expression_statement")?;
    let body = looped.child_by_field_name("body")?;
    let only_push = if body.kind() == "statement_block" {
        let mut c = body.walk();
        let stmts: Vec<Node<'_>> =
            body.named_children(&mut c).filter(|s| s.kind() != "comment").collect();
        stmts.len() == 1 && stmts[0].id() == push_stmt.id()
    } else {
        body.id() == push_stmt.id()
    };
    let uses = f.text_of(scope).match_indices(array).filter(|(i, _)| {
        let t = f.text_of(scope);
        let before = t[..*i].chars().next_back();
        let after = t[i + array.len()..].chars().next();
        let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
        !before.is_some_and(ident) && !after.is_some_and(ident)
    });
    let clean = (only_push && uses.count() == 3 && looped.kind() == "for_in_statement")
        .then(|| Some((looped.child_by_field_name("left")?, looped.child_by_field_name("right")?)))
        .flatten()
        .filter(|_| {
            let kind = looped.child_by_field_name("kind").map(|k| f.text_of(k));
            matches!(kind, Some("const" | "let"))
        });
    Some(Pushed { decl, looped, elem, array: array.to_owned(), clean })
}

fn matches<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    if let Some((settled, arg)) = promise_all(f, n) {
        if let Some((items, func)) = method_call(f, arg, "map") {
            return Some(Match { call: n, settled, shape: Shape::Map { items, func } });
        }
        if arg.kind() == "identifier" {
            let p = pushed(f, n, f.text_of(arg))?;
            return Some(Match { call: n, settled, shape: Shape::Pushed(p) });
        }
        return None;
    }
    let (items, func) = method_call(f, n, "forEach")?;
    if !is_async_fn(f, func) || n.parent().is_none_or(|p| p.kind() != "expression_statement") {
        return None;
    }
    let in_async = is_async_fn(f, scope_of(n));
    Some(Match { call: n, settled: false, shape: Shape::ForEach { items, func, in_async } })
}

impl Pattern for JsFanout {
    fn name(&self) -> &'static str {
        "js-unbounded-fanout"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        if !f.lang.is_js() {
            return Vec::new();
        }
        super::sites_in(f, |n| {
            let m = matches(f, n).filter(|_| !super::in_bounded_function(f, n))?;
            let which = if m.settled { "allSettled" } else { "all" };
            let (description, per_item) = match &m.shape {
                Shape::Map { items, func } => (
                    format!(
                        "Promise.{which} over {}.map(…) starts one call per item at once",
                        f.text_of(*items)
                    ),
                    *func,
                ),
                Shape::Pushed(p) => (
                    format!(
                        "Promise.{which} over {}, filled with one call per item by the loop at line {}: every call at once",
                        p.array,
                        p.looped.start_position().row + 1
                    ),
                    p.elem,
                ),
                Shape::ForEach { items, func, .. } => (
                    format!(
                        "{}.forEach(async …) starts one call per item at once and waits for none",
                        f.text_of(*items)
                    ),
                    *func,
                ),
            };
            Some(Site::at(
                self.name(),
                f,
                n,
                description,
                vec![FixKind::Concurrency, FixKind::Rate],
                identifiers(f.text_of(per_item)),
            ))
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let m = super::find_at(f, site, |n| matches(f, n))?;
        let style = Style::of(&f.text, f.lang);
        let ts = matches!(f.lang, Lang::TypeScript | Lang::Tsx);
        let (const_base, helper_base) = match (fix.kind, m.settled) {
            (FixKind::Rate, false) => ("MAX_STARTS_PER_SECOND", "mapWithRate"),
            (FixKind::Rate, true) => ("MAX_STARTS_PER_SECOND", "mapSettledWithRate"),
            (_, false) => ("MAX_IN_FLIGHT", "mapWithConcurrency"),
            (_, true) => ("MAX_IN_FLIGHT", "mapSettledWithConcurrency"),
        };
        let konst = fresh_name(&f.text, const_base);
        let helper = fresh_name(&f.text, helper_base);
        // (start, end, replacement), applied from the end of the file backwards.
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        let whole_lines = |n: Node<'_>| {
            let start = n.start_byte() - f.indent_at(n.start_byte()).len();
            let end =
                f.text[n.end_byte()..].find('\n').map_or(f.text.len(), |i| n.end_byte() + i + 1);
            (start, end)
        };
        match &m.shape {
            Shape::Map { items, func } => {
                let call =
                    format!("{helper}({}, {konst}, {})", f.text_of(*items), f.text_of(*func));
                edits.push((m.call.start_byte(), m.call.end_byte(), call));
            }
            Shape::Pushed(p) => match p.clean {
                Some((item, items)) => {
                    let call = format!(
                        "{helper}({}, {konst}, ({}) => {})",
                        f.text_of(items),
                        f.text_of(item),
                        f.text_of(p.elem)
                    );
                    edits.push((m.call.start_byte(), m.call.end_byte(), call));
                    let (s, e) = whole_lines(p.looped);
                    edits.push((s, e, String::new()));
                    let (s, e) = whole_lines(p.decl);
                    edits.push((s, e, String::new()));
                }
                None => {
                    // The loop does more than push: push thunks, which the helper starts.
                    let kind = match p.looped.kind() {
                        "for_in_statement" => {
                            p.looped.child_by_field_name("kind").map(|k| f.text_of(k))
                        }
                        _ => p
                            .looped
                            .child_by_field_name("initializer")
                            .and_then(|i| i.child(0))
                            .map(|k| f.text_of(k)),
                    };
                    if !matches!(kind, Some("const" | "let")) {
                        return Err(format!(
                            "{}: the loop's variable is not block-scoped (`var`), so deferring each call could change what it sees; not rewritten",
                            site.location()
                        ));
                    }
                    let elem = p.elem;
                    edits.push((
                        elem.start_byte(),
                        elem.end_byte(),
                        format!("() => {}", f.text_of(elem)),
                    ));
                    let task = fresh_name(&f.text, "task");
                    let call = format!("{helper}({}, {konst}, ({task}) => {task}())", p.array);
                    edits.push((m.call.start_byte(), m.call.end_byte(), call));
                }
            },
            Shape::ForEach { items, func, in_async } => {
                let call = format!(
                    "{}{helper}({}, {konst}, {})",
                    if *in_async { "await " } else { "" },
                    f.text_of(*items),
                    f.text_of(*func)
                );
                edits.push((m.call.start_byte(), m.call.end_byte(), call));
            }
        }
        edits.sort_by_key(|(s, _, _)| std::cmp::Reverse(*s));
        let mut text = f.text.clone();
        for (s, e, new) in edits {
            text = splice(&text, s, e, &new);
        }

        // The helper goes at the end of the file (function declarations are hoisted); the
        // constant after the imports, where a reader looks for settings.
        // A rate is kept across calls: the time the next call may start lives beside the
        // constant, initialized before any code of the module runs.
        let next = fresh_name(&f.text, "nextStartAt");
        let body = helper_source(&helper, &next, fix.kind, m.settled, ts, &style, &fix.metric);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&body);
        let semi = if style.semicolons { ";" } else { "" };
        let what =
            if fix.kind == FixKind::Rate { "calls started per second" } else { "calls in flight" };
        let mut decl = format!(
            "// At most this many {what} (added by af: {}).\nconst {konst} = {}{semi}\n",
            fix.metric, fix.bound
        );
        if fix.kind == FixKind::Rate {
            decl.push_str(&format!(
                "// When the next call may start (ms since the epoch), shared by every {helper} call.\nlet {next} = 0{semi}\n"
            ));
        }
        let at = prologue_end(f);
        let decl = if at == 0 { format!("{decl}\n") } else { format!("\n{decl}") };
        text = splice(&text, at, at, &decl);
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}

/// Byte offset after the leading `'use strict'`, imports and `require`s (0 if none).
fn prologue_end(f: &SourceFile) -> usize {
    let root = f.tree.root_node();
    let mut end = 0;
    let mut c = root.walk();
    for n in root.named_children(&mut c) {
        let t = f.text_of(n);
        let is_prologue = match n.kind() {
            "import_statement" | "comment" => true,
            "expression_statement" => {
                t.starts_with("'use strict'") || t.starts_with("\"use strict\"")
            }
            "lexical_declaration" | "variable_declaration" => t.contains("require("),
            _ => false,
        };
        if !is_prologue {
            break;
        }
        // Past the end of that line.
        end = f.text[n.end_byte()..].find('\n').map_or(f.text.len(), |i| n.end_byte() + i + 1);
    }
    end
}

fn helper_source(
    name: &str,
    next: &str,
    kind: FixKind,
    settled: bool,
    ts: bool,
    style: &Style,
    metric: &str,
) -> String {
    let q = style.quote;
    let sig = |bound: &str| {
        if ts {
            format!(
                "async function {name}<T, R>(items: Iterable<T>, {bound}: number, fn: (item: T, index: number, all: T[]) => Promise<R> | R): Promise<{}[]> {{",
                if settled { "PromiseSettledResult<R>" } else { "R" }
            )
        } else {
            format!("async function {name}(items, {bound}, fn) {{")
        }
    };
    let arr = if ts {
        format!(
            "const results: {}[] = new Array(list.length);",
            if settled { "PromiseSettledResult<R>" } else { "R" }
        )
    } else {
        "const results = new Array(list.length);".into()
    };
    let call = "await fn(list[i], i, list)";
    let store = if settled {
        format!(
            "try {{\n        results[i] = {{ status: {q}fulfilled{q}, value: {call} }};\n      }} catch (reason) {{\n        results[i] = {{ status: {q}rejected{q}, reason }};\n      }}"
        )
    } else {
        format!("results[i] = {call};")
    };
    let src = match kind {
        FixKind::Rate => format!(
            "// Calls fn for every item, starting at most `perSecond` calls per second across every call\n\
             // of this helper (the upstream counts calls, not batches); results keep the input order.\n\
             // Starts are spaced a tenth wider than 1000 / perSecond ms, so timer and network jitter\n\
             // cannot fit one call more into a second. Added by af to keep {metric}.\n\
             {}\n  const list = Array.from(items);\n  {arr}\n  const gap = 1100 / perSecond;\n  \
             await Promise.all(list.map(async (_, i) => {{\n    const now = Date.now();\n    \
             const at = Math.max(now, {next});\n    {next} = at + gap;\n    \
             if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now));\n    {}\n  }}));\n  return results;\n}}\n",
            sig("perSecond"),
            store.replace("\n      ", "\n    "),
        ),
        _ => format!(
            "// Calls fn for every item with at most `limit` calls in flight; results keep the input\n\
             // order. Added by af to keep {metric}.\n\
             {}\n  const list = Array.from(items);\n  {arr}\n  let next = 0;\n  async function worker() {{\n    \
             while (next < list.length) {{\n      const i = next++;\n      {store}\n    }}\n  }}\n  \
             const workers{} = [];\n  for (let w = 0; w < Math.min(limit, list.length); w++) workers.push(worker());\n  \
             await Promise.all(workers);\n  return results;\n}}\n",
            sig("limit"),
            if ts { ": Promise<void>[]" } else { "" },
        ),
    };
    restyle(&src, style)
}

/// Re-indents two-space source to the file's unit and drops semicolons when the file has none.
fn restyle(src: &str, style: &Style) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let trimmed = line.trim_start();
        let depth = (line.len() - trimmed.len()) / 2;
        out.push_str(&style.indent.repeat(depth));
        let t = if !style.semicolons && trimmed.ends_with(";") {
            &trimmed[..trimmed.len() - 1]
        } else {
            trimmed
        };
        out.push_str(t);
        out.push('\n');
    }
    out
}
