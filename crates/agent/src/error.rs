//! The agent's errors, like the snapshot crate's: what failed — the path, the command — and
//! its source, and whether it is the user's to fix (a bad input, a file af cannot write, a
//! missing or failing `git`: exit 2) or a bug in af (exit 3). The CLI maps them in one place.

use std::path::PathBuf;

/// What can stop the Planner or the Worker.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad input: snapshot, source, plan, config, command.
    #[error("{0}")]
    Input(String),
    /// A file or directory af could not read or write.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `write`, `create`, `read`, `copy`, `link`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A program af needs is not there (`git`).
    #[error("{program} could not be started ({source}); af needs it to {why}")]
    NotInstalled {
        /// The program.
        program: &'static str,
        /// What for.
        why: &'static str,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// A program af ran failed (a git command in the user's repository).
    #[error("`{command}` in {} failed: {stderr}", dir.display())]
    Command {
        /// The command line.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// What it said.
        stderr: String,
    },
    /// A measurement could not run (the program could not start, a port, the snapshot).
    #[error("{what}: {source}")]
    Measure {
        /// Which one: `baseline`, `confirm`.
        what: &'static str,
        /// Why.
        #[source]
        source: af_measure::MeasureError,
    },
    /// A bug in af.
    #[error("{0}")]
    Internal(String),
}

impl AgentError {
    /// Whether the user can fix it (exit 2), rather than a bug in af (exit 3).
    pub fn is_input(&self) -> bool {
        !matches!(self, Self::Internal(_))
    }

    /// An I/O error on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}
