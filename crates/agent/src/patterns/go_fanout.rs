//! Go: a `for … range` loop that starts `go func(…){…}(…)` per item — one goroutine, and one
//! call, per item at once. The codemod adds a buffered-channel semaphore: acquire before `go`,
//! release with `defer` inside the goroutine. gofmt style (tabs) is kept.

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers, snippet};
use crate::repo::{Lang, Repo, SourceFile, fresh_name};

/// The Go goroutine-per-item pattern.
pub struct GoFanout;

/// `(for statement, go statement, func literal body)`.
fn matches<'t>(f: &SourceFile, n: Node<'t>) -> Option<(Node<'t>, Node<'t>, Node<'t>)> {
    if n.kind() != "for_statement" {
        return None;
    }
    let body = n.child_by_field_name("body")?;
    let mut c = body.walk();
    let stmts: Vec<Node<'t>> = body.named_children(&mut c).collect();
    // Statement lists are wrapped in a `statement_list` node in this grammar version.
    let stmts: Vec<Node<'t>> = if stmts.len() == 1 && stmts[0].kind() == "statement_list" {
        let mut cc = stmts[0].walk();
        stmts[0].named_children(&mut cc).collect()
    } else {
        stmts
    };
    let go = stmts.into_iter().find(|s| s.kind() == "go_statement")?;
    let call = go.named_child(0)?;
    let lit = call.child_by_field_name("function")?;
    if lit.kind() != "func_literal" {
        return None;
    }
    let text = f.text_of(n);
    // Already bounded: a semaphore or a limited errgroup around it.
    if text.contains("<- struct{}{}") || text.contains("Acquire(") {
        return None;
    }
    Some((n, go, lit.child_by_field_name("body")?))
}

impl Pattern for GoFanout {
    fn name(&self) -> &'static str {
        "go-goroutine-per-item"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        if f.lang != Lang::Go {
            return Vec::new();
        }
        super::sites_in(f, |n| {
            let (for_, go, body) = matches(f, n)?;
            // The whole loop is rewritten; the `go` line is what a reader looks for.
            let mut site = Site::at(
                self.name(),
                f,
                for_,
                "a goroutine per item of the loop, all running at once".into(),
                vec![FixKind::Concurrency],
                identifiers(f.text_of(body)),
            );
            site.line = go.start_position().row + 1;
            site.snippet = snippet(f.text_of(go));
            Some(site)
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let (for_, go, body) = super::find_at(f, site, |n| matches(f, n))?;
        let sem = fresh_name(&f.text, "sem");
        let for_indent = f.indent_at(for_.start_byte()).to_owned();
        let go_indent = f.indent_at(go.start_byte()).to_owned();
        // Edits from the end of the file backwards so offsets stay valid.
        let mut text = f.text.clone();
        let open = body.start_byte() + 1; // after `{`
        text.insert_str(open, &format!("\n{go_indent}\tdefer func() {{ <-{sem} }}()"));
        let go_line = go.start_byte() - go_indent.len();
        text.insert_str(go_line, &format!("{go_indent}{sem} <- struct{{}}{{}}\n"));
        let for_line = for_.start_byte() - for_indent.len();
        text.insert_str(
            for_line,
            &format!(
                "{for_indent}// At most {} calls in flight (added by af: {}).\n{for_indent}{sem} := make(chan struct{{}}, {})\n",
                fix.bound, fix.metric, fix.bound
            ),
        );
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}
