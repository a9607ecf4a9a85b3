//! The real Messages API over reqwest, with bounded retries.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::{Message, MessagesCall, Upstream, UpstreamError, UpstreamReply, UpstreamStream};

/// The retry policy: at most `max_retries` more attempts, all inside `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub attempt_timeout: Duration,
    pub deadline: Duration,
    /// The first backoff ceiling; it doubles per retry (full jitter below it).
    pub base_delay: Duration,
}

pub struct AnthropicUpstream {
    client: reqwest::Client,
    messages_url: String,
    headers: HeaderMap,
    retry: RetryPolicy,
}

impl AnthropicUpstream {
    pub fn new(
        base_url: &str,
        api_key: &SecretString,
        retry: RetryPolicy,
    ) -> Result<AnthropicUpstream, String> {
        let mut key = HeaderValue::from_str(api_key.expose_secret())
            .map_err(|_| "ANTHROPIC_API_KEY holds characters a header cannot carry".to_string())?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", key);
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("ai-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(AnthropicUpstream {
            client,
            messages_url: format!("{base_url}/v1/messages"),
            headers,
            retry,
        })
    }

    fn request(&self, call: &MessagesCall) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(&self.messages_url)
            .headers(self.headers.clone())
            .body(call.body.clone());
        if let Some(beta) = &call.beta {
            request = request.header("anthropic-beta", beta);
        }
        request
    }

    async fn attempt(
        &self,
        call: &MessagesCall,
        timeout: Duration,
    ) -> Result<UpstreamReply, UpstreamError> {
        let response = self
            .request(call)
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after_secs = retry_after_secs(&response);
        let raw = response.bytes().await.map_err(transport_error)?;
        if (200..300).contains(&status) {
            let message: Message =
                serde_json::from_slice(&raw).map_err(|e| UpstreamError::InvalidResponse {
                    message: e.to_string(),
                    attempts: 1,
                })?;
            return Ok(UpstreamReply {
                message,
                raw,
                attempts: 1,
            });
        }
        Err(api_error(status, &raw, retry_after_secs))
    }

    /// Opens a streamed call and waits for the first bytes of its body. `timeout` bounds the
    /// wait for both; the rest of the body has no overall limit (the caller reads it with an
    /// idle timeout), since a long answer may stream for minutes.
    async fn open_stream(
        &self,
        call: &MessagesCall,
        timeout: Duration,
    ) -> Result<UpstreamStream, UpstreamError> {
        let started = Instant::now();
        let request = self.request(call).header("accept", "text/event-stream");
        let response = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| UpstreamError::Timeout { attempts: 1 })?
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let remaining = timeout.saturating_sub(started.elapsed());
        if !(200..300).contains(&status) {
            let retry_after_secs = retry_after_secs(&response);
            let raw = tokio::time::timeout(remaining, response.bytes())
                .await
                .map_err(|_| UpstreamError::Timeout { attempts: 1 })?
                .map_err(transport_error)?;
            return Err(api_error(status, &raw, retry_after_secs));
        }
        let mut chunks = response.bytes_stream();
        let first = match tokio::time::timeout(remaining, chunks.next()).await {
            Err(_) => return Err(UpstreamError::Timeout { attempts: 1 }),
            Ok(None) => {
                return Err(UpstreamError::Connect {
                    message: "the stream closed before its first event".into(),
                    attempts: 1,
                });
            }
            Ok(Some(chunk)) => chunk.map_err(transport_error)?,
        };
        let rest = chunks.map(|chunk| chunk.map_err(transport_error));
        Ok(UpstreamStream {
            chunks: Box::pin(futures_util::stream::once(async { Ok(first) }).chain(rest)),
            attempts: 1,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the deadline is near; returns the
    /// answer and the number of attempts made.
    async fn with_retries<T, F, Fut>(&self, attempt: F) -> Result<(T, u32), UpstreamError>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let deadline = Instant::now() + self.retry.deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(UpstreamError::Timeout {
                    attempts: attempts - 1,
                });
            }
            let timeout = self.retry.attempt_timeout.min(remaining);
            let error = match attempt(timeout).await {
                Ok(answer) => return Ok((answer, attempts)),
                Err(e) => e.with_attempts(attempts),
            };
            if !error.is_retryable() || attempts > self.retry.max_retries {
                return Err(error);
            }
            let delay = self.backoff(attempts, &error);
            // Waiting past the deadline only to fail later helps nobody: answer now.
            if Instant::now() + delay + Duration::from_millis(100) >= deadline {
                return Err(error);
            }
            tracing::warn!(
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "retrying the Claude API"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// How long to wait before retry number `retry` (1-based): `retry-after` when the API gave
    /// one, else full jitter under an exponential ceiling.
    fn backoff(&self, retry: u32, error: &UpstreamError) -> Duration {
        if let UpstreamError::Api {
            retry_after_secs: Some(secs),
            ..
        } = error
        {
            return Duration::from_secs(*secs);
        }
        let ceiling = self
            .retry
            .base_delay
            .saturating_mul(1 << (retry - 1).min(6));
        ceiling.mul_f64(fastrand::f64())
    }
}

fn transport_error(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout { attempts: 1 }
    } else {
        // Without the URL: it is ours, and nothing the caller can act on.
        UpstreamError::Connect {
            message: e.without_url().to_string(),
            attempts: 1,
        }
    }
}

fn retry_after_secs(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.ceil() as u64)
}

fn api_error(status: u16, raw: &[u8], retry_after_secs: Option<u64>) -> UpstreamError {
    let (error_type, message) = parse_error_body(raw, status);
    UpstreamError::Api {
        status,
        error_type,
        message,
        retry_after_secs,
        attempts: 1,
    }
}

/// Anthropic's error body is `{"type":"error","error":{"type":..,"message":..}}`; anything else
/// (a proxy's HTML page, say) is summarised by its status.
fn parse_error_body(raw: &[u8], status: u16) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Body>(raw) {
        Ok(body) => (body.error.kind, body.error.message),
        Err(_) => (
            "api_error".to_string(),
            format!("HTTP {status} with a body that is not an Anthropic error"),
        ),
    }
}

#[async_trait]
impl Upstream for AnthropicUpstream {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    async fn create_message(&self, call: &MessagesCall) -> Result<UpstreamReply, UpstreamError> {
        let (mut reply, attempts) = self
            .with_retries(|timeout| self.attempt(call, timeout))
            .await?;
        reply.attempts = attempts;
        Ok(reply)
    }

    async fn stream_message(&self, call: &MessagesCall) -> Result<UpstreamStream, UpstreamError> {
        let (mut stream, attempts) = self
            .with_retries(|timeout| self.open_stream(call, timeout))
            .await?;
        stream.attempts = attempts;
        Ok(stream)
    }
}
