//! The offline mock: answers like the Messages API, deterministically, without spending tokens.
//! Used by the local server when no `ANTHROPIC_API_KEY` is set (responses carry `x-upstream: mock`).

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Message, MessagesCall, Upstream, UpstreamError, UpstreamReply, UpstreamStream};
use crate::sse;

pub struct MockUpstream;

/// About four characters a token, as a rough English average.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// All the text in a `system` or `content` value: a string, or blocks with `text`.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[async_trait]
impl Upstream for MockUpstream {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn create_message(&self, call: &MessagesCall) -> Result<UpstreamReply, UpstreamError> {
        let request: Value =
            serde_json::from_slice(&call.body).map_err(|e| UpstreamError::Api {
                status: 400,
                error_type: "invalid_request_error".into(),
                message: format!("mock: the body is not JSON: {e}"),
                retry_after_secs: None,
                attempts: 1,
            })?;
        let model = request["model"]
            .as_str()
            .unwrap_or("claude-mock")
            .to_string();
        let max_tokens = request["max_tokens"].as_u64().unwrap_or(1024).max(1);
        let system = text_of(&request["system"]);
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .unwrap_or_default();
        let all_input: String = messages.iter().map(|m| text_of(&m["content"])).collect();

        let excerpt: String = last_user.chars().take(160).collect();
        let mut text =
            format!("[offline mock of {model}: no Claude call was made] A reply to: {excerpt}");
        let mut stop_reason = "end_turn";
        if estimate_tokens(&text) > max_tokens {
            text = text.chars().take((max_tokens * 4) as usize).collect();
            stop_reason = "max_tokens";
        }
        let body = json!({
            "id": format!("msg_mock_{:016x}", fxhash(&all_input)),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {
                "input_tokens": estimate_tokens(&system) + estimate_tokens(&all_input) + 8,
                "output_tokens": estimate_tokens(&text),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0
            }
        });
        let raw = Bytes::from(body.to_string());
        let message: Message =
            serde_json::from_value(body).map_err(|e| UpstreamError::InvalidResponse {
                message: e.to_string(),
                attempts: 1,
            })?;
        Ok(UpstreamReply {
            message,
            raw,
            attempts: 1,
        })
    }

    /// The same answer as [`MockUpstream::create_message`], replayed as the API's events.
    async fn stream_message(&self, call: &MessagesCall) -> Result<UpstreamStream, UpstreamError> {
        let reply = self.create_message(call).await?;
        let message: Value =
            serde_json::from_slice(&reply.raw).map_err(|e| UpstreamError::InvalidResponse {
                message: e.to_string(),
                attempts: 1,
            })?;
        let events = sse::replay(&message).unwrap_or_default();
        // One chunk per event, as a real stream arrives.
        let chunks: Vec<Result<Bytes, UpstreamError>> = events
            .split_inclusive("\n\n")
            .map(|event| Ok(Bytes::from(event.to_string())))
            .collect();
        Ok(UpstreamStream {
            chunks: Box::pin(futures_util::stream::iter(chunks)),
            attempts: 1,
        })
    }
}

/// A stable id for the same input (not for security).
fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
