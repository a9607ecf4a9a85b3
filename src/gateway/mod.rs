//! The request flow, top to bottom: key → limit + lookup → upstream → store → stats.
//!
//! Routes describe a call ([`CachedCall`]) and render its result; everything between is here:
//! [`Gateway::admit`] (one store round trip: limit, budget, lookup, coalescing lease),
//! [`Gateway::call_upstream`] (retries live in the upstream; model fallback here) and
//! [`Gateway::finish`] (one round trip: store, count, release). The three edges — store,
//! upstream, prices — are the seams in [`Gateway`].

mod coalesce;
mod generate;
mod messages;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cache_key::{self, CacheKey};
use crate::clock;
use crate::config::{Config, RedisFailureMode};
use crate::error::GatewayError;
use crate::generate_request::CacheMode;
use crate::money::Micros;
use crate::pricing::Pricing;
use crate::store::{
    Admission, Admitted, CachedEntry, DayCounters, LeaseRequest, Outcome, Store, StoreError,
};
use crate::upstream::{Ask, MessagesCall, Upstream, UpstreamError, UpstreamReply, Usage};

pub use generate::Generated;
pub use messages::{MessagesBody, MessagesReply};

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
    /// An identical request was already calling upstream; this one waited for its answer.
    Coalesced,
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
            CacheStatus::Coalesced => "COALESCED",
            CacheStatus::Skip => "SKIP",
        }
    }
}

/// Rebuilds a call for another model: its cache key and request (for `FALLBACK_MODEL`).
pub type WithModel<'a> = dyn Fn(&str) -> Option<(CacheKey, MessagesCall)> + Sync + 'a;

/// One cacheable upstream call, as a route describes it.
pub struct CachedCall<'a> {
    pub caller: &'a Caller,
    pub key: CacheKey,
    pub mode: CacheMode,
    pub ttl_secs: u64,
    pub call: MessagesCall,
    /// The model asked for (after routing), priced when the reply names none we know.
    pub model: String,
    /// Which `stop_reason`s make an answer complete enough to store.
    pub storable_stop_reasons: &'a [&'a str],
    /// What to store for a fresh answer (a hit hands these bytes back); `None` stores nothing.
    pub entry_body: &'a (dyn Fn(&UpstreamReply) -> Option<Bytes> + Sync),
    pub with_model: Option<&'a WithModel<'a>>,
}

/// A request admitted past the limit and lookup that must go upstream, then [`Gateway::finish`].
pub struct Ticket {
    stats_key: String,
    /// Held while this request is the one calling upstream for its key.
    lease: Option<OwnedLease>,
    store_up: bool,
    /// Admitted as a follower, then took over from a leader that failed: it counts as the miss.
    took_over: bool,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct OwnedLease {
    key: String,
    token: String,
}

impl OwnedLease {
    fn request(&self) -> LeaseRequest<'_> {
        LeaseRequest {
            key: &self.key,
            token: &self.token,
            ttl: coalesce::LEASE_TTL,
        }
    }
}

/// The outcome of [`Gateway::admit`].
pub enum Admit {
    /// Answered without calling upstream.
    Answered(CallResult),
    GoUpstream(Ticket),
}

/// A fresh upstream answer and what it was asked under.
pub struct Fresh {
    pub reply: UpstreamReply,
    /// The key it is stored under: the fallback model's when the fallback answered.
    pub key: CacheKey,
    pub upstream_ms: u64,
    pub fell_back: bool,
}

/// An upstream answer (a message or a started stream) and what it was asked under.
pub struct Asked<T> {
    pub answer: T,
    /// The key it is stored under: the fallback model's when the fallback answered.
    pub key: CacheKey,
    pub started: Instant,
    pub fell_back: bool,
    /// Attempts spent on the requested model before the fallback answered (they count too).
    pub failed_attempts: u32,
}

/// How a cached call ended.
pub enum CallResult {
    Cached {
        entry: CachedEntry,
        status: CacheStatus,
    },
    Fresh {
        fresh: Box<Fresh>,
        cost: Option<Micros>,
        status: CacheStatus,
    },
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

impl Gateway {
    /// Admit, call upstream, finish: the whole flow for a route that needs no streaming.
    pub async fn cached_call(&self, c: CachedCall<'_>) -> Result<CallResult, GatewayError> {
        let ticket = match self.admit(&c).await? {
            Admit::Answered(result) => return Ok(result),
            Admit::GoUpstream(ticket) => ticket,
        };
        let fresh = self
            .hold_lease(&ticket, self.call_upstream(&c, &ticket))
            .await;
        self.finish(&c, ticket, fresh).await
    }

    /// The hit path in one store round trip: daily limit, lookup, budget, coalescing lease.
    pub async fn admit(&self, c: &CachedCall<'_>) -> Result<Admit, GatewayError> {
        let deadline = Instant::now() + self.config.request_deadline;
        let tenant = c.caller.tenant.as_str();
        let (daily_request_limit, daily_budget) = self.config.limits_for(tenant);
        let stats_key = cache_key::stats_key(tenant, &clock::day_string(clock::utc_today()));
        // Only plain lookups coalesce: refresh and bypass ask for a call of their own.
        let coalescing = c.mode == CacheMode::Default;
        let lease = coalescing.then(|| OwnedLease {
            key: c.key.lease_key(),
            token: format!("{:016x}", fastrand::u64(..)),
        });
        let admitted = self
            .store
            .admit(&Admission {
                stats_key: &stats_key,
                lookup_key: coalescing.then(|| c.key.as_str()),
                lease: lease.as_ref().map(OwnedLease::request),
                daily_request_limit,
                daily_budget,
                stats_ttl_secs: STATS_TTL_SECS,
            })
            .await;
        let mut ticket = Ticket {
            stats_key,
            lease: None,
            store_up: true,
            took_over: false,
            deadline,
        };
        match admitted {
            Ok(Admitted::Hit(entry)) => Ok(Admit::Answered(CallResult::Cached {
                entry,
                status: CacheStatus::Hit,
            })),
            Ok(Admitted::RateLimited) => Err(GatewayError::RateLimited {
                limit: daily_request_limit,
                retry_after_secs: clock::secs_to_utc_midnight(),
            }),
            Ok(Admitted::BudgetExceeded) => Err(GatewayError::BudgetExceeded {
                budget_usd: daily_budget.unwrap_or_default().usd(),
                retry_after_secs: clock::secs_to_utc_midnight(),
            }),
            Ok(Admitted::Miss { leader: true }) => {
                ticket.lease = lease;
                Ok(Admit::GoUpstream(ticket))
            }
            Ok(Admitted::Miss { leader: false }) => match lease {
                Some(lease) => self.follow(c, ticket, lease).await,
                // A store that reports a leader for a call without a lease: go on alone.
                None => Ok(Admit::GoUpstream(ticket)),
            },
            Err(e) => {
                self.store_failed("admit", &e)?;
                ticket.store_up = false;
                Ok(Admit::GoUpstream(ticket))
            }
        }
    }

    /// Calls upstream for a whole message (see [`Gateway::ask_upstream`]).
    pub async fn call_upstream(
        &self,
        c: &CachedCall<'_>,
        ticket: &Ticket,
    ) -> Result<Fresh, (UpstreamError, u32)> {
        let asked = self.ask_upstream::<UpstreamReply>(c, ticket).await?;
        let mut reply = asked.answer;
        reply.attempts += asked.failed_attempts;
        Ok(Fresh {
            reply,
            key: asked.key,
            upstream_ms: asked.started.elapsed().as_millis() as u64,
            fell_back: asked.fell_back,
        })
    }

    /// Asks upstream; when the model stays overloaded and `FALLBACK_MODEL` is set, asks that
    /// model instead (its answer is keyed under the fallback model, never the one asked for).
    pub async fn ask_upstream<T: Ask>(
        &self,
        c: &CachedCall<'_>,
        ticket: &Ticket,
    ) -> Result<Asked<T>, (UpstreamError, u32)> {
        let started = Instant::now();
        let remaining = ticket.deadline.saturating_duration_since(started);
        let first = tokio::time::timeout(remaining, T::ask(self.upstream.as_ref(), &c.call))
            .await
            .unwrap_or(Err(UpstreamError::Timeout { attempts: 1 }));
        let error = match first {
            Ok(answer) => {
                return Ok(Asked {
                    answer,
                    key: c.key.clone(),
                    started,
                    fell_back: false,
                    failed_attempts: 0,
                });
            }
            Err(error) => error,
        };
        let fallback = self
            .config
            .fallback_model
            .as_deref()
            .filter(|fallback| error.is_overload() && *fallback != c.model)
            .and_then(|fallback| c.with_model.and_then(|rebuild| rebuild(fallback)));
        let Some((key, call)) = fallback else {
            let attempts = error.attempts();
            return Err((error, attempts));
        };
        tracing::warn!(model = %c.model, error = %error, "model overloaded; asking FALLBACK_MODEL");
        let remaining = ticket.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, T::ask(self.upstream.as_ref(), &call)).await {
            Ok(Ok(answer)) => Ok(Asked {
                answer,
                key,
                started,
                fell_back: true,
                failed_attempts: error.attempts(),
            }),
            Ok(Err(second)) => {
                let attempts = error.attempts() + second.attempts();
                Err((second, attempts))
            }
            Err(_) => Err((UpstreamError::Timeout { attempts: 1 }, error.attempts() + 1)),
        }
    }

    /// The end of a request that went upstream, in one store round trip: store a complete
    /// answer, add the day's counters, release the lease. Nothing from a failed call is stored.
    pub async fn finish(
        &self,
        c: &CachedCall<'_>,
        ticket: Ticket,
        fresh: Result<Fresh, (UpstreamError, u32)>,
    ) -> Result<CallResult, GatewayError> {
        let mut counters = DayCounters {
            misses: ticket.took_over as u64,
            ..Default::default()
        };
        let fresh = match fresh {
            Ok(fresh) => fresh,
            Err((error, attempts)) => return Err(self.fail(ticket, error, attempts).await),
        };
        let release = ticket.lease.as_ref().map(OwnedLease::request);
        let message = &fresh.reply.message;
        let cost = self
            .pricing
            .cost(&message.model, &message.usage)
            .or_else(|| self.pricing.cost(&c.model, &message.usage));
        if cost.is_none() {
            tracing::warn!(
                model = %message.model,
                "no price is known for this model; cost is null (add it to pricing.json or PRICING_FILE)"
            );
        }
        let status = match (ticket.store_up, c.mode) {
            (false, _) => CacheStatus::Skip,
            (true, CacheMode::Default) => CacheStatus::Miss,
            (true, CacheMode::Refresh) => CacheStatus::Refresh,
            (true, CacheMode::Bypass) => CacheStatus::Bypass,
        };
        if ticket.store_up {
            let complete = message
                .stop_reason
                .as_deref()
                .is_some_and(|r| c.storable_stop_reasons.contains(&r));
            let entry = (complete && c.mode != CacheMode::Bypass)
                .then(|| (c.entry_body)(&fresh.reply))
                .flatten()
                .map(|body| CachedEntry { body, cost });
            let usage = &message.usage;
            counters.upstream_calls = fresh.reply.attempts as u64;
            counters.cost_micros = cost.map_or(0, |c| c.0);
            counters.input_tokens = usage.input_tokens;
            counters.output_tokens = usage.output_tokens;
            counters.cache_creation_tokens = usage.cache_creation_input_tokens;
            counters.cache_read_tokens = usage.cache_read_input_tokens;
            let stored = entry.as_ref().map(|e| (fresh.key.as_str(), e, c.ttl_secs));
            self.record(&ticket.stats_key, stored, release, counters)
                .await;
        }
        Ok(CallResult::Fresh {
            fresh: Box::new(fresh),
            cost,
            status,
        })
    }

    /// The end of a request whose upstream call failed: count the error, release the lease,
    /// store nothing.
    pub async fn fail(&self, ticket: Ticket, error: UpstreamError, attempts: u32) -> GatewayError {
        let counters = DayCounters {
            misses: ticket.took_over as u64,
            upstream_calls: attempts as u64,
            errors: 1,
            ..Default::default()
        };
        if ticket.store_up {
            let release = ticket.lease.as_ref().map(OwnedLease::request);
            self.record(&ticket.stats_key, None, release, counters)
                .await;
        }
        GatewayError::from_upstream(error, self.config.upstream_timeout.as_secs())
    }

    /// Ends a request in the store. A failure here loses a cache entry and some counts, never
    /// the answer the caller is waiting for.
    async fn record(
        &self,
        stats_key: &str,
        store: Option<(&str, &CachedEntry, u64)>,
        release: Option<LeaseRequest<'_>>,
        counters: DayCounters,
    ) {
        let outcome = Outcome {
            stats_key,
            stats_ttl_secs: STATS_TTL_SECS,
            store,
            release,
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

const STATS_TTL_SECS: u64 = STATS_RETENTION_DAYS * 86_400;
