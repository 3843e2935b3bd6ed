//! Go: an `errgroup.Group` that starts one goroutine per item of a loop (`g.Go` inside
//! `for … range`) with no `SetLimit` — every call at once. The codemod calls
//! `g.SetLimit(N)` right after the group is made, which is what the package offers for it:
//! `Go` then blocks until a slot is free, and `Wait` and error handling are unchanged.

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, identifiers, snippet};
use crate::repo::{Lang, Repo, SourceFile};

/// The Go errgroup-without-limit pattern.
pub struct GoErrgroup;

/// `(statement making the group, group variable, the loop, the g.Go call)`.
struct Match<'t> {
    decl: Node<'t>,
    group: String,
    looped: Node<'t>,
    go: Node<'t>,
}

/// The variable a statement makes an errgroup in: `g, ctx := errgroup.WithContext(ctx)`,
/// `var g errgroup.Group`, `g := new(errgroup.Group)`, `g := &errgroup.Group{}`.
fn group_decl<'a>(f: &'a SourceFile, n: Node<'_>) -> Option<&'a str> {
    let t = f.text_of(n);
    match n.kind() {
        "short_var_declaration" | "assignment_statement" => {
            let right = f.text_of(n.child_by_field_name("right")?);
            let makes = right.starts_with("errgroup.WithContext(")
                || right == "new(errgroup.Group)"
                || right == "&errgroup.Group{}";
            if !makes {
                return None;
            }
            let left = n.child_by_field_name("left")?.named_child(0)?;
            Some(f.text_of(left))
        }
        "var_declaration" if t.contains("errgroup.Group") && !t.contains('=') => {
            let spec = n.named_child(0)?;
            Some(f.text_of(spec.child_by_field_name("name")?))
        }
        _ => None,
    }
}

fn function_of(n: Node<'_>) -> Option<Node<'_>> {
    std::iter::successors(n.parent(), |p| p.parent()).find(|p| {
        matches!(p.kind(), "function_declaration" | "method_declaration" | "func_literal")
    })
}

fn matches<'t>(f: &SourceFile, n: Node<'t>) -> Option<Match<'t>> {
    let group = group_decl(f, n)?.to_owned();
    let func = function_of(n)?;
    let body = func.child_by_field_name("body")?;
    let mut go = None;
    let mut limited = false;
    crate::repo::walk(body, &mut |m| {
        if m.kind() != "call_expression" {
            return;
        }
        let callee = f.text_of(m.child_by_field_name("function").unwrap_or(m));
        if callee == format!("{group}.SetLimit") || callee == format!("{group}.TryGo") {
            limited = true;
        }
        if callee == format!("{group}.Go") && m.start_byte() > n.end_byte() && go.is_none() {
            go = Some(m);
        }
    });
    let go = go?;
    if limited {
        return None;
    }
    // Per item: the `Go` is inside a loop over a collection (`range`) or up to a length.
    let looped = std::iter::successors(go.parent(), |p| p.parent())
        .take_while(|p| p.id() != body.id())
        .find(|p| p.kind() == "for_statement")?;
    let header = {
        let b = looped.child_by_field_name("body")?;
        &f.text[looped.start_byte()..b.start_byte()]
    };
    if !(header.contains("range") || header.contains("len(")) {
        return None;
    }
    Some(Match { decl: n, group, looped, go })
}

impl Pattern for GoErrgroup {
    fn name(&self) -> &'static str {
        "go-errgroup-unlimited"
    }

    fn find(&self, f: &SourceFile, _repo: &Repo) -> Vec<Site> {
        if f.lang != Lang::Go {
            return Vec::new();
        }
        super::sites_in(f, |n| {
            let m = matches(f, n)?;
            let mut site = Site::at(
                self.name(),
                f,
                n,
                format!(
                    "an errgroup with no SetLimit: {}.Go starts a goroutine per item of the loop at line {}, all at once",
                    m.group,
                    m.looped.start_position().row + 1
                ),
                vec![FixKind::Concurrency],
                identifiers(f.text_of(m.go)),
            );
            site.line = m.go.start_position().row + 1;
            site.snippet = snippet(f.text_of(m.go));
            Some(site)
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let m = super::find_at(f, site, |n| matches(f, n))?;
        let ind = f.indent_at(m.decl.start_byte()).to_owned();
        let at = m.decl.end_byte();
        let line = format!(
            "\n{ind}// At most {} calls in flight (added by af: {}).\n{ind}{}.SetLimit({})",
            fix.bound, fix.metric, m.group, fix.bound
        );
        let text = super::splice(&f.text, at, at, &line);
        Ok(vec![FileEdit { file: f.rel.clone(), text }])
    }
}
