//! The target repository as the agent sees it: source files by language, parsed with
//! tree-sitter. Vendored and generated trees (`node_modules`, `vendor`, `.git`, `.af`,
//! `target`, what `.gitignore` says) are not read.

use std::path::{Path, PathBuf};

use tree_sitter::{Node, Parser, Tree};

/// A language the builtin patterns understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// `.js`, `.mjs`, `.cjs`, `.jsx`
    JavaScript,
    /// `.ts`, `.mts`, `.cts`
    TypeScript,
    /// `.tsx`
    Tsx,
    /// `.py`
    Python,
    /// `.go`
    Go,
}

impl Lang {
    /// The language of a file, by extension.
    pub fn from_path(p: &Path) -> Option<Self> {
        Some(match p.extension()?.to_str()? {
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "py" => Self::Python,
            "go" => Self::Go,
            _ => return None,
        })
    }

    /// The tree-sitter grammar.
    pub fn grammar(self) -> tree_sitter::Language {
        match self {
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::Python => tree_sitter_python::LANGUAGE.into(),
            Self::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }

    /// JavaScript or TypeScript (one family of patterns).
    pub fn is_js(self) -> bool {
        matches!(self, Self::JavaScript | Self::TypeScript | Self::Tsx)
    }
}

/// Parses `text`; `None` only if tree-sitter gives up (time-out or cancelled).
pub fn parse(lang: Lang, text: &str) -> Option<Tree> {
    let mut p = Parser::new();
    p.set_language(&lang.grammar()).ok()?;
    p.parse(text, None)
}

/// Whether `text` parses without an error or missing node.
pub fn parses_cleanly(lang: Lang, text: &str) -> bool {
    parse(lang, text).is_some_and(|t| !t.root_node().has_error())
}

/// One source file.
pub struct SourceFile {
    /// Path relative to the repository root, `/`-separated.
    pub rel: String,
    /// Its language.
    pub lang: Lang,
    /// Its text.
    pub text: String,
    /// Its syntax tree.
    pub tree: Tree,
}

impl SourceFile {
    /// Parses a file's text.
    pub fn new(rel: impl Into<String>, lang: Lang, text: String) -> Option<Self> {
        let tree = parse(lang, &text)?;
        Some(Self { rel: rel.into(), lang, text, tree })
    }

    /// The text of a node.
    pub fn text_of(&self, n: Node<'_>) -> &str {
        self.text.get(n.byte_range()).unwrap_or("")
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, byte: usize) -> usize {
        self.text.as_bytes()[..byte.min(self.text.len())].iter().filter(|&&b| b == b'\n').count()
            + 1
    }

    /// The whole line a byte offset is on, without its newline.
    pub fn line_text(&self, byte: usize) -> &str {
        let start = self.text[..byte.min(self.text.len())].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[start..].find('\n').map_or(self.text.len(), |i| start + i);
        &self.text[start..end]
    }

    /// The leading whitespace of the line a byte offset is on.
    pub fn indent_at(&self, byte: usize) -> &str {
        let line = self.line_text(byte);
        &line[..line.len() - line.trim_start().len()]
    }
}

/// Walks `n` depth-first, calling `f` on every node.
pub fn walk<'t>(n: Node<'t>, f: &mut impl FnMut(Node<'t>)) {
    f(n);
    let mut c = n.walk();
    for child in n.children(&mut c) {
        walk(child, f);
    }
}

/// The repository: every parsed source file under `root`.
pub struct Repo {
    /// The root directory.
    pub root: PathBuf,
    /// Source files, sorted by path.
    pub files: Vec<SourceFile>,
    /// Files that could not be read or parsed (path, reason): reported, never silently dropped.
    pub skipped: Vec<(String, String)>,
}

/// Directories never read.
const SKIP_DIRS: &[&str] = &[
    "node_modules",
    "vendor",
    ".git",
    ".af",
    "target",
    "__pycache__",
    ".venv",
    "venv",
    "dist",
    "build",
];
/// Files larger than this are not parsed (generated or bundled code).
const MAX_FILE: u64 = 1 << 20;

/// Walks `root` the way the agent reads a project: hidden entries, `.gitignore`d paths and
/// [`SKIP_DIRS`] left out.
fn walk_project(root: &Path) -> ignore::Walk {
    ignore::WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .require_git(false)
        // A worktree lives under `.af/`, whose `.gitignore` ignores everything.
        .parents(false)
        .filter_entry(|e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && e.file_name().to_str().is_some_and(|n| SKIP_DIRS.contains(&n)))
        })
        .build()
}

/// Every file under `root` the agent may look at (not vendored, generated or ignored), as
/// relative `/`-separated paths with sizes, sorted.
pub fn project_files(root: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = walk_project(root)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap_or(e.path());
            (rel.to_string_lossy().replace('\\', "/"), e.metadata().map_or(0, |m| m.len()))
        })
        .collect();
    out.sort();
    out
}

/// A source file's relative path, language and text.
pub type SourceText = (String, Lang, String);

/// The text of every source file under `root` (relative path, language, text), sorted, and
/// the files that could not be read (path, reason): no parsing.
pub fn source_texts(root: &Path) -> (Vec<SourceText>, Vec<(String, String)>) {
    let mut texts = Vec::new();
    let mut skipped = Vec::new();
    for entry in walk_project(root) {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Some(lang) = Lang::from_path(path) else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/");
        if entry.metadata().map(|m| m.len()).unwrap_or(0) > MAX_FILE {
            skipped.push((rel, "larger than 1 MiB".into()));
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => texts.push((rel, lang, text)),
            Err(e) => skipped.push((rel, e.to_string())),
        }
    }
    texts.sort_by(|a, b| a.0.cmp(&b.0));
    (texts, skipped)
}

impl Repo {
    /// Reads and parses every source file under `root`.
    pub fn load(root: &Path) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        let (texts, mut skipped) = source_texts(&root);
        let mut files = Vec::with_capacity(texts.len());
        for (rel, lang, text) in texts {
            match SourceFile::new(rel.clone(), lang, text) {
                Some(f) => files.push(f),
                None => skipped.push((rel, "tree-sitter could not parse it".into())),
            }
        }
        Ok(Self { root, files, skipped })
    }

    /// A repository from in-memory files (tests, codemod previews).
    pub fn from_files(root: &Path, files: Vec<SourceFile>) -> Self {
        Self { root: root.to_owned(), files, skipped: Vec::new() }
    }

    /// The file at a relative path.
    pub fn file(&self, rel: &str) -> Option<&SourceFile> {
        self.files.iter().find(|f| f.rel == rel)
    }
}

/// A place a symbol is defined or used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolHit {
    /// File, relative.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The tree-sitter node kind (`function_declaration`, `identifier`, …).
    pub kind: String,
    /// The line's text, trimmed.
    pub text: String,
}

/// Node kinds that define the name in their `name` (or Python's `left`) field.
const DEFINITIONS: &[&str] = &[
    "function_declaration",
    "generator_function_declaration",
    "class_declaration",
    "method_definition",
    "variable_declarator",
    "interface_declaration",
    "type_alias_declaration",
    "public_field_definition",
    "function_definition",
    "class_definition",
    "assignment",
    "method_declaration",
    "type_spec",
    "const_spec",
    "var_spec",
];

/// Identifier kinds a use of the name can be.
const IDENTIFIERS: &[&str] = &[
    "identifier",
    "property_identifier",
    "field_identifier",
    "type_identifier",
    "shorthand_property_identifier",
    "shorthand_property_identifier_pattern",
];

impl Repo {
    /// Where `name` is defined (functions, classes, methods, variables, constants, types) and
    /// where it is used, by syntax tree rather than text: a string or comment mentioning it is
    /// not a use. Uses are capped at `max_uses`.
    pub fn find_symbol(&self, name: &str, max_uses: usize) -> (Vec<SymbolHit>, Vec<SymbolHit>) {
        let (mut defs, mut uses) = (Vec::new(), Vec::new());
        for f in &self.files {
            let mut def_names = Vec::new();
            walk(f.tree.root_node(), &mut |n| {
                if DEFINITIONS.contains(&n.kind()) {
                    let named =
                        n.child_by_field_name("name").or_else(|| n.child_by_field_name("left"));
                    if let Some(id) = named.filter(|id| f.text_of(*id) == name) {
                        def_names.push(id.id());
                        defs.push(SymbolHit {
                            file: f.rel.clone(),
                            line: f.line_of(n.start_byte()),
                            kind: n.kind().to_owned(),
                            text: f.line_text(n.start_byte()).trim().to_owned(),
                        });
                    }
                } else if IDENTIFIERS.contains(&n.kind())
                    && f.text_of(n) == name
                    && uses.len() < max_uses
                    && !def_names.contains(&n.id())
                {
                    uses.push(SymbolHit {
                        file: f.rel.clone(),
                        line: f.line_of(n.start_byte()),
                        kind: n.kind().to_owned(),
                        text: f.line_text(n.start_byte()).trim().to_owned(),
                    });
                }
            });
        }
        (defs, uses)
    }
}

/// Style facts of a file a codemod must keep.
#[derive(Clone, Debug)]
pub struct Style {
    /// One indentation level (`"  "`, `"    "`, `"\t"`).
    pub indent: String,
    /// JS: whether statements end with `;`.
    pub semicolons: bool,
    /// Preferred string quote character.
    pub quote: char,
}

impl Style {
    /// Infers the style of `text`.
    pub fn of(text: &str, lang: Lang) -> Self {
        let mut tabs = 0;
        let mut widths = [0usize; 9];
        let (mut semi, mut nosemi) = (0, 0);
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() {
                continue;
            }
            let lead = &line[..line.len() - trimmed.len()];
            if lead.starts_with('\t') {
                tabs += 1;
            } else if !lead.is_empty() && lead.len() < widths.len() {
                widths[lead.len()] += 1;
            }
            let t = trimmed.trim_end();
            if !(t.starts_with("//") || t.starts_with('*') || t.starts_with("/*")) {
                if t.ends_with(';') {
                    semi += 1;
                } else if t.ends_with(')') || t.ends_with('\'') || t.ends_with('"') {
                    nosemi += 1;
                }
            }
        }
        let spaces: usize = widths.iter().sum();
        let indent = if lang == Lang::Go || tabs > spaces {
            "\t".to_owned()
        } else if widths[2] > 0 && widths[2] * 4 >= widths[4].max(1) {
            "  ".to_owned()
        } else if lang == Lang::Python || widths[4] > 0 {
            "    ".to_owned()
        } else {
            "  ".to_owned()
        };
        let singles = text.matches('\'').count();
        let doubles = text.matches('"').count();
        let quote = if lang == Lang::Go || doubles >= singles { '"' } else { '\'' };
        Self { indent, semicolons: semi >= nosemi, quote }
    }
}

/// A name not yet used in `text`: `base`, else `base2`, `base3`, …
pub fn fresh_name(text: &str, base: &str) -> String {
    if !contains_word(text, base) {
        return base.to_owned();
    }
    (2..).map(|i| format!("{base}{i}")).find(|n| !contains_word(text, n)).unwrap_or_default()
}

/// Whether `word` occurs in `text` as a whole identifier.
pub fn contains_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_is_inferred() {
        let js = "'use strict';\nfunction f() {\n  return g('x');\n}\n";
        let s = Style::of(js, Lang::JavaScript);
        assert_eq!((s.indent.as_str(), s.semicolons, s.quote), ("  ", true, '\''));
        let py = "def f():\n    return \"x\"\n";
        let s = Style::of(py, Lang::Python);
        assert_eq!((s.indent.as_str(), s.quote), ("    ", '"'));
        let nosemi = "const a = f(\"x\")\nfunction g() {\n    return h(a)\n}\n";
        let s = Style::of(nosemi, Lang::JavaScript);
        assert_eq!((s.indent.as_str(), s.semicolons), ("    ", false));
    }

    #[test]
    fn symbols_are_found_by_syntax_not_text() {
        let js = "// fetchMessage is called per ref\nasync function fetchMessage(g, ref) {\n  return g.get(ref.id);\n}\nconst all = (refs) => refs.map((r) => fetchMessage(null, r));\nmodule.exports = { fetchMessage };\n";
        let py = "MAX_WORKERS = 100\n\ndef pool():\n    return MAX_WORKERS\n";
        let files = vec![
            SourceFile::new("a.js", Lang::JavaScript, js.into()).expect("js"),
            SourceFile::new("b.py", Lang::Python, py.into()).expect("py"),
        ];
        let repo = Repo::from_files(Path::new("/r"), files);
        let (defs, uses) = repo.find_symbol("fetchMessage", 50);
        assert_eq!(defs.len(), 1);
        assert_eq!((defs[0].file.as_str(), defs[0].line), ("a.js", 2));
        assert_eq!(defs[0].kind, "function_declaration");
        // The call and the export; the comment is not a use, nor is the definition itself.
        let lines: Vec<usize> = uses.iter().map(|u| u.line).collect();
        assert_eq!(lines, vec![5, 6]);
        let (defs, uses) = repo.find_symbol("MAX_WORKERS", 50);
        assert_eq!(
            (defs[0].file.as_str(), defs[0].line, defs[0].kind.as_str()),
            ("b.py", 1, "assignment")
        );
        assert_eq!(uses.len(), 1);
        assert_eq!(repo.find_symbol("fetchMessage", 1).1.len(), 1, "uses are capped");
    }

    #[test]
    fn fresh_names_avoid_existing_identifiers() {
        assert_eq!(fresh_name("const limit = 1", "LIMIT"), "LIMIT");
        assert_eq!(fresh_name("const LIMIT = 1; LIMIT2", "LIMIT"), "LIMIT3");
        assert_eq!(fresh_name("MAX_LIMIT", "LIMIT"), "LIMIT");
    }
}
