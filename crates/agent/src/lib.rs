//! The agent (DESIGN.md §6): the **Planner** turns a snapshot's finding into a metric, a
//! threshold, ranked code sites and a measured baseline; the **Worker** applies a fix in a git
//! worktree and reruns the identical harness; the **Evaluator** checks the evidence. The builtin
//! engine is offline and deterministic: analysis → code patterns (tree-sitter) → codemods.
//!
//! The tool, not the engine, does every measurement: baseline and confirm are
//! [`af_measure::measure`] runs of one [`af_measure::HarnessSpec`], compared by hash.

pub mod config;
mod error;
pub mod evaluate;
pub mod format;
pub mod llm;
pub mod localize;
pub mod patterns;
pub mod plan;
pub mod repo;
pub mod run_dir;
pub mod work;

pub use repo::{Lang, Repo, SourceFile};

pub use patterns::{Fix, FixKind, Pattern, Site, builtin_patterns};

pub use error::AgentError;
pub use evaluate::{CheckOutcome, Evaluation, TestRun};
pub use plan::{Decision, Measured, Phase, Plan, PlanError, PlanOptions, plan};
pub use work::{Attempt, WorkError, WorkOptions, WorkResult, work, write_result};
