//! The request flow, top to bottom: key → limit + lookup → upstream → store → stats.
//!
//! Routes parse and render; everything between is here. The three edges (store, upstream,
//! prices) are the seams in [`Gateway`].

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cache_key::{self, CacheKey};
use crate::clock;
use crate::config::{Config, RedisFailureMode};
use crate::error::GatewayError;
use crate::generate_request::{CacheMode, GenerateRequest};
use crate::money::Micros;
use crate::pricing::Pricing;
use crate::store::{Admission, Admitted, CachedEntry, DayCounters, Outcome, Store, StoreError};
use crate::upstream::{MessagesCall, Upstream, UpstreamReply, Usage};

/// Day counters are kept this long, for `/v1/stats?days=N`.
pub const STATS_RETENTION_DAYS: u64 = 90;

pub struct Gateway {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub upstream: Arc<dyn Upstream>,
    pub pricing: Pricing,
}

/// Who is calling: the tenant named by the gateway key (or `anonymous`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
}

/// What the `x-cache` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Refresh,
    Bypass,
    /// The store was unavailable; served without cache, limit or budget.
    Skip,
}

impl CacheStatus {
    pub fn as_header(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Refresh => "REFRESH",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Skip => "SKIP",
        }
    }
}

/// One cacheable upstream call, as a route describes it.
pub struct CachedCall<'a> {
    pub caller: &'a Caller,
    pub key: &'a CacheKey,
    pub mode: CacheMode,
    pub ttl_secs: u64,
    pub call: MessagesCall,
    /// The model asked for, priced when the reply names none we know.
    pub model: &'a str,
    /// Which `stop_reason`s make an answer complete enough to store.
    pub storable_stop_reasons: &'a [&'a str],
    /// What to store for a fresh answer (the hit path hands these bytes back).
    pub entry_body: &'a (dyn Fn(&UpstreamReply) -> Bytes + Sync),
}

/// How a cached call ended.
pub enum CallResult {
    Cached {
        entry: CachedEntry,
        status: CacheStatus,
    },
    Fresh {
        reply: UpstreamReply,
        cost: Option<Micros>,
        status: CacheStatus,
        upstream_ms: u64,
    },
}

/// The `/v1/generate` answer before rendering.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub response: String,
    pub cached: bool,
    pub cost: Option<f64>,
    pub saved: f64,
    pub tokens: Tokens,
    pub model: String,
    pub stop_reason: Option<String>,
    pub cache_key: String,
    pub latency_ms: u64,
    #[serde(skip)]
    pub status: CacheStatus,
    #[serde(skip)]
    pub upstream_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

impl From<&Usage> for Tokens {
    fn from(u: &Usage) -> Tokens {
        Tokens {
            input: u.input_tokens,
            output: u.output_tokens,
            cache_creation: u.cache_creation_input_tokens,
            cache_read: u.cache_read_input_tokens,
        }
    }
}

/// What a `/v1/generate` cache entry holds: enough to answer a hit and report what it saved.
#[derive(Debug, Serialize, Deserialize)]
struct StoredAnswer {
    text: String,
    model: String,
    stop_reason: Option<String>,
    tokens: Tokens,
}

/// The inputs that change a `/v1/generate` answer, in a fixed order: the cache key's md5 input.
#[derive(Serialize)]
struct GenerateKeyInputs<'a> {
    kind: &'static str,
    model: &'a str,
    system: Option<&'a str>,
    prompt: &'a str,
    max_tokens: u32,
    temperature: Option<f64>,
}

/// The Messages API body for a `/v1/generate` call.
#[derive(Serialize)]
struct GenerateUpstreamBody<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: [UserMessage<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: &'a str,
}

const COMPLETE_TEXT: &[&str] = &["end_turn", "stop_sequence"];

impl Gateway {
    /// `POST /v1/generate`.
    pub async fn generate(
        &self,
        caller: &Caller,
        request: GenerateRequest,
    ) -> Result<Generated, GatewayError> {
        let started = Instant::now();
        let model = request
            .model
            .as_deref()
            .unwrap_or(&self.config.default_model);
        let max_tokens = request.max_tokens.unwrap_or(self.config.default_max_tokens);
        // -0.0 and 0.0 are the same temperature; make them the same key.
        let temperature = request.temperature.map(|t| if t == 0.0 { 0.0 } else { t });
        let key = CacheKey::new(
            &caller.tenant,
            request.template_id.as_deref(),
            request.contact_id.as_deref(),
            &GenerateKeyInputs {
                kind: "generate",
                model,
                system: request.system.as_deref(),
                prompt: &request.prompt,
                max_tokens,
                temperature,
            },
        );
        let body = serde_json::to_vec(&GenerateUpstreamBody {
            model,
            max_tokens,
            system: request.system.as_deref(),
            messages: [UserMessage {
                role: "user",
                content: &request.prompt,
            }],
            temperature,
        })
        .map_err(|e| GatewayError::Internal(format!("cannot encode the upstream request: {e}")))?;

        let to_entry = |reply: &UpstreamReply| {
            let stored = StoredAnswer {
                text: reply.message.text(),
                model: reply.message.model.clone(),
                stop_reason: reply.message.stop_reason.clone(),
                tokens: Tokens::from(&reply.message.usage),
            };
            Bytes::from(serde_json::to_vec(&stored).unwrap_or_default())
        };
        let result = self
            .cached_call(CachedCall {
                caller,
                key: &key,
                mode: request.cache,
                ttl_secs: request.ttl_secs.unwrap_or(self.config.cache_ttl_secs),
                call: MessagesCall {
                    body: Bytes::from(body),
                    beta: None,
                },
                model,
                storable_stop_reasons: COMPLETE_TEXT,
                entry_body: &to_entry,
            })
            .await?;

        let latency_ms = started.elapsed().as_millis() as u64;
        Ok(match result {
            CallResult::Cached { entry, status } => {
                let stored: StoredAnswer = serde_json::from_slice(&entry.body).map_err(|e| {
                    GatewayError::Internal(format!("a cache entry is unreadable: {e}"))
                })?;
                Generated {
                    response: stored.text,
                    cached: true,
                    cost: Some(0.0),
                    saved: entry.cost.unwrap_or_default().usd(),
                    tokens: stored.tokens,
                    model: stored.model,
                    stop_reason: stored.stop_reason,
                    cache_key: key.as_str().to_string(),
                    latency_ms,
                    status,
                    upstream_ms: None,
                }
            }
            CallResult::Fresh {
                reply,
                cost,
                status,
                upstream_ms,
            } => Generated {
                response: reply.message.text(),
                cached: false,
                cost: cost.map(Micros::usd),
                saved: 0.0,
                tokens: Tokens::from(&reply.message.usage),
                model: reply.message.model,
                stop_reason: reply.message.stop_reason,
                cache_key: key.as_str().to_string(),
                latency_ms,
                status,
                upstream_ms: Some(upstream_ms),
            },
        })
    }

    /// The shared core of every cached route: admit (limit, budget, lookup) in one round trip;
    /// on a miss call upstream, then store and count in a second.
    pub async fn cached_call(&self, c: CachedCall<'_>) -> Result<CallResult, GatewayError> {
        let tenant = c.caller.tenant.as_str();
        let (daily_request_limit, daily_budget) = self.config.limits_for(tenant);
        let stats_key = cache_key::stats_key(tenant, &clock::day_string(clock::utc_today()));
        let stats_ttl_secs = STATS_RETENTION_DAYS * 86_400;
        let lookup_key = (c.mode == CacheMode::Default).then(|| c.key.as_str());

        let admitted = self
            .store
            .admit(&Admission {
                stats_key: &stats_key,
                lookup_key,
                lease: None,
                daily_request_limit,
                daily_budget,
                stats_ttl_secs,
            })
            .await;
        let store_up = match admitted {
            Ok(Admitted::Hit(entry)) => {
                return Ok(CallResult::Cached {
                    entry,
                    status: CacheStatus::Hit,
                });
            }
            Ok(Admitted::RateLimited) => {
                return Err(GatewayError::RateLimited {
                    limit: daily_request_limit,
                    retry_after_secs: clock::secs_to_utc_midnight(),
                });
            }
            Ok(Admitted::BudgetExceeded) => {
                return Err(GatewayError::BudgetExceeded {
                    budget_usd: daily_budget.unwrap_or_default().usd(),
                    retry_after_secs: clock::secs_to_utc_midnight(),
                });
            }
            Ok(Admitted::Miss { .. }) => true,
            Err(e) => {
                self.store_failed("admit", &e)?;
                false
            }
        };

        let upstream_started = Instant::now();
        let result = self.upstream.create_message(&c.call).await;
        let upstream_ms = upstream_started.elapsed().as_millis() as u64;

        let reply = match result {
            Ok(reply) => reply,
            Err(error) => {
                if store_up {
                    let counters = DayCounters {
                        upstream_calls: error.attempts() as u64,
                        errors: 1,
                        ..Default::default()
                    };
                    self.record(&stats_key, stats_ttl_secs, None, counters)
                        .await;
                }
                return Err(GatewayError::from_upstream(
                    error,
                    self.config.upstream_timeout.as_secs(),
                ));
            }
        };

        let usage = &reply.message.usage;
        let cost = self
            .pricing
            .cost(&reply.message.model, usage)
            .or_else(|| self.pricing.cost(c.model, usage));
        if cost.is_none() {
            tracing::warn!(
                model = %reply.message.model,
                "no price is known for this model; cost is null (add it to pricing.json or PRICING_FILE)"
            );
        }
        let status = match (store_up, c.mode) {
            (false, _) => CacheStatus::Skip,
            (true, CacheMode::Default) => CacheStatus::Miss,
            (true, CacheMode::Refresh) => CacheStatus::Refresh,
            (true, CacheMode::Bypass) => CacheStatus::Bypass,
        };
        if store_up {
            let complete = reply
                .message
                .stop_reason
                .as_deref()
                .is_some_and(|r| c.storable_stop_reasons.contains(&r));
            let entry = (complete && c.mode != CacheMode::Bypass).then(|| CachedEntry {
                body: (c.entry_body)(&reply),
                cost,
            });
            let counters = DayCounters {
                upstream_calls: reply.attempts as u64,
                cost_micros: cost.map_or(0, |c| c.0),
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cache_creation_tokens: usage.cache_creation_input_tokens,
                cache_read_tokens: usage.cache_read_input_tokens,
                ..Default::default()
            };
            let stored = entry.as_ref().map(|e| (c.key.as_str(), e, c.ttl_secs));
            self.record(&stats_key, stats_ttl_secs, stored, counters)
                .await;
        }
        Ok(CallResult::Fresh {
            reply,
            cost,
            status,
            upstream_ms,
        })
    }

    /// Ends a miss in the store. A failure here loses a cache entry and some counts, never
    /// the answer the caller is waiting for.
    async fn record(
        &self,
        stats_key: &str,
        stats_ttl_secs: u64,
        store: Option<(&str, &CachedEntry, u64)>,
        counters: DayCounters,
    ) {
        let outcome = Outcome {
            stats_key,
            stats_ttl_secs,
            store,
            release: None,
            counters,
        };
        if let Err(e) = self.store.record(&outcome).await {
            tracing::warn!(error = %e, "could not store the answer or its counters");
        }
    }

    /// Fail open (serve without the store) or closed (503), as configured.
    fn store_failed(&self, during: &str, error: &StoreError) -> Result<(), GatewayError> {
        match self.config.redis_failure_mode {
            RedisFailureMode::Open => {
                tracing::warn!(during, error = %error, "store unavailable; serving without cache, limit or budget");
                Ok(())
            }
            RedisFailureMode::Closed => {
                tracing::error!(during, error = %error, "store unavailable; refusing (REDIS_FAILURE_MODE=closed)");
                Err(GatewayError::StoreUnavailable)
            }
        }
    }
}
