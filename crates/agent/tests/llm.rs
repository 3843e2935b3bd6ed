//! Provider adapters against recorded provider payloads served over real loopback HTTP by
//! `af mock` (recordings replayed in order, failures included, every arrival journaled).

use std::path::Path;
use std::time::{Duration, Instant};

use af_agent::llm::client::{Engine, LlmError, Provider, RetryPolicy};
use af_agent::llm::model::{Message, Part, Role, StopReason, ToolSpec, validate_call};
use af_mock::{Failures, Journal, Latency, Mock, MockConfig};
use af_snapshot::{Bodies, Exchange, ReadOptions, read_all};
use af_testkit::ex;
use serde_json::json;

/// A provider stand-in: `af mock` replaying `turns` (status, body, retry-after) in order.
struct Stub {
    base: String,
    journal: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Stub {
    async fn start(path: &str, turns: &[(u16, &str, Option<&str>)]) -> Self {
        let exchanges: Vec<Exchange> = turns
            .iter()
            .enumerate()
            .map(|(i, (status, body, retry_after))| {
                let mut b = ex("POST", &format!("http://provider.test{path}"))
                    .at_ms(i as i64)
                    .status(*status)
                    .response_header("content-type", "application/json")
                    .response_body(body);
                if let Some(r) = retry_after {
                    b = b.response_header("retry-after", r);
                }
                b.build()
            })
            .collect();
        let dir = tempfile::tempdir().expect("tmp");
        let journal = dir.path().join("journal.jsonl");
        let cfg = MockConfig {
            failures: Failures::Replay,
            latency: Latency::None,
            ..MockConfig::default()
        };
        let mock = Mock::new(&exchanges, cfg, Some(Journal::create(&journal).expect("journal")))
            .expect("mock");
        let listener = af_mock::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let m = mock;
        let task = tokio::spawn(async move {
            let r = af_mock::serve(listener, m.clone(), async {
                let _ = rx.await;
            })
            .await;
            let _ = m.finish_journal();
            r
        });
        Self { base, journal, stop: Some(tx), task, _dir: dir }
    }

    /// Stops the server; returns every request body it received.
    async fn requests(mut self) -> Vec<String> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
        let (exs, _) =
            read_all(&self.journal, ReadOptions { lenient: false, bodies: Bodies::Keep })
                .expect("journal");
        exs.iter()
            .map(|e| {
                String::from_utf8_lossy(
                    e.request.body.as_ref().map(|b| b.bytes()).unwrap_or_default(),
                )
                .into_owned()
            })
            .collect()
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
    }
}

fn engine(provider: Provider) -> Engine {
    let mut e = Engine::new(provider, "test-model").expect("engine");
    e.retry = fast();
    e
}

fn openai(base: &str) -> Engine {
    engine(Provider::OpenAi {
        base_url: format!("{base}/v1"),
        key: Some("sk-test-key-000000000000000000".into()),
    })
}

fn anthropic(base: &str) -> Engine {
    engine(Provider::Anthropic {
        base_url: base.into(),
        key: Some("sk-ant-test-000000000000000000".into()),
    })
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "read_file".into(),
        description: "Read a file of the repository".into(),
        schema: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }]
}

fn convo() -> Vec<Message> {
    vec![
        Message::text(Role::System, "You fix bugs."),
        Message::text(Role::User, "Find the fan-out."),
    ]
}

const OPENAI_TOOL: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"src/sync.js\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":120,"completion_tokens":18,"total_tokens":138}}"#;
const OPENAI_TEXT: &str = r#"{"id":"chatcmpl-2","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Done."},"finish_reason":"stop"}],"usage":{"prompt_tokens":150,"completion_tokens":2}}"#;
const ANTHROPIC_TOOL: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Reading the sync code."},{"type":"tool_use","id":"toolu_1","name":"read_file","input":{"path":"src/sync.js"}}],"stop_reason":"tool_use","usage":{"input_tokens":200,"output_tokens":30}}"#;

#[tokio::test]
async fn openai_tool_call_turn_and_the_wire_format() {
    let stub =
        Stub::start("/v1/chat/completions", &[(200, OPENAI_TOOL, None), (200, OPENAI_TEXT, None)])
            .await;
    let e = openai(&stub.base);
    let mut msgs = convo();
    let r = e.turn(&msgs, &tools()).await.expect("turn");
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (120, 18));
    let call = r.message.tool_calls().next().expect("a call").clone();
    assert!(
        matches!(&call, Part::ToolCall { name, args, .. } if name == "read_file" && args["path"] == "src/sync.js")
    );
    validate_call(&tools(), &call).expect("valid");
    // Second turn with the tool result: the assistant's tool call goes back with content "".
    msgs.push(r.message);
    msgs.push(Message {
        role: Role::User,
        parts: vec![Part::ToolResult {
            id: "call_a".into(),
            content: "const x = 1;".into(),
            is_error: false,
        }],
    });
    let r2 = e.turn(&msgs, &tools()).await.expect("turn 2");
    assert_eq!(r2.stop, StopReason::End);
    let sent = stub.requests().await;
    assert_eq!(sent.len(), 2);
    let second: serde_json::Value = serde_json::from_str(&sent[1]).expect("json");
    assert_eq!(second["parallel_tool_calls"], false);
    let assistant = &second["messages"][2];
    assert_eq!(assistant["content"], "", "content beside tool calls is \"\", never null");
    assert_eq!(assistant["tool_calls"][0]["function"]["arguments"], "{\"path\":\"src/sync.js\"}");
    assert_eq!(
        second["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_a", "content": "const x = 1;"})
    );
}

#[tokio::test]
async fn anthropic_tool_use_turn_and_the_wire_format() {
    let stub = Stub::start("/v1/messages", &[(200, ANTHROPIC_TOOL, None)]).await;
    let e = anthropic(&stub.base);
    let r = e.turn(&convo(), &tools()).await.expect("turn");
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!(r.usage.output_tokens, 30);
    assert_eq!(r.message.parts.len(), 2);
    assert!(
        matches!(&r.message.parts[1], Part::ToolCall { id, args, .. } if id == "toolu_1" && args["path"] == "src/sync.js")
    );
    let sent = stub.requests().await;
    let body: serde_json::Value = serde_json::from_str(&sent[0]).expect("json");
    assert_eq!(body["system"], "You fix bugs.");
    assert_eq!(body["tool_choice"]["disable_parallel_tool_use"], true);
    assert_eq!(body["tools"][0]["input_schema"]["required"][0], "path");
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let limited = r#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#;
    let stub =
        Stub::start("/v1/chat/completions", &[(429, limited, Some("1")), (200, OPENAI_TEXT, None)])
            .await;
    let e = openai(&stub.base);
    let t = Instant::now();
    let r = e.turn(&convo(), &[]).await.expect("retried to success");
    assert!(t.elapsed() >= Duration::from_secs(1), "waited {:?}", t.elapsed());
    assert_eq!(r.stop, StopReason::End);
    assert_eq!(e.exchanged().iter().map(|x| x.status).collect::<Vec<_>>(), [429, 200]);
    assert_eq!(stub.requests().await.len(), 2);
}

#[tokio::test]
async fn anthropic_529_overloaded_is_retried() {
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let stub =
        Stub::start("/v1/messages", &[(529, overloaded, None), (200, ANTHROPIC_TOOL, None)]).await;
    let e = anthropic(&stub.base);
    e.turn(&convo(), &tools()).await.expect("retried to success");
    assert_eq!(stub.requests().await.len(), 2);
}

#[tokio::test]
async fn a_quota_429_is_never_retried() {
    let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","code":"insufficient_quota"}}"#;
    let stub =
        Stub::start("/v1/chat/completions", &[(429, quota, Some("1")), (200, OPENAI_TEXT, None)])
            .await;
    let e = openai(&stub.base);
    let err = e.turn(&convo(), &[]).await.expect_err("quota");
    assert!(matches!(err, LlmError::Quota { status: 429, .. }), "{err}");
    assert!(err.to_string().contains("not retried"));
    assert_eq!(stub.requests().await.len(), 1, "one request, no retry");
}

#[tokio::test]
async fn retries_run_out_with_the_last_status() {
    let busy = r#"{"error":{"message":"server busy"}}"#;
    let stub = Stub::start("/v1/chat/completions", &[(503, busy, None)]).await;
    let e = openai(&stub.base);
    let err = e.turn(&convo(), &[]).await.expect_err("gives up");
    assert!(matches!(err, LlmError::Http { status: 503, attempts: 4, .. }), "{err}");
    assert_eq!(stub.requests().await.len(), 4);
}

#[tokio::test]
async fn malformed_arguments_and_unknown_tools_become_tool_errors() {
    let bad_args = r#"{"choices":[{"message":{"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"read_file","arguments":"{\"path\": \"src/sy"}}]},"finish_reason":"tool_calls"}]}"#;
    let unknown = r#"{"choices":[{"message":{"role":"assistant","content":"","tool_calls":[{"id":"c2","type":"function","function":{"name":"rm_rf","arguments":{"path":"/"}}}]},"finish_reason":"stop"}]}"#;
    let stub =
        Stub::start("/v1/chat/completions", &[(200, bad_args, None), (200, unknown, None)]).await;
    let e = openai(&stub.base);
    let r = e.turn(&convo(), &tools()).await.expect("turn");
    let call = r.message.tool_calls().next().expect("call");
    assert!(matches!(call, Part::ToolCall { args_error: Some(_), .. }));
    assert!(validate_call(&tools(), call).expect_err("bad").contains("not valid JSON"));
    // An object instead of a string (some local servers): parsed; the unknown name is refused.
    let r = e.turn(&convo(), &tools()).await.expect("turn");
    assert_eq!(r.stop, StopReason::ToolUse, "tool calls decide, whatever finish_reason says");
    let call = r.message.tool_calls().next().expect("call");
    let err = validate_call(&tools(), call).expect_err("unknown");
    assert!(err.contains("unknown tool \"rm_rf\"") && err.contains("read_file"), "{err}");
    drop(stub.requests().await);
}

#[tokio::test]
async fn a_truncated_response_is_a_clear_error() {
    let cut = r#"{"id":"chatcmpl-3","choices":[{"index":0,"message":{"role":"assist"#;
    let stub = Stub::start("/v1/chat/completions", &[(200, cut, None)]).await;
    let e = openai(&stub.base);
    let err = e.turn(&convo(), &[]).await.expect_err("truncated");
    assert!(
        matches!(err, LlmError::BadResponse { .. }) && err.to_string().contains("truncated"),
        "{err}"
    );
    drop(stub.requests().await);
}

#[tokio::test]
async fn secrets_in_the_conversation_never_reach_the_provider() {
    // A snapshot's secrets (recorded with --keep-secrets) pasted into the conversation.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/formats/native-v1.jsonl");
    let sample = std::fs::read_to_string(fixture).expect("fixture");
    let secrets = [
        "Bearer ya29.a0-live-token-123456",
        "sk-ant-api03-abcdefghijklmnopqrstu",
        "ana@radar.example",
        "session=4f9a8b7c6d",
    ];
    let text = format!(
        "traffic:\nAuthorization: {}\nx-api-key: {}\nfrom {} cookie: {}\n{}",
        secrets[0],
        secrets[1],
        secrets[2],
        secrets[3],
        sample.lines().take(3).collect::<Vec<_>>().join("\n")
    );
    let stub = Stub::start("/v1/chat/completions", &[(200, OPENAI_TEXT, None)]).await;
    let e = openai(&stub.base);
    let msgs = vec![
        Message::text(Role::User, text),
        Message {
            role: Role::User,
            parts: vec![Part::ToolResult {
                id: "c".into(),
                content: format!("token={}", &secrets[1][7..]),
                is_error: false,
            }],
        },
    ];
    e.turn(&msgs, &[]).await.expect("turn");
    let sent = stub.requests().await;
    for s in secrets.iter().map(|s| s.split_whitespace().last().unwrap_or(s)) {
        assert!(!sent[0].contains(s), "{s} reached the provider: {}", sent[0]);
    }
    assert!(sent[0].contains("[redacted]"));
}

/// The engine for a real OpenAI-compatible server (docs/llm-local.md), from
/// `AF_TEST_OPENAI_BASE_URL` and `AF_TEST_OPENAI_MODEL`.
fn real_server() -> Engine {
    let base = std::env::var("AF_TEST_OPENAI_BASE_URL").expect("AF_TEST_OPENAI_BASE_URL");
    let model = std::env::var("AF_TEST_OPENAI_MODEL").expect("AF_TEST_OPENAI_MODEL");
    let mut e = Engine::new(
        Provider::OpenAi {
            base_url: base.trim_end_matches('/').into(),
            key: std::env::var("OPENAI_API_KEY").ok(),
        },
        &model,
    )
    .expect("engine");
    e.max_tokens = 64;
    e
}

/// Any OpenAI-compatible server: a turn with tools offered comes back parsed, with usage.
/// `AF_TEST_OPENAI_BASE_URL=http://127.0.0.1:8080/v1 AF_TEST_OPENAI_MODEL=m \
///  cargo test -p af-agent --test llm -- --ignored real_server`
#[tokio::test]
#[ignore = "needs a local OpenAI-compatible server: AF_TEST_OPENAI_BASE_URL and AF_TEST_OPENAI_MODEL"]
async fn real_server_answers_a_turn_with_tools_offered() {
    let e = real_server();
    let msgs = vec![Message::text(Role::User, "Say hello.")];
    let r = e.turn(&msgs, &tools()).await.expect("a parsed reply");
    assert_eq!(r.message.role, Role::Assistant);
    assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0, "{:?}", r.usage);
    for call in r.message.tool_calls() {
        validate_call(&tools(), call).expect("any tool call is valid");
    }
}

/// A server and model that call tools: the model's call arrives as a valid tool call.
#[tokio::test]
#[ignore = "needs a local OpenAI-compatible server with a tool-calling model"]
async fn real_server_answers_a_tool_turn() {
    let mut e = real_server();
    e.max_tokens = 256;
    let msgs = vec![Message::text(
        Role::User,
        "Call read_file with path \"src/sync.js\". Do not answer in text.",
    )];
    let r = e.turn(&msgs, &tools()).await.expect("a reply");
    let call = r.message.tool_calls().next().expect("the model called a tool");
    validate_call(&tools(), call).expect("a valid read_file call");
}

#[tokio::test]
async fn the_text_fallback_sends_no_tools_and_reads_a_fenced_call() {
    let text = r#"{"choices":[{"message":{"role":"assistant","content":"Reading the code.\n```tool\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"src/sync.js\"}}\n```"},"finish_reason":"stop"}]}"#;
    let stub = Stub::start("/v1/chat/completions", &[(200, text, None)]).await;
    let mut e =
        Engine::from_spec("openai-text:small", Some(&format!("{}/v1", stub.base))).expect("engine");
    e.retry = fast();
    let r = e.turn(&convo(), &tools()).await.expect("turn");
    assert_eq!(r.stop, StopReason::ToolUse);
    let call = r.message.tool_calls().next().expect("a call");
    validate_call(&tools(), call).expect("valid");
    let sent: serde_json::Value = serde_json::from_str(&stub.requests().await[0]).expect("json");
    assert!(sent.get("tools").is_none(), "no tools field for a server without tool calling");
    assert!(sent["messages"][0]["content"].as_str().expect("system").contains("- read_file:"));
}
