//! Helpers the CLI test binaries share: the workspace root, the `af` binary, and `af` servers
//! (`af mock`, `af record`) started as real processes on loopback.
#![allow(dead_code)] // each test binary uses a different part

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

pub fn af_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("af")
}

/// A running `af` server and the addresses it announced on stderr.
pub struct Server {
    pub child: Child,
    pub addrs: Vec<String>,
}

impl Server {
    /// Starts `af ARGS` and waits for `lines` announcements containing an address.
    pub fn start(args: &[&str], env: &[(&str, &Path)], lines: usize) -> Self {
        let mut cmd = Command::new(af_bin());
        cmd.current_dir(root()).args(args).stderr(Stdio::piped()).stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn af");
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut addrs = Vec::new();
        let mut line = String::new();
        while addrs.len() < lines {
            line.clear();
            assert!(
                err.read_line(&mut line).expect("read") > 0,
                "af exited before announcing: {args:?}"
            );
            if let Some(a) = line.split_whitespace().find_map(|w| {
                let w = w.trim_end_matches([';', ',', ')']);
                let w = w.split("://").last().unwrap_or(w);
                (w.starts_with("127.0.0.1:") && w[10..].chars().all(|c| c.is_ascii_digit()))
                    .then(|| w.to_owned())
            }) {
                addrs.push(a);
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in err.lines() {});
        Self { child, addrs }
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        self.child.wait().expect("wait")
    }
}

/// curl with a timeout: (succeeded, stdout).
pub fn curl(args: &[&str]) -> (bool, String) {
    let out =
        Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("curl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// GET with curl: (status, body).
pub fn get(url: &str) -> (u16, String) {
    let out =
        Command::new("curl").args(["-s", "-w", "\n%{http_code}", url]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

pub fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, String, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("body");
    std::fs::write(&f, body).expect("body");
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-w", "\n%{http_code}", "-X", "POST", "-H"])
        .arg(format!("content-type: {content_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", f.display()))
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (rest, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or(("", rest));
    (code.trim().parse().unwrap_or(0), headers.to_lowercase(), body.to_owned())
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

pub fn wait_for(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> Option<serde_json::Value>,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the bundled example's `sync` from `worktree` against its Gmail simulator through `af
/// record --push BASE` (service `radar`), writing the recording to `out`.
pub fn push_fixed_traffic(worktree: &Path, base: &str, out: &Path) {
    let mut sim = Command::new("node")
        .arg(root().join("examples/radar/gmail-sim/server.js"))
        .arg("0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    let mut line = String::new();
    std::io::BufReader::new(sim.stdout.take().expect("out"))
        .read_line(&mut line)
        .expect("sim line");
    let sim_port = line
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .expect(&line)
        .to_owned();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let rec = Command::new(af_bin())
        .current_dir(worktree)
        .env("GMAIL_API_URL", format!("http://127.0.0.1:{proxy}"))
        .args(["record", "--force", "-o"])
        .arg(out)
        .args(["--push", base, "--push-service", "radar", "--reverse"])
        .arg(format!("127.0.0.1:{proxy}=http://127.0.0.1:{sim_port}"))
        .args(["--", "node", "src/cli.js", "sync"])
        .output()
        .expect("af record");
    let _ = sim.kill();
    let _ = sim.wait();
    let err = String::from_utf8_lossy(&rec.stderr);
    assert!(rec.status.success(), "{err}");
    assert!(err.contains("exchanges pushed"), "{err}");
}

/// Sleeps until just past the next multiple of `secs` (the next window's start).
pub fn sleep_past_window(secs: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let next = (now.as_secs() / secs + 1) * secs;
    std::thread::sleep(Duration::from_secs(next) - now + Duration::from_millis(100));
}

/// The `host:port` of the `http://…` address in af serve's start line.
pub fn http_of(line: &str) -> String {
    line.split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no http:// address in {line:?}"))
        .to_owned()
}
