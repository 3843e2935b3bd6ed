//! Anthropic Messages with tool_use / tool_result blocks. Tool input arrives as an object (a
//! string is parsed too); one tool call per turn (`disable_parallel_tool_use`).

use serde_json::{Value, json};

use super::model::{Message, Part, Reply, Role, StopReason, ToolSpec, Usage};

/// The request body.
pub fn request(model: &str, max_tokens: u32, messages: &[Message], tools: &[ToolSpec]) -> Value {
    let mut system = String::new();
    let mut out = Vec::new();
    for m in messages {
        if m.role == Role::System {
            for p in &m.parts {
                if let Part::Text { text } = p {
                    system.push_str(text);
                }
            }
            continue;
        }
        let blocks: Vec<Value> = m
            .parts
            .iter()
            .map(|p| match p {
                Part::Text { text } => json!({"type": "text", "text": text}),
                Part::ToolCall { id, name, args, .. } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": if args.is_object() { args.clone() } else { json!({}) }})
                }
                Part::ToolResult { id, content, is_error } => {
                    json!({"type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error})
                }
            })
            .collect();
        let role = if m.role == Role::Assistant { "assistant" } else { "user" };
        out.push(json!({"role": role, "content": blocks}));
    }
    let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": out});
    if !system.is_empty() {
        body["system"] = json!(system);
    }
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(
                |t| json!({"name": t.name, "description": t.description, "input_schema": t.schema}),
            )
            .collect();
        body["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
    }
    body
}

/// Parses a response body.
pub fn parse(body: &Value) -> Result<Reply, String> {
    let content = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` array in the response")?;
    let mut parts = Vec::new();
    for (i, b) in content.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = b.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    parts.push(Part::Text { text: t.to_owned() });
                }
            }
            Some("tool_use") => {
                let name = b
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("content[{i}] tool_use has no `name`"))?;
                let id = b
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("toolu_{i}"), str::to_owned);
                let (args, args_error) = match b.get("input") {
                    Some(v @ Value::Object(_)) => (v.clone(), None),
                    Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                        Ok(v) => (v, None),
                        Err(e) => (Value::Null, Some(format!("{e} in {s:?}"))),
                    },
                    None | Some(Value::Null) => (json!({}), None),
                    Some(other) => (Value::Null, Some(format!("input is {other}, not an object"))),
                };
                parts.push(Part::ToolCall { id, name: name.to_owned(), args, args_error });
            }
            // thinking, redacted_thinking, …: not part of the conversation we keep.
            _ => {}
        }
    }
    let stop = match body.get("stop_reason").and_then(Value::as_str) {
        Some("end_turn" | "stop_sequence") => StopReason::End,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        _ => StopReason::Other,
    };
    Ok(Reply {
        message: Message { role: Role::Assistant, parts },
        stop,
        usage: Usage::from_wire(body.get("usage"), "input_tokens", "output_tokens"),
    })
}

/// Whether an error body is a billing/permission problem (never retried).
pub fn is_quota(body: &Value) -> bool {
    let t = body.get("error").and_then(|e| e.get("type")).and_then(Value::as_str).unwrap_or("");
    matches!(t, "billing_error" | "permission_error" | "authentication_error")
}
