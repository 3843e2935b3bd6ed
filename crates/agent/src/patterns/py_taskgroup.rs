//! Python: `async with asyncio.TaskGroup() as tg:` with `tg.create_task(…)` in a loop starts one
//! task per item, all running at once. The codemod keeps the task group (its error handling and
//! cancellation stay as they were) and makes each task wait on a semaphore before its coroutine
//! starts, so at most N run at once.

use tree_sitter::Node;

use super::py_gather::{has_asyncio_import, prologue_end};
use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers};
use crate::repo::{Lang, Repo, SourceFile, Style, fresh_name, walk};

/// The Python TaskGroup-per-item pattern.
pub struct PyTaskGroup;

/// `(with statement, create_task calls inside a loop in it)`.
fn matches<'t>(f: &SourceFile, n: Node<'t>) -> Option<(Node<'t>, Vec<Node<'t>>)> {
    if n.kind() != "with_statement" || !f.text_of(n).starts_with("async") {
        return None;
    }
    let mut c = n.walk();
    let clause = n.named_children(&mut c).find(|x| x.kind() == "with_clause")?;
    let clause_text = f.text_of(clause);
    if !clause_text.contains("TaskGroup(") {
        return None;
    }
    let alias = clause_text.rsplit_once(" as ")?.1.trim().trim_end_matches(':').trim();
    let create = format!("{alias}.create_task");
    let body = n.child_by_field_name("body")?;
    let mut calls = Vec::new();
    walk(body, &mut |x| {
        if x.kind() == "call"
            && x.child_by_field_name("function").is_some_and(|g| f.text_of(g) == create)
            && std::iter::successors(x.parent(), |p| p.parent())
                .take_while(|p| p.id() != n.id())
                .any(|p| matches!(p.kind(), "for_statement" | "while_statement"))
        {
            calls.push(x);
        }
    });
    (!calls.is_empty()).then_some((n, calls))
}

impl Pattern for PyTaskGroup {
    fn name(&self) -> &'static str {
        "py-taskgroup-per-item"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        if f.lang != Lang::Python {
            return Vec::new();
        }
        super::sites_in(f, |n| {
            let (with, calls) = matches(f, n).filter(|_| !super::in_bounded_function(f, n))?;
            let callees = calls
                .iter()
                .filter_map(|c| c.child_by_field_name("arguments"))
                .flat_map(|a| identifiers(f.text_of(a)))
                .collect();
            Some(Site::at(
                self.name(),
                f,
                with,
                "a TaskGroup task per item of a loop, all running at once".into(),
                vec![FixKind::Concurrency],
                callees,
            ))
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let (with, calls) = super::find_at(f, site, |n| matches(f, n))?;
        let style = Style::of(&f.text, f.lang);
        let konst = fresh_name(&f.text, "MAX_IN_FLIGHT");
        let helper = fresh_name(&f.text, "run_bounded");
        let sem = fresh_name(&f.text, "semaphore");
        // Edits from the end backwards so offsets stay valid.
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        for call in &calls {
            let args =
                call.child_by_field_name("arguments").ok_or("create_task without arguments")?;
            let first = args.named_child(0).ok_or("create_task without a coroutine")?;
            edits.push((
                first.start_byte(),
                first.end_byte(),
                format!("{helper}({sem}, {})", f.text_of(first)),
            ));
        }
        let indent = f.indent_at(with.start_byte()).to_owned();
        let line = with.start_byte() - indent.len();
        edits.push((line, line, format!("{indent}{sem} = asyncio.Semaphore({konst})\n")));
        let i = &style.indent;
        let mut block = String::new();
        if !has_asyncio_import(f) {
            block.push_str("import asyncio\n");
        }
        block.push_str(&format!(
            "\n# At most this many calls in flight (added by af: {}).\n{konst} = {}\n\n\n\
             async def {helper}(semaphore, aw):\n\
             {i}\"\"\"Awaits ``aw`` while holding ``semaphore``: at most its size run at once. Added by af.\"\"\"\n\
             {i}async with semaphore:\n{i}{i}return await aw\n",
            fix.metric, fix.bound
        ));
        let at = prologue_end(f);
        edits.push((at, at, block));
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut text = f.text.clone();
        for (s, e, new) in edits {
            text.replace_range(s..e, &new);
        }
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}
