//! JS/TS: `Promise.all(items.map(fn))` (and `allSettled`) starts one call per item at once —
//! unbounded fan-out. The codemod keeps the call site's meaning (results in input order,
//! `allSettled` shape kept) through a small helper that runs at most N at a time, or starts at
//! most R per second when the limit is a rate.

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers, splice};
use crate::code::{Lang, Repo, SourceFile, Style, fresh_name};

/// The JS/TS unbounded fan-out pattern.
pub struct JsFanout;

struct Match<'t> {
    call: Node<'t>,
    settled: bool,
    items: Node<'t>,
    func: Node<'t>,
}

fn matches<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
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
    let inner = args.named_child(0)?;
    if inner.kind() != "call_expression" {
        return None;
    }
    let map = inner.child_by_field_name("function")?;
    if map.kind() != "member_expression" || f.text_of(map.child_by_field_name("property")?) != "map"
    {
        return None;
    }
    let items = map.child_by_field_name("object")?;
    let margs = inner.child_by_field_name("arguments")?;
    if margs.named_child_count() != 1 {
        return None;
    }
    Some(Match { call: n, settled, items, func: margs.named_child(0)? })
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
            Some(Site::at(
                self.name(),
                f,
                n,
                format!(
                    "Promise.{which} over {}.map(…) starts one call per item at once",
                    f.text_of(m.items)
                ),
                vec![FixKind::Concurrency, FixKind::Rate],
                identifiers(f.text_of(m.func)),
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
        let call = format!("{helper}({}, {konst}, {})", f.text_of(m.items), f.text_of(m.func));
        let mut text = splice(&f.text, m.call.start_byte(), m.call.end_byte(), &call);

        // The helper goes at the end of the file (function declarations are hoisted); the
        // constant after the imports, where a reader looks for settings.
        let body = helper_source(&helper, fix.kind, m.settled, ts, &style, &fix.metric);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&body);
        let semi = if style.semicolons { ";" } else { "" };
        let what =
            if fix.kind == FixKind::Rate { "calls started per second" } else { "calls in flight" };
        let decl = format!(
            "// At most this many {what} (added by af: {}).\nconst {konst} = {}{semi}\n",
            fix.metric, fix.bound
        );
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
            "// Calls fn for every item, starting at most `perSecond` calls per second; results keep\n\
             // the input order. Added by af to keep {metric}.\n\
             {}\n  const list = Array.from(items);\n  {arr}\n  const gap = 1000 / perSecond;\n  const started = Date.now();\n  \
             await Promise.all(list.map(async (_, i) => {{\n    const wait = started + i * gap - Date.now();\n    \
             if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));\n    {}\n  }}));\n  return results;\n}}\n",
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
