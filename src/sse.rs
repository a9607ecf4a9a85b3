//! The Messages API's server-sent events: split a byte stream into events, assemble the final
//! message from them (what a streamed miss stores), and replay a stored message as a valid event
//! sequence (what a streamed hit answers).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::upstream::UpstreamError;

/// One server-sent event: its `event:` name and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

/// `event: NAME\ndata: JSON\n\n`.
pub fn frame(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Splits a byte stream into events; chunks may be cut anywhere, even inside a character.
#[derive(Debug, Default)]
pub struct EventParser {
    line: Vec<u8>,
    name: String,
    data: String,
    has_data: bool,
}

impl EventParser {
    /// The events that `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.end_line(&line) {
                events.push(event);
            }
        }
        self.line.extend_from_slice(rest);
        events
    }

    fn end_line(&mut self, line: &[u8]) -> Option<Event> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !self.has_data && self.name.is_empty() {
                return None;
            }
            self.has_data = false;
            let name = std::mem::take(&mut self.name);
            return Some(Event {
                name: if name.is_empty() {
                    "message".into()
                } else {
                    name
                },
                data: std::mem::take(&mut self.data),
            });
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            // A line starting with ':' is a comment.
            "" => {}
            "event" => self.name = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

/// A message assembled from a stream, and whether it can be stored: `false` when the stream
/// carried a delta this assembler does not know, so the stored copy could differ from what
/// the caller saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    pub message: Value,
    pub storable: bool,
}

/// Builds the final message from a stream's events, as the SDKs do: text, tool input
/// (`input_json_delta`, parsed at the block's end), thinking and signatures, citations, and
/// the cumulative usage of `message_delta` over that of `message_start`.
#[derive(Debug, Default)]
pub struct Assembler {
    message: Option<Map<String, Value>>,
    partial_json: HashMap<usize, String>,
    stopped: bool,
    unknown: Option<String>,
    error: Option<UpstreamError>,
}

impl Assembler {
    pub fn push(&mut self, event: &Event) {
        if self.error.is_some() || self.stopped || event.name == "ping" {
            return;
        }
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(data) => data,
            Err(e) => {
                return self.fail(format!("an event's data is not JSON ({e})"));
            }
        };
        if event.name == "error" || data["type"] == "error" {
            self.error = Some(error_event(&data));
            return;
        }
        match data["type"].as_str().unwrap_or_default() {
            "message_start" => match data.get("message") {
                Some(Value::Object(message)) => self.message = Some(message.clone()),
                _ => self.fail("message_start carries no message".into()),
            },
            "content_block_start" => self.block_start(&data),
            "content_block_delta" => self.block_delta(&data),
            "content_block_stop" => self.block_stop(&data),
            "message_delta" => {
                let Some(message) = self.message.as_mut() else {
                    return self.fail("message_delta before message_start".into());
                };
                if let Some(Value::Object(delta)) = data.get("delta") {
                    merge(message, delta);
                }
                if let Some(Value::Object(usage)) = data.get("usage") {
                    let stored = message
                        .entry("usage")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !stored.is_object() {
                        *stored = Value::Object(Map::new());
                    }
                    if let Value::Object(stored) = stored {
                        merge(stored, usage);
                    }
                }
            }
            "message_stop" => self.stopped = true,
            // Events added to the API later are relayed; they do not change the message.
            _ => {}
        }
    }

    /// Whether the stream carried an `error` event (already relayed to the caller).
    pub fn saw_error(&self) -> bool {
        self.error.is_some()
    }

    /// The final message, or why the stream did not produce one.
    pub fn finish(self) -> Result<Assembled, UpstreamError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let Some(message) = self.message else {
            return Err(invalid("the stream carried no message_start".into()));
        };
        if !self.stopped {
            return Err(UpstreamError::Connect {
                message: "the stream ended before message_stop".into(),
                attempts: 1,
            });
        }
        if let Some(unknown) = &self.unknown {
            tracing::warn!(unknown = %unknown, "a streamed answer is not stored: it carried something the gateway cannot assemble");
        }
        Ok(Assembled {
            message: Value::Object(message),
            storable: self.unknown.is_none(),
        })
    }

    fn fail(&mut self, message: String) {
        self.error = Some(invalid(message));
    }

    fn content(&mut self) -> Option<&mut Vec<Value>> {
        let message = self.message.as_mut()?;
        let content = message
            .entry("content")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !content.is_array() {
            *content = Value::Array(Vec::new());
        }
        content.as_array_mut()
    }

    fn block_start(&mut self, data: &Value) {
        let (Some(index), Some(block)) = (index_of(data), data.get("content_block")) else {
            return self.fail("content_block_start without index or block".into());
        };
        let Some(content) = self.content() else {
            return self.fail("content_block_start before message_start".into());
        };
        match index.cmp(&content.len()) {
            std::cmp::Ordering::Less => content[index] = block.clone(),
            std::cmp::Ordering::Equal => content.push(block.clone()),
            std::cmp::Ordering::Greater => self.fail(format!(
                "content_block_start for block {index} skips a block"
            )),
        }
    }

    fn block_delta(&mut self, data: &Value) {
        let (Some(index), Some(delta)) = (index_of(data), data.get("delta")) else {
            return self.fail("content_block_delta without index or delta".into());
        };
        let kind = delta["type"].as_str().unwrap_or_default();
        if kind == "input_json_delta" {
            let piece = delta["partial_json"].as_str().unwrap_or_default();
            self.partial_json.entry(index).or_default().push_str(piece);
            return;
        }
        let Some(block) = self
            .content()
            .and_then(|c| c.get_mut(index))
            .and_then(Value::as_object_mut)
        else {
            return self.fail(format!("a delta for block {index}, which has not started"));
        };
        let append = |block: &mut Map<String, Value>, field: &str| {
            let piece = delta[field].as_str().unwrap_or_default();
            match block.get_mut(field) {
                Some(Value::String(text)) => text.push_str(piece),
                _ => {
                    block.insert(field.into(), Value::String(piece.into()));
                }
            }
        };
        match kind {
            "text_delta" => append(block, "text"),
            "thinking_delta" => append(block, "thinking"),
            "signature_delta" => {
                block.insert("signature".into(), delta["signature"].clone());
            }
            "citations_delta" => match block.get_mut("citations") {
                Some(Value::Array(citations)) => citations.push(delta["citation"].clone()),
                _ => {
                    block.insert("citations".into(), json!([delta["citation"]]));
                }
            },
            other => self.unknown = Some(format!("delta type {other:?}")),
        }
    }

    fn block_stop(&mut self, data: &Value) {
        let Some(index) = index_of(data) else {
            return self.fail("content_block_stop without index".into());
        };
        let Some(json) = self.partial_json.remove(&index) else {
            return;
        };
        // No input deltas at all means the input of content_block_start (`{}`) stands.
        if json.trim().is_empty() {
            return;
        }
        let input = match serde_json::from_str::<Value>(&json) {
            Ok(input) => input,
            Err(e) => {
                self.unknown = Some(format!("tool input that is not JSON ({e})"));
                return;
            }
        };
        match self
            .content()
            .and_then(|c| c.get_mut(index))
            .and_then(Value::as_object_mut)
        {
            Some(block) => {
                block.insert("input".into(), input);
            }
            None => self.fail(format!("input for block {index}, which has not started")),
        }
    }
}

/// Counts and fields in a `message_delta` are cumulative: a value replaces the one before, but
/// an absent or null one never erases what `message_start` said.
fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        if !value.is_null() || !into.contains_key(key) {
            into.insert(key.clone(), value.clone());
        }
    }
}

fn index_of(data: &Value) -> Option<usize> {
    data["index"].as_u64().and_then(|i| usize::try_from(i).ok())
}

fn invalid(message: String) -> UpstreamError {
    UpstreamError::InvalidResponse {
        message,
        attempts: 1,
    }
}

/// An `error` event's body, `{"type":"error","error":{"type":..,"message":..}}`, with the
/// status the same error would have had before the stream started.
fn error_event(data: &Value) -> UpstreamError {
    let error_type = data["error"]["type"]
        .as_str()
        .unwrap_or("api_error")
        .to_string();
    let status = match error_type.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    UpstreamError::Api {
        status,
        error_type,
        message: data["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        retry_after_secs: None,
        attempts: 1,
    }
}

/// An `error` event in Anthropic's shape, for a stream that broke after it started.
pub fn error_frame(error_type: &str, message: &str) -> String {
    frame(
        "error",
        &json!({"type": "error", "error": {"type": error_type, "message": message}}),
    )
}

/// A stored message as the event sequence the API would have streamed: `message_start`,
/// `ping`, then per block `content_block_start` / `_delta` / `_stop`, then `message_delta`
/// with the cumulative usage and `message_stop`. `None` when `message` is not a message.
pub fn replay(message: &Value) -> Option<String> {
    let message = message.as_object()?;
    let content = message.get("content")?.as_array()?;
    let usage = message.get("usage").cloned().unwrap_or_else(|| json!({}));
    let mut out = String::new();

    let mut start = message.clone();
    start.insert("content".into(), json!([]));
    start.insert("stop_reason".into(), Value::Null);
    start.insert("stop_sequence".into(), Value::Null);
    if start.contains_key("stop_details") {
        start.insert("stop_details".into(), Value::Null);
    }
    let mut start_usage = usage.clone();
    if let Some(output) = start_usage.get_mut("output_tokens") {
        *output = json!(output.as_u64().unwrap_or(0).min(1));
    }
    start.insert("usage".into(), start_usage);
    out.push_str(&frame(
        "message_start",
        &json!({"type": "message_start", "message": start}),
    ));
    out.push_str(&frame("ping", &json!({"type": "ping"})));

    for (index, block) in content.iter().enumerate() {
        let (start_block, deltas) = block_events(block);
        out.push_str(&frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start_block}),
        ));
        for delta in deltas {
            out.push_str(&frame(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        out.push_str(&frame(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }

    let mut delta = Map::new();
    for field in ["stop_reason", "stop_sequence", "stop_details", "container"] {
        if let Some(value) = message.get(field) {
            delta.insert(field.into(), value.clone());
        }
    }
    out.push_str(&frame(
        "message_delta",
        &json!({"type": "message_delta", "delta": delta, "usage": usage}),
    ));
    out.push_str(&frame("message_stop", &json!({"type": "message_stop"})));
    Some(out)
}

/// A block's `content_block_start` form (its streamed fields empty) and the deltas that fill
/// them. Blocks the API sends whole (tool results, redacted thinking) have no deltas.
fn block_events(block: &Value) -> (Value, Vec<Value>) {
    let Some(fields) = block.as_object() else {
        return (block.clone(), Vec::new());
    };
    let mut start = fields.clone();
    let mut deltas = Vec::new();
    let text_of = |field: &str| {
        fields
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    match fields
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "text" => {
            start.insert("text".into(), json!(""));
            start.remove("citations");
            if !text_of("text").is_empty() {
                deltas.push(json!({"type": "text_delta", "text": text_of("text")}));
            }
            if let Some(Value::Array(citations)) = fields.get("citations") {
                for citation in citations {
                    deltas.push(json!({"type": "citations_delta", "citation": citation}));
                }
            }
        }
        "thinking" => {
            start.insert("thinking".into(), json!(""));
            start.remove("signature");
            if !text_of("thinking").is_empty() {
                deltas.push(json!({"type": "thinking_delta", "thinking": text_of("thinking")}));
            }
            if let Some(signature) = fields.get("signature") {
                deltas.push(json!({"type": "signature_delta", "signature": signature}));
            }
        }
        "tool_use" | "server_tool_use" | "mcp_tool_use" => {
            start.insert("input".into(), json!({}));
            let input = fields.get("input").cloned().unwrap_or_else(|| json!({}));
            if input != json!({}) {
                deltas.push(json!({"type": "input_json_delta", "partial_json": input.to_string()}));
            }
        }
        _ => {}
    }
    (Value::Object(start), deltas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(bytes: &str, chunk: usize) -> Result<Assembled, UpstreamError> {
        let mut parser = EventParser::default();
        let mut assembler = Assembler::default();
        for piece in bytes.as_bytes().chunks(chunk) {
            for event in parser.push(piece) {
                assembler.push(&event);
            }
        }
        assembler.finish()
    }

    fn tool_message() -> Value {
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": [
                {"type": "thinking", "thinking": "Weather needs a tool.", "signature": "sig=="},
                {"type": "text", "text": "Let me check — é ✓."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris", "units": ["c"]}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 40, "output_tokens": 25,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024}
        })
    }

    #[test]
    fn a_replayed_message_assembles_back_to_itself_however_it_is_cut() {
        let message = tool_message();
        let events = replay(&message).unwrap();
        for chunk in [1, 2, 7, 64, events.len()] {
            let assembled = assemble(&events, chunk).unwrap();
            assert_eq!(assembled.message, message, "chunks of {chunk}");
            assert!(assembled.storable);
        }
    }

    #[test]
    fn the_replay_is_the_api_event_sequence() {
        let events = replay(&tool_message()).unwrap();
        let names: Vec<Event> = EventParser::default().push(events.as_bytes());
        let names: Vec<&str> = names.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"message_start"));
        assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
        assert_eq!(
            names
                .iter()
                .filter(|n| **n == "content_block_start")
                .count(),
            3
        );
        assert_eq!(
            names.iter().filter(|n| **n == "content_block_stop").count(),
            3
        );
        assert!(events.contains(r#""partial_json":"{\"city\":\"Paris\",\"units\":[\"c\"]}""#));
        assert!(events.contains(r#""signature_delta""#));
    }

    #[test]
    fn usage_is_cumulative_and_message_delta_wins() {
        let stream = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_read_input_tokens":2048,"output_tokens":1}}}"#,
            "\n\n: a comment\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_start\r\n",
            r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            "\r\n\r\n",
            "event: content_block_delta\n",
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            "\n\n",
            "event: content_block_stop\n",
            r#"data: {"type":"content_block_stop","index":0}"#,
            "\n\n",
            "event: message_delta\n",
            r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9,"input_tokens":null}}"#,
            "\n\n",
            "event: message_stop\n",
            r#"data: {"type":"message_stop"}"#,
            "\n\n",
        );
        let message = assemble(stream, 5).unwrap().message;
        assert_eq!(message["content"], json!([{"type": "text", "text": "Hi"}]));
        assert_eq!(message["stop_reason"], "end_turn");
        assert_eq!(message["usage"]["output_tokens"], 9);
        assert_eq!(message["usage"]["input_tokens"], 12);
        assert_eq!(message["usage"]["cache_read_input_tokens"], 2048);
    }

    #[test]
    fn an_error_event_or_a_cut_stream_is_no_message() {
        let start = frame(
            "message_start",
            &json!({"type": "message_start", "message": {"model": "x", "content": [], "usage": {}}}),
        );
        let error = error_frame("overloaded_error", "Overloaded");
        match assemble(&format!("{start}{error}"), 3) {
            Err(UpstreamError::Api {
                status, error_type, ..
            }) => assert_eq!((status, error_type.as_str()), (529, "overloaded_error")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            assemble(&start, 3),
            Err(UpstreamError::Connect { .. })
        ));
    }

    #[test]
    fn an_unknown_delta_is_relayed_but_not_stored() {
        let mut events = replay(&tool_message()).unwrap();
        events = events.replace("thinking_delta", "telepathy_delta");
        let assembled = assemble(&events, 16).unwrap();
        assert!(!assembled.storable);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let events = EventParser::default().push(b"data: a\ndata: b\n\n");
        assert_eq!(
            events,
            vec![Event {
                name: "message".into(),
                data: "a\nb".into()
            }]
        );
    }
}
