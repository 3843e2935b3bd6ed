//! The harness spec (DESIGN.md §5) and its hash: what a measurement ran, so a confirm run can
//! prove it ran the identical harness.

use std::path::Path;

use af_mock::MockConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` of every harness spec this version writes and reads.
pub const HARNESS_FORMAT: &str = "af.harness/1";

/// Everything that determines a measurement. Its canonical-JSON SHA-256 is the harness hash.
/// It round-trips: `plan.json` and `harness.json` hold it, and `af work` reads it back.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct HarnessSpec {
    /// Always `af.harness/1`.
    pub format: String,
    /// SHA-256 of the snapshot file(s) the mock serves.
    pub snapshot_digest: String,
    /// How the mock answers.
    #[schemars(with = "serde_json::Value")]
    pub mock: MockConfig,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Environment variables set to the mock's base URL.
    pub url_env: Vec<String>,
    /// Kill the program after this many ms.
    pub timeout_ms: u64,
    /// Runs.
    pub runs: u32,
    /// Metrics, canonical form.
    pub metrics: Vec<String>,
    /// Expectations, one per metric (`<= 10`), or empty.
    pub expect: Vec<String>,
    /// Whether credentials were kept in the program's environment.
    pub keep_env: bool,
    /// Whether the program reached the mock as a forward proxy (`HTTPS_PROXY`, CONNECT
    /// interception with the local CA).
    #[serde(default)]
    pub proxy: bool,
    /// Runs at the same time, each with its own mock on its own port and its own process
    /// group (they share nothing but the machine). Left out of the JSON when false, so the
    /// hashes of sequential harnesses are what they were before this field existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parallel: bool,
    /// A driver the harness runs that is not the code under test (a program the LLM Planner
    /// wrote to call the suspect code when the project has no command of its own). Its digest
    /// is part of the hash, so a driver edited between baseline and confirm is a different
    /// harness. Left out of the JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
}

/// A harness driver: its path and content digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Driver {
    /// Absolute path.
    pub path: String,
    /// SHA-256 of its content, hex.
    pub sha256: String,
}

impl Driver {
    /// The driver at `path`, digested now.
    pub fn at(path: &Path) -> std::io::Result<Self> {
        Ok(Self { path: path.display().to_string(), sha256: digest_files(&[path])? })
    }

    /// Errors unless the file still has the digest the harness was made with.
    pub fn verify(&self) -> Result<(), String> {
        let now =
            digest_files(&[Path::new(&self.path)]).map_err(|e| format!("{}: {e}", self.path))?;
        if now == self.sha256 {
            Ok(())
        } else {
            Err(format!(
                "{}: the harness driver changed since the harness was made (sha256 {} → {now}); a changed driver is a different harness",
                self.path, self.sha256
            ))
        }
    }
}

impl HarnessSpec {
    /// The harness hash: SHA-256 of the canonical JSON (keys sorted, no whitespace), hex.
    pub fn hash(&self) -> String {
        // serde_json's Value keeps object keys sorted (no `preserve_order`): canonical.
        let v = serde_json::to_value(self).unwrap_or_default();
        let canonical = serde_json::to_string(&v).unwrap_or_default();
        hex(&Sha256::digest(canonical.as_bytes()))
    }
}

/// SHA-256 of the files, in order (a directory: its files, sorted).
pub fn digest_files(paths: &[&Path]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    for f in files {
        h.update(f.to_string_lossy().rsplit('/').next().unwrap_or("").as_bytes());
        h.update(std::fs::read(&f)?);
    }
    Ok(hex(&h.finalize()))
}

fn collect(p: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        let mut entries: Vec<_> =
            std::fs::read_dir(p)?.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            collect(&e, out)?;
        }
    } else {
        out.push(p.to_owned());
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HarnessSpec {
        HarnessSpec {
            format: HARNESS_FORMAT.into(),
            snapshot_digest: "abc".into(),
            mock: MockConfig::default(),
            command: vec!["node".into(), "sync.js".into()],
            url_env: vec!["API_URL".into()],
            timeout_ms: 60_000,
            runs: 3,
            metrics: vec!["peak_inflight".into()],
            expect: vec!["<= 10".into()],
            keep_env: false,
            proxy: false,
            parallel: false,
            driver: None,
        }
    }

    #[test]
    fn hash_is_stable_and_changes_with_every_field() {
        let a = spec();
        assert_eq!(a.hash(), spec().hash());
        assert_eq!(a.hash().len(), 64);
        type Change = Box<dyn Fn(&mut HarnessSpec)>;
        let variants: Vec<Change> = vec![
            Box::new(|s| s.snapshot_digest.push('x')),
            Box::new(|s| s.mock.latency = af_mock::Latency::None),
            Box::new(|s| s.mock.failures = af_mock::Failures::Replay),
            Box::new(|s| s.command.push("--fast".into())),
            Box::new(|s| s.url_env.push("OTHER".into())),
            Box::new(|s| s.timeout_ms += 1),
            Box::new(|s| s.runs += 1),
            Box::new(|s| s.metrics.push("calls".into())),
            Box::new(|s| s.expect[0] = "<= 11".into()),
            Box::new(|s| s.keep_env = true),
            Box::new(|s| s.proxy = true),
            Box::new(|s| s.parallel = true),
            Box::new(|s| s.driver = Some(Driver { path: "/d.js".into(), sha256: "1".into() })),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut b = spec();
            change(&mut b);
            assert_ne!(a.hash(), b.hash(), "field change {i} must change the hash");
        }
        let d = |sha: &str| Driver { path: "/d.js".into(), sha256: sha.into() };
        let (mut b, mut c) = (spec(), spec());
        b.driver = Some(d("1"));
        c.driver = Some(d("2"));
        assert_ne!(b.hash(), c.hash(), "the driver's digest is part of the hash");
    }

    #[test]
    fn a_driver_edited_after_the_harness_was_made_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("driver.js");
        std::fs::write(&path, "console.log(1)\n").expect("write");
        let d = Driver::at(&path).expect("digest");
        assert!(d.verify().is_ok());
        std::fs::write(&path, "console.log(2)\n").expect("write");
        let err = d.verify().expect_err("changed");
        assert!(err.contains("driver.js") && err.contains("changed"), "{err}");
    }
}
