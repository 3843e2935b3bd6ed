//! Exit codes, in one place (DESIGN.md §2), and the single point where errors are reported.
//! `main` parses, `cmd::dispatch` runs the verb, [`report`] turns an error into its code.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (also: stdout closed early, e.g. `af inspect … | head`) |
//! | 1 | a check failed (regression, expectation not met, fix not confirmed) |
//! | 2 | usage or input error: bad flags, unreadable or invalid snapshot |
//! | 3 | internal error: a bug in `af` |

use af_snapshot::SnapshotError;

/// Success.
pub const OK: i32 = 0;
/// A check failed (used by verbs that gate CI).
pub const CHECK_FAILED: i32 = 1;
/// Usage or input error.
pub const INPUT: i32 = 2;
/// Internal error.
pub const INTERNAL: i32 = 3;

/// An error the user caused with flags or arguments (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Prints an error once, the whole chain on one line, and returns its exit code: 2 for what
/// the user can fix (flags, input files), 3 for a bug in af, 0 when stdout was closed early.
pub fn report(e: &anyhow::Error) -> i32 {
    if is_broken_pipe(e) {
        return OK;
    }
    let code = classify(e);
    // One line, the whole chain: `error: capture.har:45: entry 3: field `…`: why`.
    let mut msg = format!("error: {}", chain(e));
    if code == INTERNAL {
        msg.push_str("\n(this is a bug in af; please report it with the command line)");
    }
    eprintln!("{msg}");
    code
}

/// The error and its causes, `: `-separated, each cause said once: an error whose message
/// already quotes its source (`cannot access x: No such file…`) does not get it again.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let text = c.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn classify(e: &anyhow::Error) -> i32 {
    // Input problems (bad snapshot, bad flags) and I/O on the user's files are exit 2; anything
    // else reaching here is a bug.
    let input = e.chain().any(|c| {
        c.is::<SnapshotError>()
            || c.is::<UsageError>()
            || c.is::<af_snapshot::RecordError>()
            || c.downcast_ref::<af_agent::AgentError>().is_some_and(af_agent::AgentError::is_input)
            || c.is::<std::io::Error>()
    });
    if input { INPUT } else { INTERNAL }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_already_quotes_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(SnapshotError::io("/x.har", io));
        assert_eq!(chain(&e), "cannot access /x.har: No such file or directory");
        let e = anyhow::Error::new(UsageError("bad".into())).context("before (a.har)");
        assert_eq!(chain(&e), "before (a.har): bad");
    }

    /// The agent's errors say whose they are: a missing git or an unwritable run directory is
    /// the user's to fix (exit 2), only a bug is exit 3.
    #[test]
    fn agent_errors_map_to_input_or_internal() {
        use af_agent::AgentError;
        let missing = AgentError::NotInstalled {
            program: "git",
            why: "make the fix's worktree",
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"),
        };
        let e = anyhow::Error::new(missing);
        assert_eq!(classify(&e), INPUT);
        assert!(
            chain(&e).starts_with("git could not be started (No such file or directory)"),
            "{}",
            chain(&e)
        );
        let io = AgentError::io("write", "/ro/.af/runs/x/plan.json")(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "Permission denied",
        ));
        assert_eq!(classify(&anyhow::Error::new(io)), INPUT);
        assert_eq!(classify(&anyhow::Error::new(AgentError::Internal("bug".into()))), INTERNAL);
    }
}
