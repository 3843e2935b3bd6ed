//! OpenAI Chat Completions with tools — also what vLLM, llama.cpp's server, Ollama and LM
//! Studio speak. Quirks handled: tool arguments arrive as a JSON *string* (some local servers
//! send an object); `content` beside tool calls is sent as `""`, not `null` (some servers
//! reject null); one tool call per turn (`parallel_tool_calls: false`).

use serde_json::{Value, json};

use super::model::{Message, Part, Reply, Role, StopReason, ToolSpec, Usage};

/// The request body.
pub fn request(model: &str, max_tokens: u32, messages: &[Message], tools: &[ToolSpec]) -> Value {
    let mut out = Vec::new();
    for m in messages {
        match m.role {
            Role::System | Role::User => {
                // Tool results are their own `tool` messages; text stays with the role.
                let mut text = String::new();
                for p in &m.parts {
                    match p {
                        Part::ToolResult { id, content, is_error } => out.push(json!({
                            "role": "tool",
                            "tool_call_id": id,
                            "content": if *is_error { format!("error: {content}") } else { content.clone() },
                        })),
                        Part::Text { text: t } => text.push_str(t),
                        Part::ToolCall { .. } => {}
                    }
                }
                if !text.is_empty() {
                    let role = if m.role == Role::System { "system" } else { "user" };
                    out.push(json!({"role": role, "content": text}));
                }
            }
            Role::Assistant => {
                let text: String = m
                    .parts
                    .iter()
                    .filter_map(|p| {
                        if let Part::Text { text } = p { Some(text.as_str()) } else { None }
                    })
                    .collect();
                let calls: Vec<Value> = m
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall { id, name, args, .. } => Some(json!({
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": args.to_string()},
                        })),
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({"role": "assistant", "content": text});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                out.push(msg);
            }
        }
    }
    let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": out});
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.schema}}))
            .collect();
        body["parallel_tool_calls"] = json!(false);
    }
    body
}

/// Parses a response body.
pub fn parse(body: &Value) -> Result<Reply, String> {
    let choice =
        body.get("choices").and_then(|c| c.get(0)).ok_or("no `choices[0]` in the response")?;
    let msg = choice.get("message").ok_or("no `choices[0].message` in the response")?;
    let mut parts = Vec::new();
    if let Some(t) = msg.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        parts.push(Part::Text { text: t.to_owned() });
    }
    for (i, c) in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let f = c.get("function").ok_or_else(|| format!("tool_calls[{i}] has no `function`"))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("tool_calls[{i}].function has no `name`"))?;
        let (args, args_error) = match f.get("arguments") {
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v) => (v, None),
                Err(e) => (Value::Null, Some(format!("{e} in {s:?}"))),
            },
            Some(v @ Value::Object(_)) => (v.clone(), None),
            None | Some(Value::Null) => (json!({}), None),
            Some(other) => (Value::Null, Some(format!("arguments are {other}, not an object"))),
        };
        let id =
            c.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{i}"), str::to_owned);
        parts.push(Part::ToolCall { id, name: name.to_owned(), args, args_error });
    }
    let stop = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") => StopReason::End,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        // Some servers say "stop" even with tool calls; the calls decide.
        _ if parts.iter().any(|p| matches!(p, Part::ToolCall { .. })) => StopReason::ToolUse,
        _ => StopReason::Other,
    };
    let stop =
        if stop == StopReason::End && parts.iter().any(|p| matches!(p, Part::ToolCall { .. })) {
            StopReason::ToolUse
        } else {
            stop
        };
    Ok(Reply {
        message: Message { role: Role::Assistant, parts },
        stop,
        usage: Usage::from_wire(body.get("usage"), "prompt_tokens", "completion_tokens"),
    })
}

/// Whether an error body says the account is out of quota or billing (never retried).
pub fn is_quota(body: &Value) -> bool {
    let e = body.get("error");
    let s = |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or("");
    ["insufficient_quota", "billing_hard_limit_reached", "billing_not_active"]
        .iter()
        .any(|q| s("code") == *q || s("type") == *q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_the_provider_reports_is_kept() {
        let body = json!({"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "cost": 0.00042}});
        let r = parse(&body).expect("reply");
        assert_eq!(r.usage, Usage { input_tokens: 10, output_tokens: 2, cost_usd: Some(0.00042) });
        let body = json!({"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2}});
        assert_eq!(parse(&body).expect("reply").usage.cost_usd, None);
    }
}
