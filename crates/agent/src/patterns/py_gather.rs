//! Python: `asyncio.gather(*[f(x) for x in xs])` (or a generator) awaits one coroutine per
//! item at once — unbounded fan-out. The codemod routes the same awaitables through a helper
//! that runs at most N at once (a semaphore), or starts at most R per second; results keep the
//! input order and `return_exceptions=` is passed on.

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers, splice};
use crate::repo::{Lang, Repo, SourceFile, Style, contains_word, fresh_name};

/// The Python `asyncio.gather` fan-out pattern.
pub struct PyGather;

struct Match<'t> {
    call: Node<'t>,
    items: Node<'t>,
    kwargs: Vec<Node<'t>>,
}

fn matches<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    if n.kind() != "call" {
        return None;
    }
    let func = f.text_of(n.child_by_field_name("function")?);
    if func != "asyncio.gather" && func != "gather" {
        return None;
    }
    let args = n.child_by_field_name("arguments")?;
    let mut splat = None;
    let mut kwargs = Vec::new();
    let mut c = args.walk();
    for a in args.named_children(&mut c) {
        match a.kind() {
            "list_splat" if splat.is_none() => {
                let inner = a.named_child(0)?;
                if !matches!(inner.kind(), "list_comprehension" | "generator_expression") {
                    return None;
                }
                splat = Some(inner);
            }
            "keyword_argument" => kwargs.push(a),
            "comment" => {}
            _ => return None,
        }
    }
    Some(Match { call: n, items: splat?, kwargs })
}

impl Pattern for PyGather {
    fn name(&self) -> &'static str {
        "py-unbounded-gather"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        if f.lang != Lang::Python {
            return Vec::new();
        }
        super::sites_in(f, |n| {
            let m = matches(f, n).filter(|_| !super::in_bounded_function(f, n))?;
            let body = m.items.named_child(0).map(|b| f.text_of(b)).unwrap_or("");
            Some(Site::at(
                self.name(),
                f,
                n,
                "asyncio.gather over a comprehension awaits one call per item at once".into(),
                vec![FixKind::Concurrency, FixKind::Rate],
                identifiers(body),
            ))
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let m = super::find_at(f, site, |n| matches(f, n))?;
        let (range, items) = (m.call.byte_range(), f.text_of(m.items));
        let kwargs: Vec<&str> = m.kwargs.iter().map(|k| f.text_of(*k)).collect();
        let style = Style::of(&f.text, f.lang);
        let (const_base, helper_base) = if fix.kind == FixKind::Rate {
            ("MAX_STARTS_PER_SECOND", "gather_rate_limited")
        } else {
            ("MAX_IN_FLIGHT", "gather_bounded")
        };
        let konst = fresh_name(&f.text, const_base);
        let helper = fresh_name(&f.text, helper_base);
        let mut call = format!("{helper}({konst}, {items}");
        for k in &kwargs {
            call.push_str(", ");
            call.push_str(k);
        }
        call.push(')');
        let text = splice(&f.text, range.start, range.end, &call);
        let at = prologue_end(f);
        let mut block = String::new();
        if !has_asyncio_import(f) {
            block.push_str("import asyncio\n");
        }
        let i = &style.indent;
        let what =
            if fix.kind == FixKind::Rate { "calls started per second" } else { "calls in flight" };
        block.push_str(&format!(
            "\n# At most this many {what} (added by af: {}).\n{konst} = {}\n\n\n",
            fix.metric, fix.bound
        ));
        if fix.kind == FixKind::Rate {
            let next = fresh_name(&f.text, &format!("_{helper}_next"));
            block.push_str(&format!(
                "# When the next call may start (event-loop time), shared by every {helper} call.\n\
                 {next} = 0.0\n\n\n\
                 async def {helper}(per_second, aws, return_exceptions=False):\n\
                 {i}\"\"\"Awaits every awaitable in ``aws``, starting at most ``per_second`` of them per second\n\
                 {i}across every call (the upstream counts calls, not batches); results keep the input order,\n\
                 {i}like ``asyncio.gather``. Starts are spaced a tenth wider than 1 / per_second, so timer and\n\
                 {i}network jitter cannot fit one call more into a second. Added by af.\"\"\"\n\
                 {i}loop = asyncio.get_running_loop()\n{i}gap = 1.1 / per_second\n\n\
                 {i}async def run(aw):\n{i}{i}global {next}\n{i}{i}now = loop.time()\n\
                 {i}{i}at = max(now, {next})\n{i}{i}{next} = at + gap\n\
                 {i}{i}if at > now:\n{i}{i}{i}await asyncio.sleep(at - now)\n{i}{i}return await aw\n\n\
                 {i}return await asyncio.gather(*(run(aw) for aw in aws), return_exceptions=return_exceptions)\n"
            ));
        } else {
            block.push_str(&format!(
                "async def {helper}(limit, aws, return_exceptions=False):\n\
                 {i}\"\"\"Awaits every awaitable in ``aws`` with at most ``limit`` running at once; results keep\n\
                 {i}the input order, like ``asyncio.gather``. Added by af.\"\"\"\n\
                 {i}semaphore = asyncio.Semaphore(limit)\n\n\
                 {i}async def run(aw):\n{i}{i}async with semaphore:\n{i}{i}{i}return await aw\n\n\
                 {i}return await asyncio.gather(*(run(aw) for aw in aws), return_exceptions=return_exceptions)\n"
            ));
        }
        let text = splice(&text, at, at, &block);
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}

pub(crate) fn has_asyncio_import(f: &SourceFile) -> bool {
    f.text.lines().any(|l| {
        let l = l.trim();
        l == "import asyncio"
            || (l.starts_with("import ") && contains_word(l, "asyncio") && !l.contains(" as "))
    })
}

/// Byte offset after the module docstring, comments and imports (0 if none).
pub(crate) fn prologue_end(f: &SourceFile) -> usize {
    let root = f.tree.root_node();
    let mut end = 0;
    let mut c = root.walk();
    for (k, n) in root.named_children(&mut c).enumerate() {
        let ok = match n.kind() {
            "import_statement"
            | "import_from_statement"
            | "future_import_statement"
            | "comment" => true,
            "expression_statement" => {
                k == 0 && n.named_child(0).is_some_and(|s| s.kind() == "string")
            }
            _ => false,
        };
        if !ok {
            break;
        }
        end = f.text[n.end_byte()..].find('\n').map_or(f.text.len(), |i| n.end_byte() + i + 1);
    }
    end
}
