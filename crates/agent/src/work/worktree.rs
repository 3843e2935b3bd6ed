//! The fix's worktree: `git worktree add` on a new branch when the source is a clean checkout,
//! else a copy with a fresh repository; the project's installed dependencies linked in and
//! kept out of every add; and the one way af runs git.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::WorkError;

pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<String, WorkError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=af", "-c", "user.email=af@localhost", "-c", "commit.gpgsign=false"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| WorkError::NotInstalled {
            program: "git",
            why: "make the fix's worktree, branch and commit",
            source,
        })?;
    if !out.status.success() {
        return Err(WorkError::Command {
            command: format!("git {}", args.join(" ")),
            dir: dir.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// Installed dependencies a project keeps beside its code, untracked: what its program and
/// tests need to run, and what no fix edits. A worktree gets them as symlinks to the source's.
const DEPENDENCY_DIRS: &[&str] = &["node_modules", ".venv", "venv", "__pypackages__", "vendor"];

/// Links every dependency directory `from` has and `to` lacks (untracked, so a git worktree
/// does not have it); returns the names linked.
fn link_dependencies(from: &Path, to: &Path) -> std::io::Result<Vec<String>> {
    let mut linked = Vec::new();
    for name in DEPENDENCY_DIRS {
        let (src, dst) = (from.join(name), to.join(name));
        if src.is_dir() && std::fs::symlink_metadata(&dst).is_err() {
            std::os::unix::fs::symlink(src.canonicalize()?, &dst)?;
            linked.push((*name).to_owned());
        }
    }
    Ok(linked)
}

/// The pathspecs that leave `paths` (relative to the top of the repository at `top`) out of an
/// add: `:(top,exclude)PATH` for each that git does not ignore already. A path git ignores
/// must not be named, not even to exclude it: `git add` then exits 1 ("paths are ignored").
fn exclusions(top: &Path, paths: Vec<String>) -> Vec<String> {
    if paths.is_empty() {
        return Vec::new();
    }
    // One `git check-ignore` for all: it prints the paths git ignores (exit 1 when none).
    let ignored: Vec<String> = Command::new("git")
        .arg("-C")
        .arg(top)
        .args(["check-ignore", "--"])
        .args(&paths)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect())
        .unwrap_or_default();
    paths
        .into_iter()
        .filter(|p| !ignored.contains(p))
        .map(|p| format!(":(top,exclude){p}"))
        .collect()
}

/// Copies `from` into `to`, leaving out `.git` and `.af`; dependency directories at the top
/// ([`DEPENDENCY_DIRS`]) are linked, not copied.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_dir(from, to, true)
}

fn copy_dir(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if name == ".git" || name == ".af" {
            continue;
        }
        if top && DEPENDENCY_DIRS.iter().any(|d| name == *d) && e.file_type()?.is_dir() {
            std::os::unix::fs::symlink(e.path().canonicalize()?, to.join(&name))?;
            continue;
        }
        let ty = e.file_type()?;
        let dst = to.join(&name);
        if ty.is_dir() {
            copy_dir(&e.path(), &dst, false)?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(e.path())?;
            std::os::unix::fs::symlink(target, dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

/// The worktree `make_worktree` made.
pub(crate) struct Tree {
    /// The project directory in it.
    pub project: PathBuf,
    /// The commit the branch starts from.
    pub base: String,
    /// Pathspecs leaving the linked dependency directories out of every add and diff
    /// (`:(top,exclude)node_modules`): a symlink is not a directory to git, so a `.gitignore`
    /// line `node_modules/` does not cover it.
    pub excluded: Vec<String>,
}

/// A worktree of the source on `branch`: `git worktree add` when the source is a clean git
/// checkout, else a copy with a fresh repository. Installed dependencies the source has
/// beside its code are linked into it.
pub(crate) fn make_worktree(source: &Path, wt: &Path, branch: &str) -> Result<Tree, WorkError> {
    let linking = || WorkError::io("link the installed dependencies into", wt);
    let top = git(source, &["rev-parse", "--show-toplevel"]).ok();
    if let Some(top) = top {
        let prefix = git(source, &["rev-parse", "--show-prefix"])?;
        let dirty = git(source, &["status", "--porcelain", "--", "."])?;
        if dirty.is_empty() {
            let base = git(source, &["rev-parse", "HEAD"])?;
            git(
                Path::new(&top),
                &["worktree", "add", "-q", "-b", branch, &wt.to_string_lossy(), "HEAD"],
            )?;
            let project = wt.join(&prefix);
            // The installed dependencies, at the repository's top and the project's.
            let mut linked = link_dependencies(Path::new(&top), wt).map_err(linking())?;
            if !prefix.is_empty() {
                linked.extend(
                    link_dependencies(source, &project)
                        .map_err(linking())?
                        .into_iter()
                        .map(|n| format!("{prefix}{n}")),
                );
            }
            let excluded = exclusions(wt, linked);
            return Ok(Tree { project, base, excluded });
        }
    }
    copy_tree(source, wt).map_err(WorkError::io("copy", source))?;
    git(wt, &["init", "-q", "-b", branch])?;
    let linked = DEPENDENCY_DIRS
        .iter()
        .filter(|d| wt.join(d).is_symlink())
        .map(|d| (*d).to_owned())
        .collect();
    let excluded = exclusions(wt, linked);
    let mut add = vec!["add", "-A", "--", "."];
    add.extend(excluded.iter().map(String::as_str));
    git(wt, &add)?;
    git(wt, &["commit", "-q", "-m", "af: the code as planned"])?;
    let base = git(wt, &["rev-parse", "HEAD"])?;
    Ok(Tree { project: wt.to_owned(), base, excluded })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) {
        git(dir, args).expect("git");
    }

    #[test]
    fn worktrees_get_the_sources_installed_dependencies_and_never_commit_them() {
        // `node_modules/` covers directories only, so the symlink needs an exclusion;
        // `node_modules` covers the symlink too, and naming it in a pathspec would fail the add.
        for (in_git, ignore) in [
            (true, "node_modules/\n.venv/\n"),
            (false, "node_modules/\n.venv/\n"),
            (true, "node_modules\n.venv\n"),
            (false, "node_modules\n.venv\n"),
        ] {
            let tmp = tempfile::tempdir().expect("tmp");
            let src = tmp.path().join("svc");
            std::fs::create_dir_all(src.join("node_modules/lib")).expect("deps");
            std::fs::write(src.join("node_modules/lib/index.js"), "module.exports = 1;\n")
                .expect("w");
            std::fs::create_dir_all(src.join(".venv/bin")).expect("venv");
            std::fs::write(src.join("app.js"), "require('lib');\n").expect("w");
            std::fs::write(src.join(".gitignore"), ignore).expect("w");
            if in_git {
                sh(&src, &["init", "-q", "-b", "main"]);
                sh(&src, &["add", "-A"]);
                sh(&src, &["commit", "-q", "-m", "init"]);
            }
            let wt = tmp.path().join("wt");
            let tree = make_worktree(&src, &wt, "af/test").expect("prepare");
            let dep = tree.project.join("node_modules");
            assert!(dep.is_symlink(), "in_git={in_git}: node_modules linked");
            assert!(tree.project.join("node_modules/lib/index.js").is_file());
            assert!(tree.project.join(".venv").is_symlink());
            // An edit, then the add a commit does: only the edit is staged.
            std::fs::write(tree.project.join("app.js"), "require('lib'); // fixed\n").expect("w");
            let mut add = vec!["add", "-A", "--", "."];
            add.extend(tree.excluded.iter().map(String::as_str));
            sh(&tree.project, &add);
            let staged = git(&tree.project, &["diff", "--cached", "--name-only"]).expect("diff");
            assert_eq!(staged, "app.js", "in_git={in_git}");
            let base_files =
                git(&tree.project, &["ls-tree", "-r", "--name-only", &tree.base]).expect("ls");
            assert!(!base_files.contains("node_modules"), "in_git={in_git}: {base_files}");
        }
    }
}
