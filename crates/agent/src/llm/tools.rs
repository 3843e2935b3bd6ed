//! What the LLM Planner and Worker share: reading and searching code inside a root, tool specs
//! from Rust argument types, argument parsing, and the trajectory file.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::model::ToolSpec;

/// `read_file` arguments.
#[derive(Deserialize, JsonSchema)]
pub struct ReadFile {
    /// Path relative to the project.
    pub path: String,
    /// First line (1-based), default 1.
    pub start_line: Option<usize>,
    /// Last line, default start + 399.
    pub end_line: Option<usize>,
}

/// `search` arguments.
#[derive(Deserialize, JsonSchema)]
pub struct Search {
    /// Text to find (plain, case-sensitive).
    pub text: String,
}

/// `list_files` arguments.
#[derive(Deserialize, JsonSchema)]
pub struct ListFiles {
    /// Only files under this directory (relative to the project); default: all.
    pub under: Option<String>,
}

/// `list_files`: the project's files with sizes (vendored, generated and ignored trees left
/// out), first 500.
pub fn list_files(root: &Path, a: &ListFiles) -> Result<String, String> {
    let prefix = match a
        .under
        .as_deref()
        .map(|u| u.trim_matches('/'))
        .filter(|u| !u.is_empty() && *u != ".")
    {
        Some(u) => {
            inside(root, u)?;
            format!("{u}/")
        }
        None => String::new(),
    };
    let files: Vec<(String, u64)> = crate::repo::project_files(root)
        .into_iter()
        .filter(|(f, _)| f.starts_with(&prefix))
        .collect();
    if files.is_empty() {
        return Ok(format!("no files under {:?}", a.under.as_deref().unwrap_or(".")));
    }
    let mut out: Vec<String> =
        files.iter().take(500).map(|(f, n)| format!("{f} ({n} bytes)")).collect();
    if files.len() > 500 {
        out.push(format!("… and {} more", files.len() - 500));
    }
    Ok(out.join("\n"))
}

/// `find_symbol` arguments.
#[derive(Deserialize, JsonSchema)]
pub struct FindSymbol {
    /// A function, class, method, variable or constant name.
    pub name: String,
}

/// `find_symbol`: definitions, then uses (first 50), by syntax tree.
pub fn find_symbol(root: &Path, a: &FindSymbol) -> Result<String, String> {
    let repo = crate::repo::Repo::load(root).map_err(|e| e.to_string())?;
    let (defs, uses) = repo.find_symbol(&a.name, 50);
    if defs.is_empty() && uses.is_empty() {
        return Ok(format!(
            "{:?} is neither defined nor used in the project's source files",
            a.name
        ));
    }
    let mut out = format!("definitions of {}:\n", a.name);
    for d in &defs {
        out.push_str(&format!("{}:{}: [{}] {}\n", d.file, d.line, d.kind, d.text));
    }
    if defs.is_empty() {
        out.push_str("(none: defined outside the project?)\n");
    }
    out.push_str(&format!(
        "uses ({}{}):\n",
        uses.len(),
        if uses.len() == 50 { ", first 50" } else { "" }
    ));
    for u in &uses {
        out.push_str(&format!("{}:{}: {}\n", u.file, u.line, u.text));
    }
    Ok(out)
}

/// A tool spec whose schema is `T`'s.
pub fn tool<T: JsonSchema>(name: &str, description: &str) -> ToolSpec {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
        o.entry("properties").or_insert_with(|| json!({}));
    }
    ToolSpec { name: name.into(), description: description.into(), schema }
}

/// Parses a tool's arguments into its type; the error goes back to the model.
pub fn parse<T: for<'de> Deserialize<'de>>(name: &str, v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("{name}: {e}"))
}

/// `p` inside `root` (no absolute paths, no `..`).
pub fn inside(root: &Path, p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    if path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{p}: use a path inside the project"));
    }
    Ok(root.join(path))
}

/// `read_file`: numbered lines.
pub fn read_file(root: &Path, a: &ReadFile) -> Result<String, String> {
    let text =
        std::fs::read_to_string(inside(root, &a.path)?).map_err(|e| format!("{}: {e}", a.path))?;
    let start = a.start_line.unwrap_or(1).max(1);
    let end = a.end_line.unwrap_or(start + 399);
    Ok(text
        .lines()
        .enumerate()
        .skip(start - 1)
        .take(end.saturating_sub(start) + 1)
        .map(|(i, l)| format!("{:>5}  {l}", i + 1))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `search`: `file:line: text` for every source line containing the text (first 100). Plain
/// text: nothing is parsed.
pub fn search(root: &Path, a: &Search) -> Result<String, String> {
    let (texts, _) = crate::repo::source_texts(root);
    let hits: Vec<String> = texts
        .iter()
        .flat_map(|(rel, _, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains(&a.text))
                .map(|(i, l)| format!("{rel}:{}: {}", i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .take(100)
        .collect();
    Ok(if hits.is_empty() { format!("no match for {:?}", a.text) } else { hits.join("\n") })
}

/// `trajectory.jsonl` in the run directory, appended to (the Planner's turns, then the
/// Worker's).
pub struct Trajectory(Option<std::fs::File>);

impl Trajectory {
    /// Opens (appends to) the run's trajectory.
    pub fn open(dir: &Path) -> Self {
        Self(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("trajectory.jsonl"))
                .ok(),
        )
    }

    /// One line.
    pub fn log(&mut self, v: &Value) {
        if let Some(f) = self.0.as_mut() {
            let _ = writeln!(f, "{v}");
        }
    }
}

/// Large tool results go to the trajectory by digest.
pub fn digest_if_large(s: &str) -> Value {
    if s.len() <= 4096 {
        return json!(s);
    }
    let d = Sha256::digest(s.as_bytes());
    json!({"sha256": d.iter().map(|b| format!("{b:02x}")).collect::<String>(), "bytes": s.len(), "head": s.chars().take(512).collect::<String>()})
}
