//! LLM engines (DESIGN.md §6): one internal message model, one adapter per wire format
//! (OpenAI Chat Completions with tools, Anthropic Messages with tool_use), one HTTP client with
//! the retry policy, and redaction of everything before it leaves the process.
//!
//! The engines only decide; every measurement stays with `af_measure`. This module is the
//! transport and the tool loop; the phases that use it are `plan::llm`, `work::llm` and
//! `evaluate::review`, beside their builtin engines.

pub mod anthropic;
pub mod client;
pub mod model;
pub mod openai;
pub mod redact;
pub mod text_tools;
pub mod tool_loop;
pub mod tools;

pub use client::{Engine, LlmError, Provider, RetryPolicy};
pub use model::{Message, Part, Price, Reply, Role, StopReason, ToolSpec, Usage};
pub use redact::Redactor;
pub use tool_loop::Budget;
