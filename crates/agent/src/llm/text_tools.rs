//! The text fallback for models served without tool calling: the tools are described in the
//! system prompt, the model answers with one fenced block per turn — a block opened with
//! three backticks and `tool`, holding `{"name": "read_file", "arguments": {"path": "…"}}` —
//! and earlier tool calls and results are replayed to it as text. The rest of the engine sees
//! ordinary tool calls.

use serde_json::Value;

use super::model::{Message, Part, Reply, Role, StopReason, ToolSpec};

/// The system text that teaches the format.
pub fn describe(tools: &[ToolSpec]) -> String {
    let mut s = String::from(
        "You can call tools. To call one, answer with exactly one fenced block and nothing after it:\n\
         ```tool\n{\"name\": \"TOOL\", \"arguments\": {…}}\n```\nThe result comes back in the next message. Tools:\n",
    );
    for t in tools {
        s.push_str(&format!(
            "- {}: {} Arguments (JSON Schema): {}\n",
            t.name, t.description, t.schema
        ));
    }
    s
}

/// The conversation with tool calls and results as text.
pub fn to_text(messages: &[Message], tools: &[ToolSpec]) -> Vec<Message> {
    let mut out = vec![Message::text(Role::System, describe(tools))];
    for m in messages {
        let mut text = String::new();
        for p in &m.parts {
            match p {
                Part::Text { text: t } => text.push_str(t),
                Part::ToolCall { name, args, .. } => {
                    text.push_str(&format!(
                        "\n```tool\n{}\n```",
                        serde_json::json!({"name": name, "arguments": args})
                    ));
                }
                Part::ToolResult { content, is_error, .. } => {
                    text.push_str(&format!(
                        "{}:\n{content}\n",
                        if *is_error { "Tool error" } else { "Tool result" }
                    ));
                }
            }
        }
        out.push(Message::text(m.role, text));
    }
    out
}

/// Turns the first ```tool block of a text reply into a tool call.
pub fn extract(mut reply: Reply, turn: usize) -> Reply {
    let text: String = reply
        .message
        .parts
        .iter()
        .filter_map(|p| if let Part::Text { text } = p { Some(text.as_str()) } else { None })
        .collect();
    let Some(start) = text.find("```tool") else { return reply };
    let body = &text[start + "```tool".len()..];
    let body = body.split("```").next().unwrap_or("").trim();
    let (name, args, args_error) = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            match v.get("arguments") {
                Some(a @ Value::Object(_)) => (name, a.clone(), None),
                None => (name, serde_json::json!({}), None),
                Some(other) => {
                    (name, Value::Null, Some(format!("arguments are {other}, not an object")))
                }
            }
        }
        Err(e) => (String::new(), Value::Null, Some(format!("the tool block is not JSON: {e}"))),
    };
    let before = text[..start].trim().to_owned();
    reply.message.parts = Vec::new();
    if !before.is_empty() {
        reply.message.parts.push(Part::Text { text: before });
    }
    reply.message.parts.push(Part::ToolCall { id: format!("text-{turn}"), name, args, args_error });
    reply.stop = StopReason::ToolUse;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::model::Usage;

    fn reply(text: &str) -> Reply {
        Reply {
            message: Message::text(Role::Assistant, text),
            stop: StopReason::End,
            usage: Usage::default(),
        }
    }

    #[test]
    fn a_fenced_block_becomes_a_tool_call() {
        let r = extract(
            reply(
                "Reading.\n```tool\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.js\"}}\n```",
            ),
            3,
        );
        assert_eq!(r.stop, StopReason::ToolUse);
        assert!(
            matches!(&r.message.parts[1], Part::ToolCall { id, name, args, args_error: None } if id == "text-3" && name == "read_file" && args["path"] == "a.js")
        );
        let bad =
            extract(reply("```tool\n{\"name\": \"read_file\", \"arguments\": {\"path\": \n```"), 4);
        assert!(
            matches!(&bad.message.parts[0], Part::ToolCall { args_error: Some(e), .. } if e.contains("not JSON"))
        );
        assert_eq!(extract(reply("All done."), 5).stop, StopReason::End);
    }

    #[test]
    fn history_is_replayed_as_text() {
        let tools = vec![ToolSpec {
            name: "read_file".into(),
            description: "Read.".into(),
            schema: serde_json::json!({"type": "object"}),
        }];
        let msgs = vec![
            Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall {
                    id: "t".into(),
                    name: "read_file".into(),
                    args: serde_json::json!({"path": "a"}),
                    args_error: None,
                }],
            },
            Message {
                role: Role::User,
                parts: vec![Part::ToolResult {
                    id: "t".into(),
                    content: "x = 1".into(),
                    is_error: false,
                }],
            },
        ];
        let t = to_text(&msgs, &tools);
        assert!(
            matches!(&t[0].parts[0], Part::Text { text } if text.contains("- read_file: Read."))
        );
        assert!(
            matches!(&t[1].parts[0], Part::Text { text } if text.contains("```tool") && text.contains("\"path\":\"a\""))
        );
        assert!(
            matches!(&t[2].parts[0], Part::Text { text } if text.starts_with("Tool result:\nx = 1"))
        );
    }
}
