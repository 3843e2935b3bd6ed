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

/// Tokens, when the provider reports them, and their cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// US dollars: as the provider reported it (OpenRouter-style `usage.cost`), else from the
    /// prices given with `--price`; absent when neither is known (never guessed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// From a provider's `usage` object: its names for input and output tokens, and a `cost`
    /// when the provider reports one. Missing fields are 0 (or no cost).
    pub fn from_wire(usage: Option<&serde_json::Value>, input: &str, output: &str) -> Self {
        let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(serde_json::Value::as_u64);
        Self {
            input_tokens: n(input).unwrap_or(0),
            output_tokens: n(output).unwrap_or(0),
            cost_usd: usage.and_then(|u| u.get("cost")).and_then(serde_json::Value::as_f64),
        }
    }

    /// Adds another turn's tokens (and cost, when either side knows one).
    pub fn add(&mut self, o: Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_usd = match (self.cost_usd, o.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
}

/// Prices in US dollars per million tokens (`--price 3/15`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

impl Price {
    /// The cost of a turn's tokens.
    pub fn cost(&self, u: &Usage) -> f64 {
        (u.input_tokens as f64 * self.input + u.output_tokens as f64 * self.output) / 1e6
    }
}

impl std::str::FromStr for Price {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "price {s:?}: expected INPUT/OUTPUT in US dollars per million tokens, e.g. 3/15 or 0.15/0.6"
            )
        };
        let (i, o) = s.split_once('/').ok_or_else(bad)?;
        let num = |t: &str| {
            t.trim()
                .trim_start_matches('$')
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        Ok(Self { input: num(i).ok_or_else(bad)?, output: num(o).ok_or_else(bad)? })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_and_cost_tokens() {
        let p: Price = "3/15".parse().expect("price");
        let u = Usage { input_tokens: 1_000_000, output_tokens: 200_000, cost_usd: None };
        assert!((p.cost(&u) - 6.0).abs() < 1e-12);
        assert_eq!("$0.15/$0.6".parse::<Price>(), Ok(Price { input: 0.15, output: 0.6 }));
        for bad in ["3", "3/x", "-1/2", "/"] {
            let e = bad.parse::<Price>().expect_err(bad);
            assert!(e.contains("per million tokens"), "{e}");
        }
    }

    #[test]
    fn cost_adds_up_only_when_known() {
        let mut a = Usage { input_tokens: 1, output_tokens: 2, cost_usd: None };
        a.add(Usage { input_tokens: 3, output_tokens: 4, cost_usd: None });
        assert_eq!(a, Usage { input_tokens: 4, output_tokens: 6, cost_usd: None });
        a.add(Usage { input_tokens: 0, output_tokens: 0, cost_usd: Some(0.5) });
        assert_eq!(a.cost_usd, Some(0.5));
    }
}
