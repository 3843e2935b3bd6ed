//! The internal message model both adapters translate to and from.

use serde::{Deserialize, Serialize};

/// Who speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The tool (its results) and the user.
    User,
    /// The model.
    Assistant,
}

/// One piece of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// The model asks for a tool.
    ToolCall {
        /// Provider's call id (echoed in the result).
        id: String,
        /// Tool name.
        name: String,
        /// Arguments (`null` when they did not parse).
        args: serde_json::Value,
        /// Why the arguments are unusable (malformed JSON): sent back as a tool error.
        args_error: Option<String>,
    },
    /// A tool's answer.
    ToolResult {
        /// The call it answers.
        id: String,
        /// Result text (JSON or prose).
        content: String,
        /// The call failed (validation, unknown tool, tool error).
        is_error: bool,
    },
}

/// One message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Content, in order.
    pub parts: Vec<Part>,
}

impl Message {
    /// A text message.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self { role, parts: vec![Part::Text { text: text.into() }] }
    }

    /// The tool calls in this message.
    pub fn tool_calls(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|p| matches!(p, Part::ToolCall { .. }))
    }
}

/// A tool the model may call: its JSON Schema comes from a Rust type (schemars).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the arguments.
    pub schema: serde_json::Value,
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its turn.
    End,
    /// It wants tool results.
    ToolUse,
    /// It hit the token limit.
    MaxTokens,
    /// Anything else the provider said.
    Other,
}

/// Tokens, when the provider reports them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Adds another turn's tokens.
    pub fn add(&mut self, o: Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
    }
}

/// One model turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The assistant message.
    pub message: Message,
    /// Why it stopped.
    pub stop: StopReason,
    /// Tokens.
    pub usage: Usage,
}

/// Checks a tool call against the tools offered: an unknown name or unusable arguments is an
/// error the model gets back as a tool result, never a crash.
pub fn validate_call(tools: &[ToolSpec], call: &Part) -> Result<(), String> {
    let Part::ToolCall { name, args, args_error, .. } = call else {
        return Err("not a tool call".into());
    };
    let Some(tool) = tools.iter().find(|t| &t.name == name) else {
        let known: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        return Err(format!("unknown tool {name:?}; the tools are: {}", known.join(", ")));
    };
    if let Some(e) = args_error {
        return Err(format!("the arguments of {name} are not valid JSON: {e}"));
    }
    if !args.is_object() {
        return Err(format!("the arguments of {name} must be a JSON object"));
    }
    // Required properties present (the full schema is validated by the tool's Rust type).
    if let Some(req) = tool.schema.get("required").and_then(|r| r.as_array()) {
        for r in req.iter().filter_map(|r| r.as_str()) {
            if args.get(r).is_none() {
                return Err(format!("{name}: missing required argument {r:?}"));
            }
        }
    }
    Ok(())
}
