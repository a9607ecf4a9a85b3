//! The Claude Messages API behind one small trait: the real one, or an offline mock.

pub mod anthropic;
pub mod mock;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use anthropic::AnthropicUpstream;
pub use mock::MockUpstream;

/// A request body for `POST /v1/messages`, already serialized, plus what travels in headers.
#[derive(Debug, Clone)]
pub struct MessagesCall {
    pub body: Bytes,
    /// Passed through as `anthropic-beta`.
    pub beta: Option<String>,
}

/// What the gateway reads of a Messages API response; the raw bytes are kept alongside.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Message {
    pub model: String,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<String>,
    pub usage: Usage,
}

impl Message {
    /// The text blocks joined: what `/v1/generate` answers with.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|block| block.text.as_deref())
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ContentBlock {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Token counts as Anthropic reports them. `input_tokens` excludes the cache tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default, deserialize_with = "null_as_zero")]
    pub input_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub output_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_read_input_tokens: u64,
    /// The split of `cache_creation_input_tokens` by cache lifetime, when the API gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct CacheCreation {
    #[serde(default, deserialize_with = "null_as_zero")]
    pub ephemeral_5m_input_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub ephemeral_1h_input_tokens: u64,
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// A successful call: the parsed message, the body as it came, and how many attempts it took.
#[derive(Debug, Clone)]
pub struct UpstreamReply {
    pub message: Message,
    pub raw: Bytes,
    pub attempts: u32,
}

/// The body of a streamed call (server-sent events), chunk by chunk as it arrives.
pub type EventBytes = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// A streamed call that has started: the status was a success and the first bytes arrived.
pub struct UpstreamStream {
    pub chunks: EventBytes,
    pub attempts: u32,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UpstreamError {
    /// Anthropic answered with an error status.
    #[error("Claude API error {status} {error_type}: {message}")]
    Api {
        status: u16,
        error_type: String,
        message: String,
        retry_after_secs: Option<u64>,
        attempts: u32,
    },
    #[error("Claude API did not answer in time")]
    Timeout { attempts: u32 },
    #[error("could not reach the Claude API: {message}")]
    Connect { message: String, attempts: u32 },
    #[error("the Claude API answered with something that is not a message: {message}")]
    InvalidResponse { message: String, attempts: u32 },
}

impl UpstreamError {
    pub fn attempts(&self) -> u32 {
        match self {
            UpstreamError::Api { attempts, .. }
            | UpstreamError::Timeout { attempts }
            | UpstreamError::Connect { attempts, .. }
            | UpstreamError::InvalidResponse { attempts, .. } => *attempts,
        }
    }

    /// Overloaded or rate limited: worth trying again later, or on another model.
    pub fn is_overload(&self) -> bool {
        matches!(self, UpstreamError::Api { status, .. } if matches!(status, 429 | 503 | 529))
            && !self.is_spend_limit()
    }

    /// A 429 that says the organisation's spend limit was reached: retrying cannot help.
    pub fn is_spend_limit(&self) -> bool {
        match self {
            UpstreamError::Api {
                status: 429,
                message,
                ..
            } => {
                let m = message.to_ascii_lowercase();
                m.contains("spend") || m.contains("usage limit") || m.contains("credit")
            }
            _ => false,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Api { status, .. } => {
                matches!(status, 429 | 500 | 502 | 503 | 504 | 529) && !self.is_spend_limit()
            }
            UpstreamError::Connect { .. } => true,
            UpstreamError::Timeout { .. } | UpstreamError::InvalidResponse { .. } => false,
        }
    }

    pub(crate) fn with_attempts(mut self, n: u32) -> UpstreamError {
        match &mut self {
            UpstreamError::Api { attempts, .. }
            | UpstreamError::Timeout { attempts }
            | UpstreamError::Connect { attempts, .. }
            | UpstreamError::InvalidResponse { attempts, .. } => *attempts = n,
        }
        self
    }
}

#[async_trait]
pub trait Upstream: Send + Sync {
    /// `"anthropic"` or `"mock"`.
    fn name(&self) -> &'static str;

    /// One Messages API call (with the retries the implementation allows).
    async fn create_message(&self, call: &MessagesCall) -> Result<UpstreamReply, UpstreamError>;

    /// One streamed Messages API call (`"stream": true` in the body). Retries happen only
    /// before the first byte of the body arrives: after that the caller has seen part of it.
    async fn stream_message(&self, call: &MessagesCall) -> Result<UpstreamStream, UpstreamError>;
}

/// What a call can ask of the upstream: a whole message, or a stream of one.
pub trait Ask: Sized + Send {
    fn ask<'a>(
        upstream: &'a dyn Upstream,
        call: &'a MessagesCall,
    ) -> BoxFuture<'a, Result<Self, UpstreamError>>;
}

impl Ask for UpstreamReply {
    fn ask<'a>(
        upstream: &'a dyn Upstream,
        call: &'a MessagesCall,
    ) -> BoxFuture<'a, Result<Self, UpstreamError>> {
        upstream.create_message(call)
    }
}

impl Ask for UpstreamStream {
    fn ask<'a>(
        upstream: &'a dyn Upstream,
        call: &'a MessagesCall,
    ) -> BoxFuture<'a, Result<Self, UpstreamError>> {
        upstream.stream_message(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_tolerates_nulls_and_missing_cache_fields() {
        let usage: Usage = serde_json::from_str(
            r#"{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":null}"#,
        )
        .unwrap();
        assert_eq!(usage.cache_creation_input_tokens, 0);
        assert_eq!(usage.cache_read_input_tokens, 0);
    }

    #[test]
    fn spend_limits_are_neither_retried_nor_overload() {
        let e = UpstreamError::Api {
            status: 429,
            error_type: "rate_limit_error".into(),
            message: "You have reached your specified API usage limits".into(),
            retry_after_secs: None,
            attempts: 1,
        };
        assert!(!e.is_retryable());
        assert!(!e.is_overload());
    }
}
