//! Python: `ThreadPoolExecutor(max_workers=N)` with N above the upstream's limit — an oversized
//! worker pool. N is followed to where it is defined (a constant in the same module, a name
//! imported from another module, `settings.N`, an `os.environ.get("…", "64")` default), and
//! the codemod changes it there.

use tree_sitter::Node;

use super::{FileEdit, Fix, FixKind, Pattern, Site, splice};
use crate::repo::{Lang, Repo, SourceFile, walk};

/// The oversized thread-pool pattern.
pub struct PyPool;

/// Where a pool's size is written.
struct Bound {
    file: String,
    line: usize,
    start: usize,
    end: usize,
    value: Option<u64>,
    /// The literal is inside a string (`"64"`): keep the quotes.
    quoted: bool,
}

fn pool_call<'t>(f: &SourceFile, n: Node<'t>) -> Option<Node<'t>> {
    if n.kind() != "call" {
        return None;
    }
    let func = f.text_of(n.child_by_field_name("function")?);
    (func == "ThreadPoolExecutor" || func.ends_with(".ThreadPoolExecutor")).then_some(n)
}

/// The `max_workers` argument's value node.
fn workers_arg<'t>(f: &SourceFile, call: Node<'t>) -> Option<Node<'t>> {
    let args = call.child_by_field_name("arguments")?;
    let mut c = args.walk();
    let mut first_positional = None;
    for a in args.named_children(&mut c) {
        if a.kind() == "keyword_argument" {
            if a.child_by_field_name("name").map(|k| f.text_of(k)) == Some("max_workers") {
                return a.child_by_field_name("value");
            }
        } else if first_positional.is_none() && a.kind() != "comment" {
            first_positional = Some(a);
        }
    }
    first_positional
}

/// Follows a value to the literal that sets it.
fn resolve(repo: &Repo, f: &SourceFile, v: Node<'_>, depth: u8) -> Option<Bound> {
    if depth > 4 {
        return None;
    }
    let here = |n: Node<'_>, quoted: bool| {
        let t = f.text_of(n).trim_matches(|c| c == '"' || c == '\'');
        Some(Bound {
            file: f.rel.clone(),
            line: n.start_position().row + 1,
            start: n.start_byte() + usize::from(quoted),
            end: n.end_byte() - usize::from(quoted),
            value: t.replace('_', "").parse().ok(),
            quoted,
        })
    };
    match v.kind() {
        "integer" => here(v, false),
        "string" => here(v, true),
        "identifier" => {
            let name = f.text_of(v);
            if let Some(rhs) = assignment(f, name) {
                return resolve(repo, f, rhs, depth + 1);
            }
            let (module, orig) = imported_from(f, name)?;
            let g = module_file(repo, f, &module)?;
            let rhs = assignment(g, &orig)?;
            resolve(repo, g, rhs, depth + 1)
        }
        "attribute" => {
            let obj = f.text_of(v.child_by_field_name("object")?);
            let attr = f.text_of(v.child_by_field_name("attribute")?);
            let module = module_alias(f, obj)?;
            let g = module_file(repo, f, &module)?;
            let rhs = assignment(g, attr)?;
            resolve(repo, g, rhs, depth + 1)
        }
        // int(os.environ.get("X", "64")) / int(os.getenv("X", 64)): the default.
        "call" => {
            let func = f.text_of(v.child_by_field_name("function")?);
            let args = v.child_by_field_name("arguments")?;
            let n = args.named_child_count();
            if func == "int" && n == 1 {
                return resolve(repo, f, args.named_child(0)?, depth + 1);
            }
            if (func.ends_with("environ.get") || func.ends_with("getenv")) && n == 2 {
                return resolve(repo, f, args.named_child(1)?, depth + 1);
            }
            None
        }
        _ => None,
    }
}

/// The right-hand side of the last module-level `name = …`.
fn assignment<'t>(f: &'t SourceFile, name: &str) -> Option<Node<'t>> {
    let root = f.tree.root_node();
    let mut c = root.walk();
    let mut found = None;
    for st in root.named_children(&mut c) {
        if st.kind() != "expression_statement" {
            continue;
        }
        let Some(a) = st.named_child(0) else { continue };
        if a.kind() == "assignment"
            && a.child_by_field_name("left").map(|l| f.text_of(l)) == Some(name)
        {
            found = a.child_by_field_name("right");
        }
    }
    found
}

/// `from M import name [as alias]` → (M, name).
fn imported_from(f: &SourceFile, alias: &str) -> Option<(String, String)> {
    let root = f.tree.root_node();
    let mut c = root.walk();
    for st in root.named_children(&mut c) {
        if st.kind() != "import_from_statement" {
            continue;
        }
        let module = f.text_of(st.child_by_field_name("module_name")?).to_owned();
        let mut cc = st.walk();
        for name in st.children_by_field_name("name", &mut cc) {
            let (orig, local) = if name.kind() == "aliased_import" {
                (
                    f.text_of(name.child_by_field_name("name")?),
                    f.text_of(name.child_by_field_name("alias")?),
                )
            } else {
                (f.text_of(name), f.text_of(name))
            };
            if local == alias {
                return Some((module, orig.to_owned()));
            }
        }
    }
    None
}

/// The module a local name refers to: `import settings`, `import app.settings as settings`,
/// `from app import settings`, `from . import settings`.
fn module_alias(f: &SourceFile, alias: &str) -> Option<String> {
    let root = f.tree.root_node();
    let mut c = root.walk();
    for st in root.named_children(&mut c) {
        match st.kind() {
            "import_statement" => {
                let mut cc = st.walk();
                for name in st.children_by_field_name("name", &mut cc) {
                    if name.kind() == "aliased_import" {
                        if name.child_by_field_name("alias").map(|a| f.text_of(a)) == Some(alias) {
                            return Some(f.text_of(name.child_by_field_name("name")?).to_owned());
                        }
                    } else if f.text_of(name) == alias {
                        return Some(alias.to_owned());
                    }
                }
            }
            "import_from_statement" => {
                if let Some((module, orig)) = imported_from(f, alias) {
                    let sep = if module.ends_with('.') { "" } else { "." };
                    return Some(format!("{module}{sep}{orig}"));
                }
            }
            _ => {}
        }
    }
    None
}

/// The repository file of a module name, relative (`.settings`) or absolute (`app.settings`).
fn module_file<'r>(repo: &'r Repo, from: &SourceFile, module: &str) -> Option<&'r SourceFile> {
    let dots = module.chars().take_while(|&c| c == '.').count();
    let rest = module[dots..].replace('.', "/");
    if dots > 0 {
        let mut dir: Vec<&str> = from.rel.split('/').collect();
        dir.pop();
        for _ in 1..dots {
            dir.pop();
        }
        let base = if dir.is_empty() { rest } else { format!("{}/{rest}", dir.join("/")) };
        return repo
            .file(&format!("{base}.py"))
            .or_else(|| repo.file(&format!("{base}/__init__.py")));
    }
    let want = [format!("{rest}.py"), format!("{rest}/__init__.py")];
    repo.files
        .iter()
        .filter(|g| g.lang == Lang::Python)
        .find(|g| want.iter().any(|w| g.rel == *w || g.rel.ends_with(&format!("/{w}"))))
}

impl PyPool {
    fn bound_of(&self, repo: &Repo, f: &SourceFile, call: Node<'_>) -> Option<Bound> {
        resolve(repo, f, workers_arg(f, call)?, 0)
    }
}

impl Pattern for PyPool {
    fn name(&self) -> &'static str {
        "py-thread-pool"
    }

    fn find(&self, f: &SourceFile, repo: &Repo) -> Vec<Site> {
        if f.lang != Lang::Python {
            return Vec::new();
        }
        super::sites_in(f, |n| {
            let call = pool_call(f, n)?;
            let bound = self.bound_of(repo, f, call);
            let here = format!("{}:{}", f.rel, n.start_position().row + 1);
            let description = match &bound {
                Some(Bound { value: Some(v), file, line, .. })
                    if format!("{file}:{line}") != here =>
                {
                    format!(
                        "a thread pool of {v} workers (size set at {file}:{line}) runs that many calls at once"
                    )
                }
                Some(Bound { value: Some(v), .. }) => {
                    format!("a thread pool of {v} workers runs that many calls at once")
                }
                _ => "a thread pool whose size could not be followed to a number".into(),
            };
            let mut site = Site::at(
                self.name(),
                f,
                n,
                description,
                vec![FixKind::Concurrency],
                enclosing_submits(f, n),
            );
            site.bound_at = bound.as_ref().map(|b| format!("{}:{}", b.file, b.line));
            site.current_bound = bound.and_then(|b| b.value);
            Some(site)
        })
    }

    fn rewrite(&self, site: &Site, repo: &Repo, fix: &Fix) -> Result<Vec<FileEdit>, String> {
        let f = super::site_file(repo, site)?;
        let call = super::find_at(f, site, |n| pool_call(f, n))?;
        let note = format!("  # at most {} calls in flight (af: {})", fix.bound, fix.metric);
        match self.bound_of(repo, f, call) {
            Some(b) => {
                if b.value.is_some_and(|v| v <= u64::from(fix.bound)) {
                    return Err(format!(
                        "the pool at {} already has {} ≤ {} workers",
                        site.location(),
                        b.value.unwrap_or(0),
                        fix.bound
                    ));
                }
                let g = repo.file(&b.file).ok_or("the bound's file is gone")?;
                let mut text = splice(&g.text, b.start, b.end, &fix.bound.to_string());
                // A comment at the end of the line, when it has none.
                let line_end = text[b.start..].find('\n').map_or(text.len(), |i| b.start + i);
                if !text[..line_end].rsplit('\n').next().unwrap_or("").contains('#') && !b.quoted {
                    text.insert_str(line_end, &note);
                }
                Ok(vec![FileEdit { file: g.rel.clone(), text }])
            }
            None => {
                // No number to change: pass the bound at the call.
                let args = call.child_by_field_name("arguments").ok_or("no arguments")?;
                let new = match workers_arg(f, call) {
                    Some(v) => splice(
                        &f.text,
                        v.start_byte(),
                        v.end_byte(),
                        &format!("min({}, {})", f.text_of(v), fix.bound),
                    ),
                    None => {
                        let inner =
                            f.text_of(args).trim_start_matches('(').trim_end_matches(')').trim();
                        let sep = if inner.is_empty() { "" } else { ", " };
                        splice(
                            &f.text,
                            args.start_byte(),
                            args.end_byte(),
                            &format!("({inner}{sep}max_workers={})", fix.bound),
                        )
                    }
                };
                Ok(vec![FileEdit { file: f.rel.clone(), text: new }])
            }
        }
    }
}

/// Names submitted or mapped onto the pool inside the `with` block around it.
fn enclosing_submits(f: &SourceFile, pool: Node<'_>) -> Vec<String> {
    let scope = std::iter::successors(Some(pool), |n| n.parent())
        .find(|n| matches!(n.kind(), "with_statement" | "function_definition" | "module"))
        .unwrap_or(pool);
    let mut out = Vec::new();
    walk(scope, &mut |n| {
        if n.kind() != "call" {
            return;
        }
        let Some(func) = n.child_by_field_name("function") else { return };
        let t = f.text_of(func);
        if (t.ends_with(".submit") || t.ends_with(".map"))
            && let Some(first) = n.child_by_field_name("arguments").and_then(|a| a.named_child(0))
        {
            out.extend(super::identifiers(f.text_of(first)));
        }
    });
    out.dedup();
    out
}
