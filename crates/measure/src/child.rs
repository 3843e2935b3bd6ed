//! One way to run a child with a deadline: its own process group, so that on time-out the
//! whole group is killed (a shell script's or `npm`'s children must not outlive the run), and
//! `kill_on_drop` so a cancelled wait leaves nothing behind. The harness runs and the program's
//! tests both use it.

use std::process::ExitStatus;
use std::time::Duration;

/// How a child ended.
#[derive(Debug)]
pub struct Ended {
    /// Its exit status (none when it could not be waited for).
    pub status: Option<ExitStatus>,
    /// The deadline passed and its process group was killed.
    pub timed_out: bool,
}

/// Makes `cmd` start in a process group of its own and die with its handle.
pub fn in_own_group(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    cmd.process_group(0).kill_on_drop(true)
}

/// Waits for `child` until `timeout`; past it, kills its whole process group (SIGKILL) and
/// reaps it.
pub async fn wait_or_kill(child: &mut tokio::process::Child, timeout: Duration) -> Ended {
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => Ended { status: s.ok(), timed_out: false },
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Ended { status: child.wait().await.ok(), timed_out: true }
        }
    }
}
