//! `/v1/generate`: a prompt in, Claude's text out, with what it cost and what the cache saved.

use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{CacheStatus, CachedCall, CallResult, Caller, Gateway, Tokens};
use crate::cache_key::CacheKey;
use crate::error::GatewayError;
use crate::generate_request::GenerateRequest;
use crate::money::Micros;
use crate::prompt_cache::{self, PromptCacheOutcome, SystemField};
use crate::routing;
use crate::upstream::{MessagesCall, UpstreamReply};

/// Answers are stored only when complete.
const COMPLETE_TEXT: &[&str] = &["end_turn", "stop_sequence"];

/// A rendered `/v1/generate` answer, plus what the request log wants to know.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The response JSON.
    pub body: Vec<u8>,
    pub status: CacheStatus,
    pub cache_key: String,
    pub model: String,
    pub cost: Option<f64>,
    pub upstream_ms: Option<u64>,
}

/// What a cache entry holds: the response's fields that do not change between hits, already
/// serialized, so a hit appends the rest instead of decoding and re-encoding the answer.
#[derive(Serialize, Deserialize)]
struct StoredAnswer<'a> {
    response: &'a str,
    model: &'a str,
    stop_reason: Option<&'a str>,
    tokens: Tokens,
    prompt_cache: PromptCacheOutcome,
}

/// A fresh answer's response JSON.
#[derive(Serialize)]
struct FreshResponse<'a> {
    #[serde(flatten)]
    answer: StoredAnswer<'a>,
    cached: bool,
    cost: Option<f64>,
    saved: f64,
    cache_key: &'a str,
    latency_ms: u64,
    routed: bool,
}

/// The inputs that change a `/v1/generate` answer, in a fixed order: the cache key's md5 input.
#[derive(Serialize)]
struct KeyInputs<'a> {
    kind: &'static str,
    model: &'a str,
    system: Option<&'a str>,
    prompt: &'a str,
    max_tokens: u32,
    temperature: Option<f64>,
}

/// The Messages API body for a `/v1/generate` call.
#[derive(Serialize)]
struct UpstreamBody<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<SystemField<'a>>,
    messages: [UserMessage<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: &'a str,
}

impl Gateway {
    /// `POST /v1/generate`.
    pub async fn generate(
        &self,
        caller: &Caller,
        request: GenerateRequest,
    ) -> Result<Generated, GatewayError> {
        let started = Instant::now();
        let routed = request.model.as_deref() == Some("auto");
        let model = match request.model.as_deref() {
            Some("auto") => routing::route(&self.config.routing_rules, &request.prompt),
            Some(model) => model,
            None => &self.config.default_model,
        }
        .to_string();
        let prompt_cache_on = self.config.prompt_cache && request.prompt_cache != Some(false);
        let plan = |model: &str| self.plan(caller, &request, model, prompt_cache_on);
        let (key, call, sent_prompt_cache) = plan(&model)?;
        let with_model = |model: &str| plan(model).ok().map(|(key, call, _)| (key, call));
        let to_entry = |reply: &UpstreamReply| {
            let message = &reply.message;
            let text = message.text();
            let stored = StoredAnswer {
                response: &text,
                model: &message.model,
                stop_reason: message.stop_reason.as_deref(),
                tokens: Tokens::from(&message.usage),
                prompt_cache: prompt_cache::outcome(sent_prompt_cache, &message.usage),
            };
            Some(Bytes::from(serde_json::to_vec(&stored).unwrap_or_default()))
        };

        let result = self
            .cached_call(CachedCall {
                caller,
                key: key.clone(),
                mode: request.cache,
                ttl_secs: request.ttl_secs.unwrap_or(self.config.cache_ttl_secs),
                call,
                model: model.clone(),
                storable_stop_reasons: COMPLETE_TEXT,
                entry_body: &to_entry,
                with_model: Some(&with_model),
            })
            .await?;

        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            CallResult::Cached { entry, status } => {
                let saved = entry.cost.unwrap_or_default().usd();
                let body = hit_body(&entry.body, saved, key.as_str(), latency_ms, routed)?;
                Ok(Generated {
                    body,
                    status,
                    cache_key: key.as_str().to_string(),
                    model,
                    cost: Some(0.0),
                    upstream_ms: None,
                })
            }
            CallResult::Fresh {
                fresh,
                cost,
                status,
            } => {
                let message = &fresh.reply.message;
                let text = message.text();
                let cache_key = fresh.key.as_str();
                let response = FreshResponse {
                    answer: StoredAnswer {
                        response: &text,
                        model: &message.model,
                        stop_reason: message.stop_reason.as_deref(),
                        tokens: Tokens::from(&message.usage),
                        prompt_cache: prompt_cache::outcome(sent_prompt_cache, &message.usage),
                    },
                    cached: false,
                    cost: cost.map(Micros::usd),
                    saved: 0.0,
                    cache_key,
                    latency_ms,
                    routed,
                };
                let body = serde_json::to_vec(&response).map_err(|e| {
                    GatewayError::Internal(format!("cannot encode the response: {e}"))
                })?;
                Ok(Generated {
                    body,
                    status,
                    cache_key: cache_key.to_string(),
                    model: message.model.clone(),
                    cost: cost.map(Micros::usd),
                    upstream_ms: Some(fresh.upstream_ms),
                })
            }
        }
    }

    /// The cache key and upstream request for asking `model`, and whether a prompt-cache
    /// breakpoint was sent.
    fn plan(
        &self,
        caller: &Caller,
        request: &GenerateRequest,
        model: &str,
        prompt_cache_on: bool,
    ) -> Result<(CacheKey, MessagesCall, PromptCacheOutcome), GatewayError> {
        let max_tokens = request.max_tokens.unwrap_or(self.config.default_max_tokens);
        // -0.0 and 0.0 are the same temperature; make them the same key.
        let temperature = request.temperature.map(|t| if t == 0.0 { 0.0 } else { t });
        let key = CacheKey::new(
            &caller.tenant,
            request.template_id.as_deref(),
            request.contact_id.as_deref(),
            &KeyInputs {
                kind: "generate",
                model,
                system: request.system.as_deref(),
                prompt: &request.prompt,
                max_tokens,
                temperature,
            },
        );
        let (system, sent) = prompt_cache::system_field(
            request.system.as_deref(),
            prompt_cache_on,
            self.config.prompt_cache_ttl,
            self.pricing.lookup(model),
        );
        let body = serde_json::to_vec(&UpstreamBody {
            model,
            max_tokens,
            system,
            messages: [UserMessage {
                role: "user",
                content: &request.prompt,
            }],
            temperature,
        })
        .map_err(|e| GatewayError::Internal(format!("cannot encode the upstream request: {e}")))?;
        Ok((
            key,
            MessagesCall {
                body: Bytes::from(body),
                beta: None,
            },
            sent,
        ))
    }
}

/// A hit's response: the stored object with the per-request fields appended.
fn hit_body(
    stored: &[u8],
    saved_usd: f64,
    cache_key: &str,
    latency_ms: u64,
    routed: bool,
) -> Result<Vec<u8>, GatewayError> {
    let Some(open_object) = stored
        .strip_suffix(b"}")
        .filter(|s| s.starts_with(b"{") && s.len() > 1)
    else {
        return Err(GatewayError::Internal(
            "a cache entry is not a stored answer; send \"cache\": \"refresh\" to replace it"
                .into(),
        ));
    };
    let mut body = Vec::with_capacity(stored.len() + 160);
    body.extend_from_slice(open_object);
    body.extend_from_slice(br#","cached":true,"cost":0.0,"saved":"#);
    body.extend_from_slice(
        serde_json::to_string(&saved_usd)
            .unwrap_or_default()
            .as_bytes(),
    );
    body.extend_from_slice(br#","cache_key":"#);
    body.extend_from_slice(
        serde_json::to_string(cache_key)
            .unwrap_or_default()
            .as_bytes(),
    );
    body.extend_from_slice(format!(r#","latency_ms":{latency_ms},"routed":{routed}}}"#).as_bytes());
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_body_is_the_stored_answer_plus_the_request_fields() {
        let stored = serde_json::to_vec(&StoredAnswer {
            response: "Hi \"Ada\"",
            model: "claude-sonnet-4-6",
            stop_reason: Some("end_turn"),
            tokens: Tokens::default(),
            prompt_cache: PromptCacheOutcome::Off,
        })
        .unwrap();
        let body = hit_body(&stored, 0.004755, "ai:v1:{t}:abc", 3, false).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["response"], "Hi \"Ada\"");
        assert_eq!(json["cached"], true);
        assert_eq!(json["cost"], 0.0);
        assert_eq!(json["saved"], 0.004755);
        assert_eq!(json["cache_key"], "ai:v1:{t}:abc");
        assert_eq!(json["prompt_cache"], "off");
        assert!(hit_body(b"garbage", 0.0, "k", 0, false).is_err());
    }
}
