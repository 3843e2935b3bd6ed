//! `af.toml` in the target repository (optional): how to run it against the mock and how to
//! test it.
//!
//! ```toml
//! [run]
//! command = "node src/cli.js sync"   # the harness's program
//! url_env = "GMAIL_API_URL"          # set to the mock's base URL
//! timeout = "60s"
//! caller_key = "auto"               # or header:NAME, query:NAME
//! [test]
//! command = "node --test test/"
//! timeout = "120s"
//! ```

use std::path::Path;

use serde::Deserialize;

/// The parsed `af.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// How the harness runs the program.
    #[serde(default)]
    pub run: RunConfig,
    /// The repository's tests.
    #[serde(default)]
    pub test: TestConfig,
}

/// `[run]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Shell-style command line.
    pub command: Option<String>,
    /// Variable(s) set to the mock's base URL.
    pub url_env: Option<String>,
    /// Per-run time-out (`60s`).
    pub timeout: Option<String>,
    /// Who the upstream counts limits for: `auto` (the credential), `header:NAME`, `query:NAME`.
    pub caller_key: Option<String>,
}

/// `[test]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// Shell-style command line.
    pub command: Option<String>,
    /// Time-out (`120s`).
    pub timeout: Option<String>,
}

impl TargetConfig {
    /// Reads `DIR/af.toml`; a missing file is an empty config, a bad one an error naming the
    /// file, line and field.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("af.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            match line {
                Some(l) => format!("{}:{l}: {}", path.display(), e.message()),
                None => format!("{}: {}", path.display(), e.message()),
            }
        })
    }
}

/// Splits a command line the way a POSIX shell would for plain words and quotes (no
/// expansion): `node "my file.js" --x='a b'` → `[node, my file.js, --x=a b]`.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("{s:?}: unclosed '")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err(format!("{s:?}: trailing \\")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("{s:?}: unclosed \"")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or_else(|| format!("{s:?}: trailing \\"))?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    if out.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            split_command(r#"node "my file.js" --x='a b' c\ d"#).unwrap(),
            vec!["node", "my file.js", "--x=a b", "c d"]
        );
        assert!(split_command("node 'oops").is_err());
        assert!(split_command("  ").is_err());
    }

    #[test]
    fn bad_config_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("af.toml"), "[run]\ncommand = \"x\"\nbogus = 1\n").unwrap();
        let e = TargetConfig::load(d.path()).unwrap_err();
        assert!(e.contains("af.toml:3") && e.contains("bogus"), "{e}");
        assert!(TargetConfig::load(&d.path().join("nope")).unwrap().run.command.is_none());
    }
}
