//! The tool loop both LLM phases run (Planner and Worker): a model turn, each tool call
//! validated against its schema and run by the phase's [`ToolHost`], results back, until a
//! terminal tool or the phase's [`Budget`] ends it.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use schemars::JsonSchema;
use serde_json::{Value, json};

use super::model::ToolSpec;
use super::tools::{
    FindSymbol, ListFiles, ReadFile, Search, Trajectory, digest_if_large, find_symbol, list_files,
    parse, read_file, search, tool,
};

/// Per-phase limits.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Model turns.
    pub steps: u32,
    /// Input + output tokens, as reported by the provider.
    pub tokens: u64,
    /// Wall time.
    pub wall: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self { steps: 40, tokens: 400_000, wall: Duration::from_secs(900) }
    }
}

/// A tool's handler: the phase's host and the call's arguments (validated against the schema).
pub(crate) type Handler<H> = for<'a> fn(&'a mut H, &'a Value) -> ToolFuture<'a>;
/// What a handler returns: the result for the model, or an error it is told.
pub(crate) type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + 'a>>;

/// One tool, as a unit: its name, what the model is told, its argument type's schema (in the
/// spec) and its handler. A phase's tools are one list (`planner_tools`, `worker_tools`);
/// nothing else names them.
pub(crate) struct Tool<H> {
    /// Name, description and argument schema, as the model sees them.
    pub spec: ToolSpec,
    /// What runs when the model calls it.
    pub run: Handler<H>,
}

impl<H> Tool<H> {
    /// A tool taking arguments of type `A`.
    pub fn new<A: JsonSchema>(name: &str, description: &str, run: Handler<H>) -> Self {
        Self { spec: tool::<A>(name, description), run }
    }
}

/// A handler's result that needs no waiting.
pub(crate) fn done<'a>(r: Result<String, String>) -> ToolFuture<'a> {
    Box::pin(std::future::ready(r))
}

/// A phase whose model reads the project.
pub(crate) trait ReadsProject {
    /// The directory the project tools read (the source, or the fix's worktree).
    fn project(&self) -> &Path;
}

/// The tools both phases have: list, read, search and look up symbols in the project.
pub(crate) fn project_tools<H: ReadsProject>() -> Vec<Tool<H>> {
    vec![
        Tool::new::<ListFiles>(
            "list_files",
            "List the project's files, with sizes.",
            list_files_tool::<H>,
        ),
        Tool::new::<ReadFile>(
            "read_file",
            "Read a file of the project, with line numbers.",
            read_file_tool::<H>,
        ),
        Tool::new::<Search>(
            "search",
            "Find a text in the project's source files; returns file:line: text.",
            search_tool::<H>,
        ),
        Tool::new::<FindSymbol>(
            "find_symbol",
            "Where a function, class, method, variable or constant is defined and used (by syntax tree).",
            find_symbol_tool::<H>,
        ),
    ]
}

fn list_files_tool<'a, H: ReadsProject>(h: &'a mut H, a: &'a Value) -> ToolFuture<'a> {
    done(parse("list_files", a).and_then(|a| list_files(h.project(), &a)))
}

fn read_file_tool<'a, H: ReadsProject>(h: &'a mut H, a: &'a Value) -> ToolFuture<'a> {
    done(parse("read_file", a).and_then(|a| read_file(h.project(), &a)))
}

fn search_tool<'a, H: ReadsProject>(h: &'a mut H, a: &'a Value) -> ToolFuture<'a> {
    done(parse("search", a).and_then(|a| search(h.project(), &a)))
}

fn find_symbol_tool<'a, H: ReadsProject>(h: &'a mut H, a: &'a Value) -> ToolFuture<'a> {
    done(parse("find_symbol", a).and_then(|a| find_symbol(h.project(), &a)))
}

/// What a phase's tool loop asks of it besides its tools: whether it has finished (a
/// terminal tool was called), and where turn timings go.
pub(crate) trait ToolHost {
    /// A terminal tool has been called.
    fn finished(&self) -> bool;
    /// The run's phase timings.
    fn timings(&mut self) -> &mut Vec<crate::plan::Phase>;
}

/// How a tool loop ended.
#[derive(Debug, Default)]
pub(crate) struct LoopEnd {
    /// Why it stopped before a terminal tool (budget, unreachable model), if it did.
    pub stopped: Option<String>,
    /// Tokens used, as the provider reported them.
    pub usage: super::model::Usage,
}

/// The tool loop both LLM phases run: a model turn, every tool call validated and run,
/// results back to the model, until a terminal tool or a budget ends it. Every exchange and
/// tool call goes to the trajectory under `phase`.
pub(crate) async fn drive<H: ToolHost>(
    engine: &super::client::Engine,
    tools: &[Tool<H>],
    messages: &mut Vec<super::model::Message>,
    budget: Budget,
    phase: &str,
    traj: &mut Trajectory,
    host: &mut H,
) -> LoopEnd {
    let specs: Vec<ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
    let specs = specs.as_slice();
    use super::model::{Message, Part, Role, StopReason, validate_call};
    let started = std::time::Instant::now();
    let mut end = LoopEnd::default();
    let (mut steps, mut tokens, mut seen) = (0u32, 0u64, engine.exchanged().len());
    while !host.finished() {
        if steps >= budget.steps || tokens >= budget.tokens || started.elapsed() >= budget.wall {
            end.stopped = Some(format!(
                "the {phase} budget ran out ({steps} of {} turns, {tokens} of {} tokens, {:.0?} of {:?})",
                budget.steps,
                budget.tokens,
                started.elapsed(),
                budget.wall
            ));
            break;
        }
        steps += 1;
        let t = std::time::Instant::now();
        let reply = engine.turn(messages, specs).await;
        host.timings().push(crate::plan::Phase::since(format!("{phase} turn {steps}"), t));
        for x in engine.exchanged().into_iter().skip(seen) {
            traj.log(&json!({"phase": phase, "kind": "model", "attempt": x.attempt, "status": x.status, "request": x.request, "response": x.response}));
            seen += 1;
        }
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                end.stopped = Some(format!("the model could not be reached: {e}"));
                break;
            }
        };
        tokens += reply.usage.input_tokens + reply.usage.output_tokens;
        end.usage.add(reply.usage);
        let calls: Vec<Part> = reply.message.tool_calls().cloned().collect();
        messages.push(reply.message.clone());
        if calls.is_empty() {
            if reply.stop == StopReason::MaxTokens {
                end.stopped = Some("the model hit its token limit without a tool call".into());
                break;
            }
            messages
                .push(Message::text(Role::User, "Use the tools; finish with the terminal tool."));
            continue;
        }
        let mut results = Vec::new();
        for call in &calls {
            let Part::ToolCall { id, name, args, .. } = call else { continue };
            let out = match validate_call(specs, call) {
                Err(e) => Err(e),
                Ok(()) => match tools.iter().find(|t| t.spec.name == *name) {
                    Some(t) => (t.run)(host, args).await,
                    None => Err(format!("unknown tool {name:?}")),
                },
            };
            traj.log(&json!({"phase": phase, "kind": "tool", "name": name, "args": args, "ok": out.is_ok(), "result": digest_if_large(out.as_ref().unwrap_or_else(|e| e))}));
            let (content, is_error) = match out {
                Ok(c) => (c, false),
                Err(e) => (e, true),
            };
            results.push(Part::ToolResult { id: id.clone(), content, is_error });
        }
        messages.push(Message { role: Role::User, parts: results });
    }
    end
}
