//! The run directory `.af/runs/<id>/` (DESIGN.md §6): everything one plan/work produced.

use std::path::{Path, PathBuf};

/// A new run id: UTC time plus a few random hex digits, sortable.
pub fn new_id() -> String {
    let now = jiff::Timestamp::now();
    let t = now.strftime("%Y%m%d-%H%M%S").to_string();
    let nanos = now.subsec_nanosecond();
    format!("{t}-{:04x}", (nanos as u32 ^ std::process::id()) & 0xffff)
}

/// Creates `root/<id>/`, and a `.gitignore` in `root`'s `.af` parent so runs never show up as
/// changes in the user's repository.
pub fn create(root: &Path, id: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir)?;
    if let Some(af) = root.parent().filter(|p| p.file_name().is_some_and(|n| n == ".af")) {
        let gi = af.join(".gitignore");
        if !gi.exists() {
            std::fs::write(gi, "*\n")?;
        }
    }
    Ok(dir)
}

/// Writes pretty JSON with a trailing newline.
pub fn write_json(path: &Path, v: &impl serde::Serialize) -> std::io::Result<()> {
    let mut s = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    s.push('\n');
    std::fs::write(path, s)
}
