//! The tool loop both LLM phases run (Planner and Worker): a model turn, each tool call
//! validated against its schema and run by the phase's [`ToolHost`], results back, until a
//! terminal tool or the phase's [`Budget`] ends it.

use std::time::Duration;

use serde_json::{Value, json};

use super::model::ToolSpec;
use super::tools::{Trajectory, digest_if_large};

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

/// What a phase's tool loop calls back into: the tools themselves, whether the phase has
/// finished (a terminal tool was called), and where turn timings go.
pub(crate) trait ToolHost {
    /// Runs one validated tool call.
    async fn call(&mut self, name: &str, args: &Value) -> Result<String, String>;
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
pub(crate) async fn drive(
    engine: &super::client::Engine,
    specs: &[ToolSpec],
    messages: &mut Vec<super::model::Message>,
    budget: Budget,
    phase: &str,
    traj: &mut Trajectory,
    host: &mut impl ToolHost,
) -> LoopEnd {
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
                Ok(()) => host.call(name, args).await,
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
