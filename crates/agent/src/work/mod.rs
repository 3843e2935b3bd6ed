//! The Worker (builtin engine): a git worktree on a new branch, the codemod at the best site,
//! the identical harness again, the repository's tests, the Evaluator — then the next site if
//! the evidence says no. The user's checkout is never touched and nothing is pushed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use af_measure::{Echo, measure_in};
use af_snapshot::{Bodies, ReadOptions, read_all};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::evaluate::{Evaluation, Evidence, TestRun, evaluate};
use crate::patterns::{self, Fix, builtin_patterns};
use crate::plan::{Decision, Measured, Phase, Plan};
use crate::repo::Repo;
use crate::run_dir;

mod worktree;

pub use worktree::copy_tree;
use worktree::{Tree, git, make_worktree};

/// The LLM engine's Worker: the same phase, a model deciding through tools.
pub mod llm;

/// Result schema id.
pub const RESULT_SCHEMA: &str = "af.result/1";

/// One site tried.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    /// The site.
    pub site: crate::patterns::Site,
    /// Files the codemod changed.
    pub files: Vec<String>,
    /// Why it could not be tried or did not confirm.
    pub error: Option<String>,
    /// The confirm measurement.
    pub confirm: Option<Measured>,
    /// Tests.
    pub tests: Option<TestRun>,
    /// The Evaluator's checks.
    pub evaluation: Option<Evaluation>,
}

/// `result.json`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct WorkResult {
    /// Always `af.result/1`.
    pub schema: String,
    /// The plan worked on.
    pub plan: Plan,
    /// Whether a fix was confirmed.
    pub confirmed: bool,
    /// One paragraph: what happened, with numbers.
    pub verdict: String,
    /// The branch with the fix.
    pub branch: String,
    /// The worktree (the project directory inside it).
    pub worktree: String,
    /// The commit the branch started from.
    pub base_commit: String,
    /// The commit with the fix, when confirmed.
    pub commit: Option<String>,
    /// Sites tried, in order.
    pub attempts: Vec<Attempt>,
    /// Index of the confirmed attempt.
    pub chosen: Option<usize>,
    /// The patch (also in `patch.diff`).
    pub patch: String,
    /// Plan and work phases.
    pub timings: Vec<Phase>,
    /// Tokens the LLM Worker used (as the provider reported them); cost is not computed.
    #[serde(default)]
    pub usage: Option<crate::llm::Usage>,
}

impl WorkResult {
    /// The confirmed attempt.
    pub fn chosen_attempt(&self) -> Option<&Attempt> {
        self.chosen.and_then(|i| self.attempts.get(i))
    }

    /// The attempt a report shows: the confirmed one, else the last tried.
    pub fn shown_attempt(&self) -> Option<&Attempt> {
        self.chosen_attempt().or(self.attempts.last())
    }
}

/// Worker inputs.
#[derive(Clone, Debug)]
pub struct WorkOptions {
    /// The plan's run directory.
    pub run_dir: PathBuf,
    /// Sites to try at most.
    pub max_attempts: usize,
    /// Copy the program's output to stderr.
    pub echo: Echo,
}

/// What can stop the Worker: [`AgentError`](crate::AgentError).
pub type WorkError = crate::AgentError;

/// Runs the test command with a time-out; past it, its whole process group is killed
/// (`af_measure::child`, as the harness runs are).
pub(crate) async fn run_tests(dir: &Path, command: &[String], timeout_ms: u64) -> TestRun {
    let t = Instant::now();
    let mut out = TestRun {
        command: command.to_vec(),
        exit_code: None,
        timed_out: false,
        ms: 0.0,
        tail: String::new(),
    };
    let log = dir.join(".af-test-output.log");
    let child = std::fs::File::create(&log).and_then(|f| {
        let g = f.try_clone()?;
        let mut cmd = tokio::process::Command::new(&command[0]);
        cmd.args(&command[1..]).current_dir(dir).stdin(Stdio::null()).stdout(f).stderr(g);
        af_measure::child::in_own_group(&mut cmd).spawn()
    });
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            out.tail = format!("could not start {}: {e}", command[0]);
            return out;
        }
    };
    let ended =
        af_measure::child::wait_or_kill(&mut child, Duration::from_millis(timeout_ms)).await;
    out.exit_code = ended.status.and_then(|s| s.code());
    out.timed_out = ended.timed_out;
    out.ms = t.elapsed().as_secs_f64() * 1000.0;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = text.lines().collect();
    out.tail = lines[lines.len().saturating_sub(15)..].join("\n");
    out
}

/// An open work session: the plan, its harness rebuilt from the plan and proven by hash, the
/// snapshot, and a worktree on a new branch. Engines change files in `project`; the session
/// confirms, evaluates, commits and writes the result.
pub struct Session {
    /// The run directory.
    pub dir: PathBuf,
    /// The plan worked on.
    pub plan: Plan,
    /// The harness (identical to the baseline's: same hash).
    pub spec: af_measure::HarnessSpec,
    /// Its hash.
    pub planned_hash: String,
    /// The baseline measurement.
    pub baseline: Measured,
    /// The check a fix must meet.
    pub metric: String,
    /// What to bound.
    pub kind: crate::patterns::FixKind,
    /// The bound.
    pub bound: u32,
    /// The branch.
    pub branch: String,
    /// The project directory in the worktree.
    pub project: PathBuf,
    /// The commit the branch starts from.
    pub base: String,
    /// Pathspecs leaving linked dependency directories out of adds and diffs.
    excluded: Vec<String>,
    /// The snapshot the mock serves.
    pub exchanges: Vec<af_snapshot::Exchange>,
    /// Phases so far.
    pub timings: Vec<Phase>,
    /// Program output handling.
    pub echo: Echo,
    confirms: usize,
}

impl Session {
    /// Reads the plan, rebuilds and checks the harness, makes the worktree.
    pub fn open(dir: &Path, echo: Echo) -> Result<Self, WorkError> {
        let plan_path = dir.join("plan.json");
        let text = std::fs::read_to_string(&plan_path)
            .map_err(|e| WorkError::Input(format!("{}: {e}", plan_path.display())))?;
        // The format first, as the snapshot reader checks its version: a plan from another
        // af says so instead of failing on whichever field moved.
        #[derive(serde::Deserialize)]
        struct Head {
            schema: Option<String>,
        }
        let head: Head = serde_json::from_str(&text)
            .map_err(|e| WorkError::Input(format!("{}: {e}", plan_path.display())))?;
        if head.schema.as_deref() != Some(crate::plan::PLAN_SCHEMA) {
            return Err(WorkError::Input(format!(
                "{}: schema {} is not one this af reads ({}); plan again with this af",
                plan_path.display(),
                head.schema.map_or_else(|| "missing".to_owned(), |s| format!("{s:?}")),
                crate::plan::PLAN_SCHEMA
            )));
        }
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|e| WorkError::Input(format!("{}: {e}", plan_path.display())))?;
        if plan.decision != Decision::Proceed {
            return Err(WorkError::Input(format!(
                "the plan in {} did not decide to proceed: {}",
                dir.display(),
                plan.reason
            )));
        }
        let Some(p) = plan.proposal() else {
            return Err(WorkError::Input(format!(
                "{}: the plan lacks its harness, baseline or metric",
                plan_path.display()
            )));
        };
        let (inputs, planned_hash, baseline, metric, kind, bound) = (
            p.inputs.clone(),
            p.harness_hash.to_owned(),
            p.baseline.clone(),
            p.metric.to_owned(),
            p.fix,
            p.bound,
        );
        // The identical harness, rebuilt from the plan and proven by hash.
        let spec = inputs
            .spec()
            .map_err(|e| WorkError::Input(format!("{}: {e}", inputs.snapshot.display())))?;
        if spec.hash() != planned_hash {
            let driver = match (&spec.driver, plan.harness.as_ref().and_then(|h| h.driver.as_ref()))
            {
                (Some(d), Some(was)) if was.sha256 != d.sha256 => {
                    format!("the harness driver {} changed since planning", d.path)
                }
                _ => "the snapshot or the plan changed since planning".to_owned(),
            };
            return Err(WorkError::Input(format!(
                "the harness rebuilt from the plan has hash {} but the plan measured {}: {driver}; plan again",
                &spec.hash()[..12],
                &planned_hash[..12.min(planned_hash.len())]
            )));
        }
        let mut timings = plan.timings.clone();
        let t = Instant::now();
        let branch = format!("af/fix-{}", plan.id);
        let Tree { project, base, excluded } =
            make_worktree(Path::new(&plan.source), &dir.join("worktree"), &branch)?;
        timings.push(Phase::since("worktree", t));
        let (exchanges, _) =
            read_all(&inputs.snapshot, ReadOptions { lenient: false, bodies: Bodies::Keep })
                .map_err(|e| WorkError::Input(e.to_string()))?;
        Ok(Self {
            dir: dir.to_owned(),
            plan,
            spec,
            planned_hash,
            baseline,
            metric,
            kind,
            bound,
            branch,
            project,
            base,
            excluded,
            exchanges,
            timings,
            echo,
            confirms: 0,
        })
    }

    /// Files a fix may change: the localized sites' files and where their bounds live.
    pub fn allowed_files(&self, sites: &[&crate::patterns::Site]) -> Vec<String> {
        let mut allowed = Vec::new();
        for site in sites {
            allowed.push(site.file.clone());
            if let Some(b) = &site.bound_at {
                allowed.push(b.rsplit_once(':').map_or(b.as_str(), |(f, _)| f).to_owned());
            }
        }
        allowed
    }

    /// Runs the identical harness on the worktree, the tests, and the Evaluator.
    pub async fn confirm(
        &mut self,
        allowed: &[String],
    ) -> Result<(Measured, Option<TestRun>, Evaluation), WorkError> {
        self.confirms += 1;
        let n = self.confirms;
        let t = Instant::now();
        let cdir = self.dir.join(format!("confirm-{n}"));
        let confirm =
            measure_in(&self.spec, &self.exchanges, &cdir, self.echo, None, Some(&self.project))
                .await
                .map_err(|source| WorkError::Measure { what: "confirm", source })?;
        run_dir::write_json(&cdir.join("measure.json"), &confirm)
            .map_err(WorkError::io("write", cdir.join("measure.json")))?;
        self.timings.push(Phase::since(format!("confirm #{n}"), t));
        let confirm = Measured::from_result(&confirm, &cdir);
        let tests = match self.plan.test_command.clone() {
            Some(c) => {
                let t = Instant::now();
                let r = run_tests(&self.project, &c, self.plan.test_timeout_ms).await;
                self.timings.push(Phase::since(format!("tests #{n}"), t));
                Some(r)
            }
            None => None,
        };
        let changed: Vec<String> = self.changed_files()?;
        let evaluation = evaluate(&Evidence {
            planned_hash: &self.planned_hash,
            baseline: &self.baseline,
            confirm: &confirm,
            tests: tests.as_ref(),
            changed: &changed,
            allowed,
        });
        Ok((confirm, tests, evaluation))
    }

    /// `args -- . <exclusions>`: a git command over the project without the linked
    /// dependency directories.
    fn paths<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = args.to_vec();
        v.extend(["--", "."]);
        v.extend(self.excluded.iter().map(String::as_str));
        v
    }

    /// Files changed in the worktree, relative to the project.
    pub fn changed_files(&self) -> Result<Vec<String>, WorkError> {
        let tracked = git(&self.project, &["diff", "--name-only", "--relative"])?;
        let new = git(&self.project, &self.paths(&["ls-files", "--others", "--exclude-standard"]))?;
        Ok(tracked.lines().chain(new.lines()).map(str::to_owned).collect())
    }

    /// The worktree's diff against the base, new files included.
    pub fn diff(&self) -> Result<String, WorkError> {
        git(&self.project, &self.paths(&["add", "-A", "-N"]))?;
        git(&self.project, &["diff", "--relative"])
    }

    /// Commits the worktree on the branch; returns the commit.
    pub fn commit(&self, what: &str, confirm: &Measured) -> Result<String, WorkError> {
        git(&self.project, &self.paths(&["add", "-A"]))?;
        let msg = format!(
            "{what}\n\n{}: {} before, {} after, on the identical harness {}.\nConfirmed by af (run {}).",
            self.metric,
            self.baseline.worst_text(),
            confirm.worst_text(),
            &self.planned_hash[..12.min(self.planned_hash.len())],
            self.plan.id
        );
        git(&self.project, &["commit", "-q", "-m", &msg])?;
        git(&self.project, &["rev-parse", "HEAD"])
    }

    /// Writes patch.diff and returns the result; [`write_result`] writes `result.json`, once,
    /// when the caller has added what it knows (the LLM Worker's usage, the loop's timings).
    pub fn into_result(
        self,
        attempts: Vec<Attempt>,
        chosen: Option<usize>,
        commit: Option<String>,
        not_confirmed: Option<String>,
    ) -> Result<WorkResult, WorkError> {
        let patch = match &commit {
            Some(c) => git(&self.project, &["diff", &self.base, c, "--", "."])? + "\n",
            None => String::new(),
        };
        std::fs::write(self.dir.join("patch.diff"), &patch)
            .map_err(WorkError::io("write", self.dir.join("patch.diff")))?;
        let metric = &self.metric;
        let verdict = match chosen.and_then(|i| attempts.get(i)) {
            Some(a) => format!(
                "Confirmed: {metric} went from {} (baseline, worst of {} runs) to {} (confirm, worst of {} runs) on the identical harness, after {} at {}:{}. Branch {}.",
                self.baseline.worst_text(),
                self.baseline.runs.len(),
                a.confirm.as_ref().map(Measured::worst_text).unwrap_or_default(),
                a.confirm.as_ref().map_or(0, |m| m.runs.len()),
                a.site.pattern,
                a.site.file,
                a.site.line,
                self.branch
            ),
            None => not_confirmed.unwrap_or_else(|| format!(
                "Not confirmed: {} attempt(s), none met {metric} with every check passing; see the attempts. Nothing was committed.",
                attempts.len()
            )),
        };
        let result = WorkResult {
            schema: RESULT_SCHEMA.into(),
            confirmed: chosen.is_some(),
            verdict,
            branch: self.branch,
            worktree: self.project.display().to_string(),
            base_commit: self.base,
            commit,
            attempts,
            chosen,
            patch,
            timings: self.timings,
            plan: self.plan,
            usage: None,
        };
        Ok(result)
    }
}

/// Writes a run's `result.json` (schema `af.result/1`): the one place it is written.
pub fn write_result(run_dir: &Path, r: &WorkResult) -> Result<(), WorkError> {
    let path = run_dir.join("result.json");
    run_dir::write_json(&path, r).map_err(WorkError::io("write", path))
}

/// Runs the builtin Worker on a plan's run directory: codemods at the ranked sites, in order,
/// until one is confirmed.
pub async fn work(opts: &WorkOptions) -> Result<WorkResult, WorkError> {
    let mut s = Session::open(&opts.run_dir, opts.echo)?;
    let all = builtin_patterns();
    let fix = Fix { kind: s.kind, bound: s.bound, metric: s.metric.clone() };
    let mut attempts = Vec::new();
    let mut chosen = None;
    let mut commit = None;
    // Parsed once: a failed attempt restores the files it changed, so every attempt starts from
    // the code the plan localized.
    let repo = Repo::load(&s.project).map_err(WorkError::io("read", &s.project))?;
    let live_sites = patterns::find_all(&repo, &all);
    let sites = s.plan.sites.clone();
    for ranked in sites.iter().take(opts.max_attempts.max(1)) {
        let n = attempts.len() + 1;
        let t = Instant::now();
        let mut attempt = Attempt {
            site: ranked.site.clone(),
            files: Vec::new(),
            error: None,
            confirm: None,
            tests: None,
            evaluation: None,
        };
        let live = live_sites.iter().find(|x| {
            x.pattern == ranked.site.pattern
                && x.file == ranked.site.file
                && x.start == ranked.site.start
        });
        let (Some(site), Some(pattern)) = (live, patterns::by_name(&all, &ranked.site.pattern))
        else {
            attempt.error = Some(format!(
                "{}:{}: the site is not in the worktree",
                ranked.site.file, ranked.site.line
            ));
            attempts.push(attempt);
            continue;
        };
        let edits = match patterns::apply(pattern, site, &repo, &fix) {
            Ok(e) => e,
            Err(e) => {
                attempt.error = Some(e);
                attempts.push(attempt);
                continue;
            }
        };
        let originals: Vec<(PathBuf, String)> = edits
            .iter()
            .filter_map(|e| repo.file(&e.file).map(|f| (s.project.join(&e.file), f.text.clone())))
            .collect();
        for e in &edits {
            std::fs::write(s.project.join(&e.file), &e.text)
                .map_err(WorkError::io("write", s.project.join(&e.file)))?;
            attempt.files.push(e.file.clone());
        }
        s.timings.push(Phase::since(format!("codemod #{n}"), t));
        let allowed = s.allowed_files(&[site]);
        let (confirm, tests, evaluation) = s.confirm(&allowed).await?;
        let ok = evaluation.passed;
        attempt.tests = tests;
        attempt.evaluation = Some(evaluation);
        if ok {
            let what =
                format!("Bound {} at {}:{} to {}", s.kind.as_str(), site.file, site.line, s.bound);
            commit = Some(s.commit(&what, &confirm)?);
            attempt.confirm = Some(confirm);
            chosen = Some(attempts.len());
            attempts.push(attempt);
            break;
        }
        attempt.confirm = Some(confirm);
        attempt.error = Some("the Evaluator did not accept the evidence".into());
        for (p, text) in originals {
            std::fs::write(&p, text).map_err(WorkError::io("restore", &p))?;
        }
        attempts.push(attempt);
    }
    s.into_result(attempts, chosen, commit, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_of_another_format_is_refused_by_its_schema() {
        let tmp = tempfile::tempdir().expect("tmp");
        for (text, says) in [
            (
                r#"{"schema": "af.plan/0", "id": "x"}"#,
                r#"schema "af.plan/0" is not one this af reads (af.plan/1)"#,
            ),
            (r#"{"id": "x"}"#, "schema missing is not one this af reads"),
        ] {
            std::fs::write(tmp.path().join("plan.json"), text).expect("w");
            let Err(WorkError::Input(e)) = Session::open(tmp.path(), Echo::Quiet) else {
                panic!("{text}: refused as input")
            };
            assert!(e.contains(says), "{e}");
        }
    }

    /// A test command past its time-out is killed with everything it started.
    #[tokio::test]
    async fn tests_past_their_timeout_are_killed_with_their_children() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cmd: Vec<String> = ["sh", "-c", "sleep 30 & echo $! > bg.pid; echo started; wait"]
            .map(String::from)
            .into();
        let r = run_tests(tmp.path(), &cmd, 500).await;
        assert!(r.timed_out, "{r:?}");
        assert!(r.ms < 10_000.0, "{r:?}");
        assert_eq!(r.tail, "started");
        let pid = std::fs::read_to_string(tmp.path().join("bg.pid")).expect("pid");
        // The background sleep was in the group: gone (or a zombie of init's, never running).
        // SIGKILL is delivered asynchronously: give the kernel a moment.
        let stat_of =
            || std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        let mut stat = stat_of();
        for _ in 0..100 {
            if stat.is_empty() || stat.contains(") Z ") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            stat = stat_of();
        }
        assert!(stat.is_empty() || stat.contains(") Z "), "still running: {stat}");
        let ok = run_tests(tmp.path(), &["true".to_owned()], 5_000).await;
        assert_eq!((ok.exit_code, ok.timed_out), (Some(0), false));
    }
}
