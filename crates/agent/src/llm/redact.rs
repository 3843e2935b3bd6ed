//! Redaction of everything sent to a model: credentials (Authorization and bearer tokens,
//! cookies, API keys by shape and by name) always; e-mail addresses by default; extra patterns
//! from configuration. Applied to every text, tool result and tool argument of a request.

use regex::Regex;

use super::model::{Message, Part};

/// A set of patterns and their replacements.
#[derive(Clone, Debug)]
pub struct Redactor {
    rules: Vec<(Regex, String)>,
}

const CREDENTIALS: &[(&str, &str)] = &[
    // Header lines and key = value forms: keep the name, drop the value.
    (r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie)(\s*[:=]\s*)[^\r\n]+", "$1$2[redacted]"),
    (r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}", "Bearer [redacted]"),
    (r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}", "[redacted-key]"),
    (r"\bAIza[0-9A-Za-z_-]{30,}", "[redacted-key]"),
    (r"\bya29\.[0-9A-Za-z._-]{8,}", "[redacted-token]"),
    (r"\bgh[pousr]_[A-Za-z0-9]{20,}", "[redacted-token]"),
    (
        r#"(?i)\b((?:x-)?api[_-]?key|access[_-]?token|client[_-]?secret|secret|password|passwd|token)("?\s*[:=]\s*"?)[^\s",;&]{4,}"#,
        "$1$2[redacted]",
    ),
];

const EMAIL: &str = r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b";

impl Default for Redactor {
    /// Credentials and e-mail addresses.
    fn default() -> Self {
        Self::new(true, &[]).unwrap_or(Self { rules: Vec::new() })
    }
}

impl Redactor {
    /// Credentials always; e-mail addresses when `emails`; plus `extra` patterns (each
    /// replaced by `[redacted]`). A bad pattern is an error naming it.
    pub fn new(emails: bool, extra: &[String]) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (p, r) in CREDENTIALS {
            rules.push((Regex::new(p).map_err(|e| format!("{p}: {e}"))?, (*r).to_owned()));
        }
        if emails {
            rules.push((Regex::new(EMAIL).map_err(|e| e.to_string())?, "[email]".to_owned()));
        }
        for p in extra {
            rules.push((
                Regex::new(p).map_err(|e| format!("redaction pattern {p:?}: {e}"))?,
                "[redacted]".into(),
            ));
        }
        Ok(Self { rules })
    }

    /// Redacts one string.
    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for (re, with) in &self.rules {
            if re.is_match(&out) {
                out = re.replace_all(&out, with.as_str()).into_owned();
            }
        }
        out
    }

    /// Redacts every string inside a JSON value.
    pub fn json(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| (k.clone(), self.json(x))).collect())
            }
            other => other.clone(),
        }
    }

    /// A redacted copy of a conversation.
    pub fn messages(&self, messages: &[Message]) -> Vec<Message> {
        messages
            .iter()
            .map(|m| Message {
                role: m.role,
                parts: m
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Text { text } => Part::Text { text: self.text(text) },
                        Part::ToolCall { id, name, args, args_error } => Part::ToolCall {
                            id: id.clone(),
                            name: name.clone(),
                            args: self.json(args),
                            args_error: args_error.as_ref().map(|e| self.text(e)),
                        },
                        Part::ToolResult { id, content, is_error } => Part::ToolResult {
                            id: id.clone(),
                            content: self.text(content),
                            is_error: *is_error,
                        },
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_emails_are_replaced_names_kept() {
        let r = Redactor::default();
        let s = "Authorization: Bearer ya29.a0AfH6SMBx-secret\ncookie: sid=abc123; x=1\n\
                 key sk-ant-REDACTME0123456789abcd, api_key=\"AKIAXYZ123456\" mail ana@radar.example";
        let out = r.text(s);
        for secret in [
            "ya29.a0AfH6SMBx",
            "sid=abc123",
            "sk-ant-REDACTME",
            "AKIAXYZ123456",
            "ana@radar.example",
        ] {
            assert!(!out.contains(secret), "{secret} survived: {out}");
        }
        assert!(
            out.contains("Authorization: [redacted]") && out.contains("api_key=\"[redacted]"),
            "{out}"
        );
        assert_eq!(
            r.text("GET /gmail/v1/users/me/messages/18c2 200"),
            "GET /gmail/v1/users/me/messages/18c2 200"
        );
    }

    #[test]
    fn emails_can_be_kept_and_patterns_added() {
        let r = Redactor::new(false, &["ACME-[0-9]+".into()]).unwrap();
        assert_eq!(r.text("ana@radar.example ACME-42"), "ana@radar.example [redacted]");
        assert!(Redactor::new(false, &["(".into()]).unwrap_err().contains("\"(\""));
    }
}
