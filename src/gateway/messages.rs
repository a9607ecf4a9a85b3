//! `/v1/messages`: Anthropic's Messages API as it is, behind the same cache, limits, budget,
//! coalescing and cost as every route.
//!
//! A whole answer goes through [`Gateway::cached_call`]. A streamed miss cannot: its events go
//! to the caller as they arrive. So it is admitted, opened upstream under the lease, and then
//! relayed by a task of its own that assembles the final message on the way and, when the
//! stream ends, finishes the call exactly as a whole one finishes (cost, counters, storage,
//! lease) — even if the caller has left by then.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Admit, Asked, CacheStatus, CachedCall, CallResult, Caller, Fresh, Gateway, Ticket};
use crate::cache_key::CacheKey;
use crate::error::GatewayError;
use crate::generate_request::CacheMode;
use crate::messages_request::{Canonical, MessagesRequest};
use crate::money::Micros;
use crate::sse::{self, Assembled, Assembler, EventParser};
use crate::store::CachedEntry;
use crate::upstream::{
    EventBytes, Message, MessagesCall, UpstreamError, UpstreamReply, UpstreamStream,
};

/// Answers stored: complete ones. A finished tool call is as deterministic an answer to the
/// same request as text; `max_tokens`, `pause_turn` and `refusal` are not.
const COMPLETE_MESSAGE: &[&str] = &["end_turn", "stop_sequence", "tool_use"];

/// A `/v1/messages` answer, plus what the request log wants to know.
pub struct MessagesReply {
    pub body: MessagesBody,
    pub status: CacheStatus,
    pub cache_key: String,
    /// The model that answered (the one asked for, on a streamed miss).
    pub model: String,
    /// Zero on a hit. `None` when no price is known, or not yet known: a streamed miss costs
    /// what its last event says, and that cost is logged when the stream ends.
    pub cost: Option<Micros>,
    pub upstream_ms: Option<u64>,
}

pub enum MessagesBody {
    /// A Message object: Claude's bytes as they came, or the stored ones.
    Json(Bytes),
    /// A whole event sequence: a hit, replayed.
    Events(Bytes),
    /// Claude's events, relayed as they arrive.
    Relay(Pin<Box<dyn Stream<Item = Bytes> + Send>>),
}

/// The cache key's md5 input: the canonical request, and the beta features it asks for.
#[derive(Serialize)]
struct KeyInputs<'a> {
    kind: &'static str,
    beta: Option<&'a str>,
    request: Canonical<'a>,
}

fn key_for(caller: &Caller, request: &MessagesRequest, beta: Option<&str>) -> CacheKey {
    CacheKey::new(
        &caller.tenant,
        None,
        None,
        &KeyInputs {
            kind: "messages",
            beta,
            request: request.canonical(),
        },
    )
}

/// What a relay owns to finish its call after the handler has returned.
struct Relayed {
    caller: Caller,
    call: MessagesCall,
    model: String,
    ttl_secs: u64,
}

impl Gateway {
    /// `POST /v1/messages`.
    pub async fn messages(
        self: &Arc<Self>,
        caller: &Caller,
        request: MessagesRequest,
        beta: Option<String>,
    ) -> Result<MessagesReply, GatewayError> {
        let key = key_for(caller, &request, beta.as_deref());
        let with_model = |model: &str| {
            let other = request.with_model(model);
            let key = key_for(caller, &other, beta.as_deref());
            let call = MessagesCall {
                body: other.raw,
                beta: beta.clone(),
            };
            Some((key, call))
        };
        let whole = |reply: &UpstreamReply| Some(reply.raw.clone());
        let c = CachedCall {
            caller,
            key: key.clone(),
            mode: CacheMode::Default,
            ttl_secs: self.config.cache_ttl_secs,
            call: MessagesCall {
                body: request.raw.clone(),
                beta: beta.clone(),
            },
            model: request.model.clone(),
            storable_stop_reasons: COMPLETE_MESSAGE,
            entry_body: &whole,
            with_model: Some(&with_model),
        };
        if !request.stream {
            let result = self.cached_call(c).await?;
            return reply(result, &key, &request.model, false);
        }

        let ticket = match self.admit(&c).await? {
            Admit::Answered(result) => return reply(result, &key, &request.model, true),
            Admit::GoUpstream(ticket) => ticket,
        };
        let opened = self
            .hold_lease(&ticket, self.ask_upstream::<UpstreamStream>(&c, &ticket))
            .await;
        let asked = match opened {
            Ok(asked) => asked,
            Err((error, attempts)) => return Err(self.fail(ticket, error, attempts).await),
        };
        let cache_key = asked.key.as_str().to_string();
        let status = if ticket.store_up {
            CacheStatus::Miss
        } else {
            CacheStatus::Skip
        };
        let (to_caller, events) = mpsc::unbounded_channel::<Bytes>();
        let relayed = Relayed {
            caller: caller.clone(),
            call: c.call.clone(),
            model: c.model.clone(),
            ttl_secs: c.ttl_secs,
        };
        // Spawned, so that the call finishes (cost, counters, storage, lease) even when the
        // caller disconnects and its body is dropped.
        tokio::spawn(Arc::clone(self).relay(relayed, ticket, asked, to_caller));
        let events = futures_util::stream::unfold(events, |mut events| async move {
            events.recv().await.map(|chunk| (chunk, events))
        });
        Ok(MessagesReply {
            body: MessagesBody::Relay(Box::pin(events)),
            status,
            cache_key,
            model: request.model,
            cost: None,
            upstream_ms: None,
        })
    }

    /// Relays a started stream to the caller while assembling its message, then finishes the
    /// call. The caller's body ends only after the answer is stored, so a request sent right
    /// after this one ends finds it (and under Lambda nothing runs after the response).
    async fn relay(
        self: Arc<Self>,
        relayed: Relayed,
        ticket: Ticket,
        asked: Asked<UpstreamStream>,
        to_caller: mpsc::UnboundedSender<Bytes>,
    ) {
        let Asked {
            answer: stream,
            key,
            started,
            fell_back,
            failed_attempts,
        } = asked;
        let attempts = stream.attempts + failed_attempts;
        let idle = self.config.upstream_timeout;
        let assembled = self
            .hold_lease(&ticket, pump(stream.chunks, idle, &to_caller))
            .await;
        let storable = assembled.as_ref().is_ok_and(|a| a.storable);
        let fresh = assembled
            .and_then(|assembled| {
                let raw = Bytes::from(assembled.message.to_string());
                let message: Message = serde_json::from_value(assembled.message).map_err(|e| {
                    UpstreamError::InvalidResponse {
                        message: format!("the streamed message is not a message: {e}"),
                        attempts,
                    }
                })?;
                Ok(Fresh {
                    reply: UpstreamReply {
                        message,
                        raw,
                        attempts,
                    },
                    key: key.clone(),
                    upstream_ms: started.elapsed().as_millis() as u64,
                    fell_back,
                })
            })
            .map_err(|error| (error, attempts));
        let entry_body = |reply: &UpstreamReply| storable.then(|| reply.raw.clone());
        let c = CachedCall {
            caller: &relayed.caller,
            key: key.clone(),
            mode: CacheMode::Default,
            ttl_secs: relayed.ttl_secs,
            call: relayed.call,
            model: relayed.model,
            storable_stop_reasons: COMPLETE_MESSAGE,
            entry_body: &entry_body,
            with_model: None,
        };
        match self.finish(&c, ticket, fresh).await {
            Ok(CallResult::Fresh { fresh, cost, .. }) => {
                let message = &fresh.reply.message;
                tracing::info!(
                    tenant = %relayed.caller.tenant,
                    cache_key = key.as_str(),
                    model = %message.model,
                    stop_reason = message.stop_reason.as_deref(),
                    output_tokens = message.usage.output_tokens,
                    cost_usd = cost.map(Micros::usd),
                    upstream_ms = fresh.upstream_ms,
                    "stream finished"
                );
            }
            Ok(CallResult::Cached { .. }) => {}
            Err(error) => tracing::warn!(
                tenant = %relayed.caller.tenant,
                cache_key = key.as_str(),
                error = %error,
                "stream failed; nothing was stored"
            ),
        }
        drop(to_caller);
    }
}

/// Reads the upstream's events to the end, handing each chunk to the caller as it comes (while
/// the caller is there) and to the assembler. A stream that breaks without saying why gets an
/// `error` event, so the caller's SDK raises instead of returning half a message.
async fn pump(
    mut chunks: EventBytes,
    idle: Duration,
    to_caller: &mpsc::UnboundedSender<Bytes>,
) -> Result<Assembled, UpstreamError> {
    let mut parser = EventParser::default();
    let mut assembler = Assembler::default();
    let mut caller_here = true;
    let ended = loop {
        let chunk = match tokio::time::timeout(idle, chunks.next()).await {
            Err(_) => break Err(UpstreamError::Timeout { attempts: 1 }),
            Ok(None) => break Ok(()),
            Ok(Some(Err(error))) => break Err(error),
            Ok(Some(Ok(chunk))) => chunk,
        };
        for event in parser.push(&chunk) {
            assembler.push(&event);
        }
        if caller_here && to_caller.send(chunk).is_err() {
            caller_here = false;
            tracing::info!("the caller left mid-stream; reading on to store the answer");
        }
    };
    let relayed_error = assembler.saw_error();
    let assembled = ended.and_then(|()| assembler.finish());
    if let Err(error) = &assembled
        && !relayed_error
    {
        let error_type = match error {
            UpstreamError::Timeout { .. } => "timeout_error",
            _ => "api_error",
        };
        let message = format!("The stream from Claude broke off: {error}");
        let _ = to_caller.send(Bytes::from(sse::error_frame(error_type, &message)));
    }
    assembled
}

/// Renders a call's result; `events` replays a stored answer as a stream.
fn reply(
    result: CallResult,
    key: &CacheKey,
    model: &str,
    events: bool,
) -> Result<MessagesReply, GatewayError> {
    match result {
        CallResult::Cached { entry, status } => Ok(MessagesReply {
            body: stored_body(entry, events)?,
            status,
            cache_key: key.as_str().to_string(),
            model: model.to_string(),
            cost: Some(Micros(0)),
            upstream_ms: None,
        }),
        CallResult::Fresh {
            fresh,
            cost,
            status,
        } => Ok(MessagesReply {
            cache_key: fresh.key.as_str().to_string(),
            model: fresh.reply.message.model.clone(),
            upstream_ms: Some(fresh.upstream_ms),
            body: if events {
                stored_body(
                    CachedEntry {
                        body: fresh.reply.raw,
                        cost,
                    },
                    true,
                )?
            } else {
                MessagesBody::Json(fresh.reply.raw)
            },
            cost,
            status,
        }),
    }
}

fn stored_body(entry: CachedEntry, events: bool) -> Result<MessagesBody, GatewayError> {
    if !events {
        return Ok(MessagesBody::Json(entry.body));
    }
    serde_json::from_slice(&entry.body)
        .ok()
        .and_then(|message| sse::replay(&message))
        .map(|replayed| MessagesBody::Events(Bytes::from(replayed)))
        .ok_or_else(|| GatewayError::Internal("a cache entry is not a stored message".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Usage;

    fn key(body: &str, beta: Option<&str>) -> CacheKey {
        let caller = Caller { tenant: "t".into() };
        let request = MessagesRequest::parse(Bytes::from(body.to_string())).unwrap();
        key_for(&caller, &request, beta)
    }

    #[test]
    fn beta_features_are_part_of_the_key_and_key_order_is_not() {
        let a = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let b = r#"{"messages":[{"content":"hi","role":"user"}],"stream":true,"max_tokens":5,"model":"m"}"#;
        assert_eq!(key(a, None), key(b, None));
        assert_ne!(key(a, None), key(a, Some("context-1m-2025-08-07")));
    }

    #[test]
    fn usage_of_a_stored_message_survives_the_replay() {
        let stored = serde_json::json!({
            "id": "m", "type": "message", "role": "assistant", "model": "x",
            "content": [{"type": "text", "text": "Hi"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 2}
        });
        let entry = CachedEntry {
            body: Bytes::from(stored.to_string()),
            cost: None,
        };
        let MessagesBody::Events(events) = stored_body(entry, true).unwrap() else {
            panic!("not events");
        };
        let mut assembler = Assembler::default();
        for event in EventParser::default().push(&events) {
            assembler.push(&event);
        }
        let message = assembler.finish().unwrap().message;
        let usage: Usage = serde_json::from_value(message["usage"].clone()).unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (3, 2));
        assert_eq!(message, stored);
    }
}
