//! JS/TS: a retry loop that tries again at once — no `Retry-After`, no back-off. Every failure
//! comes straight back as another request: a retry storm. The codemod waits before each next
//! attempt: the server's `Retry-After` when it sent one, else exponential back-off with full
//! jitter.

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers};
use crate::code::{Repo, SourceFile, Style, fresh_name, walk};

/// The JS retry-without-back-off pattern.
pub struct JsRetry;

const LOOPS: &[&str] = &["for_statement", "while_statement", "do_statement"];

/// `(loop, body, response variable, attempt variable)`.
fn matches<'t>(
    f: &SourceFile,
    n: Node<'t>,
) -> Option<(Node<'t>, Node<'t>, String, Option<String>)> {
    if !LOOPS.contains(&n.kind()) {
        return None;
    }
    let body = n.child_by_field_name("body")?;
    if body.kind() != "statement_block" {
        return None;
    }
    let text = f.text_of(body);
    let lower = text.to_ascii_lowercase();
    let checks_failure = text.contains("429") || text.contains(".ok") || text.contains(".status");
    let waits = lower.contains("retry-after")
        || lower.contains("settimeout")
        || lower.contains("sleep")
        || lower.contains("delay")
        || lower.contains("backoff");
    if !checks_failure || waits {
        return None;
    }
    // `const res = await something(…)` directly in the loop body.
    let mut c = body.walk();
    let res = body.named_children(&mut c).find_map(|st| {
        if !matches!(st.kind(), "lexical_declaration" | "variable_declaration") {
            return None;
        }
        let d = st.named_child(0)?;
        let value = d.child_by_field_name("value")?;
        if value.kind() != "await_expression" {
            return None;
        }
        Some(f.text_of(d.child_by_field_name("name")?).to_owned())
    })?;
    // It has to be able to go round again: a `continue`, or falling off the end of the body.
    let attempt = if n.kind() == "for_statement" {
        n.child_by_field_name("initializer")
            .and_then(|i| i.named_child(0))
            .and_then(|d| d.child_by_field_name("name"))
            .map(|v| f.text_of(v).to_owned())
    } else {
        None
    };
    Some((n, body, res, attempt))
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
            let (l, body, res, _) = matches(f, n)?;
            Some(Site::at(
                self.name(),
                f,
                l,
                format!(
                    "a retry loop that sends the next attempt at once, ignoring Retry-After (response `{res}`)"
                ),
                vec![FixKind::Retry],
                identifiers(f.text_of(body)),
            ))
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let (l, body, res, attempt) = super::find_at(f, site, |n| matches(f, n))?;
        let style = Style::of(&f.text, f.lang);
        let semi = if style.semicolons { ";" } else { "" };
        let helper = fresh_name(&f.text, "backoffBeforeRetry");
        let counter = attempt.clone().unwrap_or_else(|| fresh_name(&f.text, "attempt"));
        let arg = if attempt.is_some() { counter.clone() } else { format!("{counter}++") };
        // Wait before every `continue` of this loop and at the end of the body.
        let mut inserts: Vec<(usize, String)> = Vec::new();
        walk(body, &mut |n| {
            if n.kind() == "continue_statement" {
                let inner = std::iter::successors(n.parent(), |p| p.parent())
                    .find(|p| LOOPS.contains(&p.kind()))
                    .is_some_and(|p| p.id() == l.id());
                if inner {
                    let ind = f.indent_at(n.start_byte()).to_owned();
                    let pos = n.start_byte();
                    let own_line = f.line_text(pos).trim_start().starts_with("continue");
                    if own_line {
                        inserts.push((pos, format!("await {helper}({res}, {arg}){semi}\n{ind}")));
                    } else {
                        inserts.push((pos, format!("{{ await {helper}({res}, {arg}){semi} ")));
                        inserts.push((n.end_byte(), " }".into()));
                    }
                }
            }
        });
        let close = body.end_byte() - 1;
        inserts.push((
            close,
            format!(
                "{}await {helper}({res}, {arg}){semi}\n{}",
                style.indent,
                f.indent_at(body.start_byte())
            ),
        ));
        let mut text = f.text.clone();
        inserts.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
        for (p, s) in inserts {
            text.insert_str(p, &s);
        }
        if attempt.is_none() {
            let ind = f.indent_at(l.start_byte()).to_owned();
            let at = l.start_byte() - ind.len();
            text.insert_str(at, &format!("{ind}let {counter} = 0{semi}\n"));
        }
        let q = style.quote;
        let i = &style.indent;
        let helper_src = format!(
            "\n// Waits before the next attempt: the server's Retry-After when it sent one, else exponential\n\
             // back-off with full jitter (0.5 s base, 30 s cap). Added by af to keep {}.\n\
             async function {helper}(res, attempt) {{\n\
             {i}const header = res && res.headers && typeof res.headers.get === {q}function{q} ? res.headers.get({q}retry-after{q}) : null{semi}\n\
             {i}let ms = NaN{semi}\n\
             {i}if (header) {{\n{i}{i}const secs = Number(header){semi}\n{i}{i}ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(header) - Date.now(){semi}\n{i}}}\n\
             {i}if (!(ms >= 0)) ms = Math.random() * Math.min(30000, 500 * 2 ** attempt){semi}\n\
             {i}await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 60000))){semi}\n}}\n",
            fix.metric
        );
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&helper_src);
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}
