//! A faithful fake of Anthropic's Messages API (`POST /v1/messages`), on 127.0.0.1:0.
//!
//! * Validates like the real API (401 for a missing/wrong `x-api-key`, 400 for a missing
//!   `anthropic-version` or a malformed body) before any scripted reply is consumed.
//! * Replies are scripted with [`FakeAnthropic::push`] and consumed FIFO; when none is
//!   queued, [`Reply::Echo`] answers `"Echo: <last user text>"`.
//! * `"stream": true` gets the real server-sent-event sequence (tool input as
//!   `input_json_delta` pieces, cumulative usage in `message_delta`).
//! * Prompt caching is simulated for `cache_control` breakpoints of at least the model's minimum
//!   (1024 tokens for most models, 2048 or 4096 for some).
//!
//! Token estimates: 1 token per 4 characters, rounded up.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use axum::serve::{IncomingStream, Listener};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The only API key the fake accepts (header `x-api-key`).
pub const FAKE_API_KEY: &str = "sk-ant-test-fake-key-0123456789";

/// Minimum cacheable prompt length, in (estimated) tokens.
const MIN_CACHEABLE_TOKENS: u64 = 1024;

/// Anthropic's per-model minimum for a cacheable prefix (shorter breakpoints are ignored).
fn min_cacheable_tokens(model: &str) -> u64 {
    if model.starts_with("claude-haiku-4-5")
        || model.starts_with("claude-opus-4-5")
        || model.starts_with("claude-opus-4-6")
    {
        4096
    } else if model.starts_with("claude-3-haiku")
        || model.starts_with("claude-3-5-haiku")
        || model.starts_with("claude-opus-4-7")
    {
        2048
    } else {
        MIN_CACHEABLE_TOKENS
    }
}
/// The real API refuses bodies over 32 MB with 413 `request_too_large`.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Pause between streamed events, so they arrive as separate chunks.
const STREAM_EVENT_GAP: Duration = Duration::from_millis(2);
/// How long [`Reply::Hang`] waits before giving up.
const HANG_FOR: Duration = Duration::from_secs(3600);

/// One `POST /v1/messages` as received.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    /// The JSON body; a body that is not JSON is kept as a `Value::String` of its text.
    pub body: serde_json::Value,
    /// All headers, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Token usage as reported by the API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// What the fake answers to the next valid request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `"Echo: " + last user text`, honouring `max_tokens` and `stop_sequences`, with
    /// estimated usage and simulated prompt caching.
    Echo,
    /// A fixed success.
    Text {
        text: String,
        stop_reason: String,
        usage: Usage,
    },
    /// An API error: `{"type":"error","error":{"type":..,"message":..},"request_id":..}`.
    Error {
        status: u16,
        error_type: String,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// A tool call: a short text block, then a `tool_use` block; `stop_reason: "tool_use"`.
    ToolUse { name: String, input: Value },
    /// A stream that starts, sends some text, then an `error` event, as the API does when it
    /// overloads mid-answer. A request without `"stream": true` gets the same error as a 529.
    ErrorMidStream { error_type: String, message: String },
    /// Close the connection without any HTTP response.
    Disconnect,
    /// Never answer (sleeps for an hour).
    Hang,
}

impl Reply {
    /// A fixed success: `end_turn`, 10 input tokens, output tokens estimated from the text.
    pub fn text(text: impl Into<String>) -> Reply {
        let text = text.into();
        let output_tokens = estimate_tokens(char_len(&text)).max(1);
        Reply::Text {
            text,
            stop_reason: "end_turn".into(),
            usage: Usage {
                input_tokens: 10,
                output_tokens,
                ..Usage::default()
            },
        }
    }

    /// An error of the given status with its standard error type.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::Error {
            status,
            error_type: error_type_for(status).into(),
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// A call of tool `name` with `input`.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Reply {
        Reply::ToolUse {
            name: name.into(),
            input,
        }
    }

    /// An `overloaded_error` event after the stream started.
    pub fn overloaded_mid_stream() -> Reply {
        Reply::ErrorMidStream {
            error_type: "overloaded_error".into(),
            message: "Overloaded".into(),
        }
    }

    /// 529 `overloaded_error` "Overloaded".
    pub fn overloaded() -> Reply {
        Reply::error(529, "Overloaded")
    }

    /// 429 `rate_limit_error` with a `retry-after: SECS` header.
    pub fn rate_limited(retry_after_secs: u64) -> Reply {
        Reply::Error {
            status: 429,
            error_type: "rate_limit_error".into(),
            message: "Number of request tokens has exceeded your per-minute rate limit".into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// 500 `api_error` "Internal server error".
    pub fn server_error() -> Reply {
        Reply::error(500, "Internal server error")
    }

    /// 401 `authentication_error` "invalid x-api-key".
    pub fn unauthorized() -> Reply {
        Reply::error(401, "invalid x-api-key")
    }

    /// 400 `invalid_request_error` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Reply {
        Reply::error(400, message)
    }
}

/// The API's error type for an HTTP status.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

#[derive(Default)]
struct Inner {
    calls: usize,
    requests: Vec<ReceivedRequest>,
    replies: VecDeque<Reply>,
    latency: Duration,
    /// Cached prompt prefixes (model + content up to a breakpoint).
    prompt_cache: HashSet<String>,
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake; the server stops when this is dropped.
pub struct FakeAnthropic {
    url: String,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAnthropic {
    /// Serve `POST /v1/messages` on 127.0.0.1 at a free port.
    pub async fn start() -> FakeAnthropic {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind fake Anthropic");
        let addr = listener.local_addr().expect("local addr");
        let state = Shared::default();
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .fallback(not_found)
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(
                KillableListener(listener),
                app.into_make_service_with_connect_info::<KillSwitch>(),
            )
            .await
            .expect("fake Anthropic server");
        });
        FakeAnthropic {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` (gateway env `ANTHROPIC_BASE_URL`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `POST /v1/messages` requests received so far, whatever their outcome.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// The requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Queue a scripted reply (FIFO); when the queue is empty, [`Reply::Echo`] answers.
    pub fn push(&self, reply: Reply) {
        self.state.lock().unwrap().replies.push_back(reply);
    }

    /// Delay added before every reply (errors, disconnects and validation failures too).
    pub fn set_latency(&self, d: Duration) {
        self.state.lock().unwrap().latency = d;
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------
// Request handling.

async fn not_found() -> Response {
    error_response(404, "not_found_error", "Not found", None)
}

async fn messages(
    State(state): State<Shared>,
    ConnectInfo(kill): ConnectInfo<KillSwitch>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&raw);
    let received = ReceivedRequest {
        body: match &parsed {
            Ok(v) => v.clone(),
            Err(_) => Value::String(String::from_utf8_lossy(&raw).into_owned()),
        },
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };

    // Everything is decided on arrival (so concurrent requests consume scripted replies in
    // arrival order); the latency is served afterwards.
    let (latency, action) = {
        let mut inner = state.lock().unwrap();
        inner.calls += 1;
        inner.requests.push(received);
        let action = match validate(&headers, raw.len(), parsed.ok()) {
            Err(e) => Action::Respond(error_response(e.status, e.error_type, &e.message, None)),
            Ok(body) => {
                let reply = inner.replies.pop_front().unwrap_or(Reply::Echo);
                decide(&mut inner, reply, &body)
            }
        };
        (inner.latency, action)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match action {
        Action::Respond(resp) => resp,
        Action::Disconnect => {
            kill.kill();
            // Never written: the connection fails as soon as hyper touches it.
            Response::new(Body::empty())
        }
        Action::Hang => {
            tokio::time::sleep(HANG_FOR).await;
            error_response(500, "api_error", "fake Anthropic hung", None)
        }
    }
}

enum Action {
    Respond(Response),
    Disconnect,
    Hang,
}

fn decide(inner: &mut Inner, reply: Reply, body: &Value) -> Action {
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let outcome = match reply {
        Reply::Disconnect => return Action::Disconnect,
        Reply::Hang => return Action::Hang,
        Reply::Error {
            status,
            error_type,
            message,
            retry_after_secs,
        } => {
            return Action::Respond(error_response(
                status,
                &error_type,
                &message,
                retry_after_secs,
            ));
        }
        Reply::ErrorMidStream {
            error_type,
            message,
        } => {
            if !stream {
                return Action::Respond(error_response(529, &error_type, &message, None));
            }
            let msg = Message {
                id: unique_id("msg"),
                model,
                outcome: Outcome::text("Partial", "end_turn", Usage::default()),
            };
            let mut events = msg.events();
            // message_start, ping, content_block_start, the first delta; then the error.
            events.truncate(4);
            events.push(sse(
                "error",
                json!({"type": "error", "error": {"type": error_type, "message": message}}),
            ));
            return Action::Respond(event_stream(events));
        }
        Reply::Text {
            text,
            stop_reason,
            usage,
        } => Outcome::text(text, &stop_reason, usage),
        Reply::ToolUse { name, input } => {
            let text = format!("Let me call {name}.");
            let usage = Usage {
                input_tokens: 10,
                output_tokens: estimate_tokens(char_len(&text) + char_len(&input.to_string())),
                ..Usage::default()
            };
            Outcome {
                tool_use: Some(ToolCall {
                    id: unique_id("toolu"),
                    name,
                    input,
                }),
                ..Outcome::text(text, "tool_use", usage)
            }
        }
        Reply::Echo => echo(inner, body),
    };
    let msg = Message {
        id: unique_id("msg"),
        model,
        outcome,
    };
    Action::Respond(if stream {
        stream_response(msg)
    } else {
        json_response(StatusCode::OK, msg.to_json())
    })
}

/// A validation failure, rendered with [`error_response`].
struct Invalid {
    status: u16,
    error_type: &'static str,
    message: String,
}

/// Header and body checks of the real API; `Ok` carries the parsed body.
fn validate(headers: &HeaderMap, len: usize, body: Option<Value>) -> Result<Value, Invalid> {
    let bad = |msg: &str| {
        Err(Invalid {
            status: 400,
            error_type: "invalid_request_error",
            message: msg.to_owned(),
        })
    };
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(FAKE_API_KEY) {
        return Err(Invalid {
            status: 401,
            error_type: "authentication_error",
            message: "invalid x-api-key".into(),
        });
    }
    if !headers.contains_key("anthropic-version") {
        return bad("anthropic-version: header is required");
    }
    if len > MAX_BODY_BYTES {
        return Err(Invalid {
            status: 413,
            error_type: "request_too_large",
            message: "Request exceeds the maximum allowed number of bytes.".into(),
        });
    }
    let Some(body) = body.filter(Value::is_object) else {
        return bad("The request body is not a valid JSON object.");
    };
    match body.get("model") {
        None | Some(Value::Null) => return bad("model: Field required"),
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(_) => return bad("model: Input should be a valid non-empty string"),
    }
    match body.get("max_tokens") {
        None | Some(Value::Null) => return bad("max_tokens: Field required"),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 => {}
            Some(_) => return bad("max_tokens: Input should be greater than or equal to 1"),
            None => return bad("max_tokens: Input should be a valid integer"),
        },
    }
    match body.get("messages") {
        None | Some(Value::Null) => return bad("messages: Field required"),
        Some(Value::Array(msgs)) if msgs.is_empty() => {
            return bad("messages: at least one message is required");
        }
        Some(Value::Array(msgs)) => {
            for (i, m) in msgs.iter().enumerate() {
                match m.get("role").and_then(Value::as_str) {
                    Some("user" | "assistant") => {}
                    _ => {
                        return bad(&format!(
                            "messages.{i}.role: Input should be 'user' or 'assistant'"
                        ));
                    }
                }
                match m.get("content") {
                    Some(Value::String(_) | Value::Array(_)) => {}
                    _ => return bad(&format!("messages.{i}.content: Field required")),
                }
            }
        }
        Some(_) => return bad("messages: Input should be a valid list"),
    }
    if let Some(s) = body
        .get("stream")
        .filter(|s| !s.is_null() && !s.is_boolean())
    {
        return bad(&format!("stream: Input should be a valid boolean, got {s}"));
    }
    Ok(body)
}

struct Outcome {
    text: String,
    stop_reason: String,
    stop_sequence: Option<String>,
    usage: Usage,
    /// Part of `usage.cache_creation_input_tokens` written with a 1h TTL.
    cache_creation_1h: u64,
    /// A `tool_use` block after the text block.
    tool_use: Option<ToolCall>,
}

struct ToolCall {
    id: String,
    name: String,
    input: Value,
}

impl Outcome {
    fn text(text: impl Into<String>, stop_reason: &str, usage: Usage) -> Outcome {
        Outcome {
            text: text.into(),
            stop_reason: stop_reason.into(),
            stop_sequence: None,
            usage,
            cache_creation_1h: 0,
            tool_use: None,
        }
    }
}

struct Message {
    id: String,
    model: String,
    outcome: Outcome,
}

impl Message {
    fn usage_json(&self, output_tokens: u64) -> Value {
        let o = &self.outcome;
        let u = &o.usage;
        let one_hour = o.cache_creation_1h.min(u.cache_creation_input_tokens);
        json!({
            "input_tokens": u.input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": u.cache_creation_input_tokens - one_hour,
                "ephemeral_1h_input_tokens": one_hour,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content(),
            "stop_reason": self.outcome.stop_reason,
            "stop_sequence": self.outcome.stop_sequence,
            "usage": self.usage_json(self.outcome.usage.output_tokens),
        })
    }

    fn content(&self) -> Value {
        let mut content = vec![json!({"type": "text", "text": self.outcome.text})];
        if let Some(tool) = &self.outcome.tool_use {
            content.push(json!({
                "type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input,
            }));
        }
        Value::Array(content)
    }

    /// The server-sent events of a streamed response, already framed.
    fn events(&self) -> Vec<String> {
        let o = &self.outcome;
        let mut events = vec![
            sse(
                "message_start",
                json!({
                    "type": "message_start",
                    "message": {
                        "id": self.id,
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": null,
                        "stop_sequence": null,
                        "usage": self.usage_json(1),
                    },
                }),
            ),
            sse("ping", json!({"type": "ping"})),
            sse(
                "content_block_start",
                json!({
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }),
            ),
        ];
        let chars: Vec<char> = o.text.chars().collect();
        let chunk = chars.len().div_ceil(3).max(1);
        for piece in chars.chunks(chunk) {
            events.push(sse(
                "content_block_delta",
                json!({
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece.iter().collect::<String>()},
                }),
            ));
        }
        events.push(sse(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        if let Some(tool) = &o.tool_use {
            events.push(sse(
                "content_block_start",
                json!({
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}},
                }),
            ));
            let json: Vec<char> = tool.input.to_string().chars().collect();
            for piece in json.chunks(json.len().div_ceil(3).max(1)) {
                events.push(sse(
                    "content_block_delta",
                    json!({
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": piece.iter().collect::<String>()},
                    }),
                ));
            }
            events.push(sse(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ));
        }
        events.push(sse(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": o.stop_reason, "stop_sequence": o.stop_sequence},
                "usage": {
                    "input_tokens": o.usage.input_tokens,
                    "cache_creation_input_tokens": o.usage.cache_creation_input_tokens,
                    "cache_read_input_tokens": o.usage.cache_read_input_tokens,
                    "output_tokens": o.usage.output_tokens,
                },
            }),
        ));
        events.push(sse("message_stop", json!({"type": "message_stop"})));
        events
    }
}

fn sse(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

fn json_response(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("request-id", unique_id("req"))
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

fn error_response(
    status: u16,
    error_type: &str,
    message: &str,
    retry_after_secs: Option<u64>,
) -> Response {
    let request_id = unique_id("req");
    let body = json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    });
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status code"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("request-id", request_id);
    if let Some(secs) = retry_after_secs {
        builder = builder.header(header::RETRY_AFTER, secs.to_string());
    }
    builder
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

fn stream_response(msg: Message) -> Response {
    event_stream(msg.events())
}

fn event_stream(events: Vec<String>) -> Response {
    let body = futures_util::stream::unfold(
        (events.into_iter(), true),
        |(mut events, first)| async move {
            let event = events.next()?;
            if !first {
                tokio::time::sleep(STREAM_EVENT_GAP).await;
            }
            Some((Ok::<_, Infallible>(Bytes::from(event)), (events, false)))
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("request-id", unique_id("req"))
        .body(Body::from_stream(body))
        .expect("valid response")
}

// ---------------------------------------------------------------------------------------
// Echo, token estimates and prompt caching.

fn char_len(s: &str) -> u64 {
    s.chars().count() as u64
}

/// 1 token per 4 characters, rounded up.
fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

/// The text of a `content` (a string, or blocks whose text blocks are joined with `'\n'`).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(block_text)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The countable text of one content block (text, or a tool result's text).
fn block_text(block: &Value) -> Option<String> {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => block.get("text").and_then(Value::as_str).map(str::to_owned),
        Some("tool_result") => block.get("content").map(content_text),
        _ => None,
    }
}

/// A piece of the prompt in cache order (system blocks, then message content blocks).
struct Segment {
    /// `"system"`, `"user"` or `"assistant"`: part of the cache key, not of the count.
    role: String,
    text: String,
    /// `Some(is_1h)` when the block carries `cache_control: {"type": "ephemeral"}`.
    breakpoint: Option<bool>,
}

fn segments(body: &Value) -> Vec<Segment> {
    let mut segs = Vec::new();
    let mut push_content = |content: &Value, role: &str| match content {
        Value::String(s) => segs.push(Segment {
            role: role.to_owned(),
            text: s.clone(),
            breakpoint: None,
        }),
        Value::Array(blocks) => {
            for block in blocks {
                let breakpoint = block
                    .get("cache_control")
                    .filter(|cc| cc.get("type").and_then(Value::as_str) == Some("ephemeral"))
                    .map(|cc| cc.get("ttl").and_then(Value::as_str) == Some("1h"));
                segs.push(Segment {
                    role: role.to_owned(),
                    text: block_text(block).unwrap_or_default(),
                    breakpoint,
                });
            }
        }
        _ => {}
    };
    if let Some(system) = body.get("system") {
        push_content(system, "system");
    }
    for m in body["messages"].as_array().into_iter().flatten() {
        push_content(&m["content"], m["role"].as_str().unwrap_or_default());
    }
    segs
}

fn echo(inner: &mut Inner, body: &Value) -> Outcome {
    let model = body["model"].as_str().unwrap_or_default();

    // Input: estimated over system + messages text; cacheable prefixes ending at a
    // `cache_control` breakpoint count as cache writes (first time) or reads (later).
    let mut chars = 0u64;
    let mut key = format!("{model}\u{0}");
    let mut breakpoints: Vec<(u64, String, bool)> = Vec::new();
    for seg in segments(body) {
        chars += char_len(&seg.text);
        key.push_str(&seg.role);
        key.push('\u{2}');
        key.push_str(&seg.text);
        key.push('\u{1}');
        if let Some(one_hour) = seg.breakpoint {
            let tokens = estimate_tokens(chars);
            if tokens >= min_cacheable_tokens(model) {
                breakpoints.push((tokens, key.clone(), one_hour));
            }
        }
    }
    let total = estimate_tokens(chars).max(1);
    let (read, created, created_1h) = match breakpoints.last() {
        None => (0, 0, 0),
        Some((tokens, key, _)) if inner.prompt_cache.contains(key) => (*tokens, 0, 0),
        Some((tokens, _, one_hour)) => {
            let hit = breakpoints
                .iter()
                .rev()
                .find(|(_, k, _)| inner.prompt_cache.contains(k))
                .map_or(0, |(t, _, _)| *t);
            for (_, k, _) in &breakpoints {
                inner.prompt_cache.insert(k.clone());
            }
            let created = tokens - hit;
            (hit, created, if *one_hour { created } else { 0 })
        }
    };

    // Output: "Echo: " + the last user message, cut by max_tokens / stop_sequences.
    let last_user = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let mut text = format!("Echo: {last_user}");
    let mut stop_reason = "end_turn".to_owned();
    let mut stop_sequence = None;
    let max_tokens = body["max_tokens"].as_u64().unwrap_or(u64::MAX);
    if estimate_tokens(char_len(&text)).max(1) > max_tokens {
        let keep = usize::try_from(max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
        text = text.chars().take(keep).collect();
        stop_reason = "max_tokens".into();
    }
    let first_stop = body["stop_sequences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s).map(|at| (at, s)))
        .min();
    if let Some((at, s)) = first_stop {
        text.truncate(at);
        stop_reason = "stop_sequence".into();
        stop_sequence = Some(s.to_owned());
    }
    let output_tokens = estimate_tokens(char_len(&text)).max(1).min(max_tokens);

    Outcome {
        text,
        stop_reason,
        stop_sequence,
        usage: Usage {
            input_tokens: total.saturating_sub(read + created),
            output_tokens,
            cache_creation_input_tokens: created,
            cache_read_input_tokens: read,
        },
        cache_creation_1h: created_1h,
        tool_use: None,
    }
}

fn unique_id(prefix: &str) -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (nanos ^ (u64::from(std::process::id()) << 32)) & 0xffff_ffff_ffff
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_01fake{seed:012x}{n:06x}")
}

// ---------------------------------------------------------------------------------------
// A listener whose connections a handler can kill, for `Reply::Disconnect`.

struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    let io = KillableIo {
                        inner,
                        killed: Arc::default(),
                    };
                    return (io, addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Handed to the handler (as connect info) to kill its own connection.
#[derive(Clone)]
struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        KillSwitch(stream.io().killed.clone())
    }
}

/// A TCP stream that fails every operation once killed, so hyper drops the connection
/// without writing a response.
struct KillableIo {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableIo {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "killed by fake Anthropic (Reply::Disconnect)",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
