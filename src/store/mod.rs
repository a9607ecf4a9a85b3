//! Where answers, daily counters and coalescing leases live: Redis, or memory for one process.
//!
//! The trait is shaped around round trips, not commands: [`Store::admit`] is the whole hit path
//! (limit, budget, lookup and counters) in one call, [`Store::record`] the end of a miss (store the
//! answer, add the counters, release the lease) in another.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::money::Micros;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Everything [`Store::admit`] decides in one round trip.
#[derive(Debug)]
pub struct Admission<'a> {
    pub stats_key: &'a str,
    /// The cache entry to look up; `None` when the request refreshes or bypasses the cache.
    pub lookup_key: Option<&'a str>,
    /// Taken (SET NX) on a miss so that identical concurrent misses make one upstream call.
    pub lease: Option<LeaseRequest<'a>>,
    /// 0 = no limit.
    pub daily_request_limit: u64,
    pub daily_budget: Option<Micros>,
    pub stats_ttl_secs: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    pub key: &'a str,
    pub token: &'a str,
    pub ttl: Duration,
}

#[derive(Debug, PartialEq)]
pub enum Admitted {
    /// A stored answer; the hit is already counted.
    Hit(CachedEntry),
    /// Not cached; the request is counted as a miss. `leader` is false when another request
    /// holds the lease for the same key (it is calling upstream right now).
    Miss { leader: bool },
    /// Today's request limit is reached; counted as rate limited.
    RateLimited,
    /// Today's spend reached the budget and the answer is not cached; counted as rate limited.
    BudgetExceeded,
}

/// A stored answer and what the call that produced it cost (what a hit saves).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedEntry {
    pub body: Bytes,
    pub cost: Option<Micros>,
}

/// What a coalescing follower finds.
#[derive(Debug, PartialEq)]
pub enum Poll {
    Ready(CachedEntry),
    /// The leader is still at work.
    Pending,
    /// No answer and no lease: the leader failed, or its answer could not be stored.
    Abandoned,
}

/// The end of a request that went upstream (or tried to).
#[derive(Debug)]
pub struct Outcome<'a> {
    pub stats_key: &'a str,
    pub stats_ttl_secs: u64,
    /// The entry to store, with its key and lifetime.
    pub store: Option<(&'a str, &'a CachedEntry, u64)>,
    /// The lease to release (only if it still holds this token).
    pub release: Option<LeaseRequest<'a>>,
    pub counters: DayCounters,
}

/// One tenant's counters for one UTC day. The same names are the fields of the Redis hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounters {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub upstream_calls: u64,
    pub errors: u64,
    pub rate_limited: u64,
    pub cost_micros: u64,
    pub saved_micros: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cache_read_tokens: u64,
}

impl DayCounters {
    /// Field names and values, in the order the Redis hash and the memory store use.
    pub fn fields(&self) -> [(&'static str, u64); 13] {
        [
            ("requests", self.requests),
            ("hits", self.hits),
            ("misses", self.misses),
            ("coalesced", self.coalesced),
            ("upstream_calls", self.upstream_calls),
            ("errors", self.errors),
            ("rate_limited", self.rate_limited),
            ("cost_micros", self.cost_micros),
            ("saved_micros", self.saved_micros),
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cache_creation_tokens", self.cache_creation_tokens),
            ("cache_read_tokens", self.cache_read_tokens),
        ]
    }

    /// Sets a field by its name; unknown names are ignored (older or newer gateways).
    pub fn set(&mut self, name: &str, value: u64) {
        let slot = match name {
            "requests" => &mut self.requests,
            "hits" => &mut self.hits,
            "misses" => &mut self.misses,
            "coalesced" => &mut self.coalesced,
            "upstream_calls" => &mut self.upstream_calls,
            "errors" => &mut self.errors,
            "rate_limited" => &mut self.rate_limited,
            "cost_micros" => &mut self.cost_micros,
            "saved_micros" => &mut self.saved_micros,
            "input_tokens" => &mut self.input_tokens,
            "output_tokens" => &mut self.output_tokens,
            "cache_creation_tokens" => &mut self.cache_creation_tokens,
            "cache_read_tokens" => &mut self.cache_read_tokens,
            _ => return,
        };
        *slot = value;
    }

    pub fn add(&mut self, other: &DayCounters) {
        for (name, value) in other.fields() {
            let current = self.fields().iter().find(|(n, _)| *n == name).map(|f| f.1);
            self.set(name, current.unwrap_or(0).saturating_add(value));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store did not answer in time")]
    Timeout,
    #[error("the store failed: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `"redis"` or `"memory"`, as `/health` reports it.
    fn kind(&self) -> &'static str;

    /// Limit check, lookup, lease and day counters: one round trip.
    async fn admit(&self, admission: &Admission<'_>) -> Result<Admitted, StoreError>;

    /// Store the answer, add the counters, release the lease: one round trip.
    async fn record(&self, outcome: &Outcome<'_>) -> Result<(), StoreError>;

    /// A coalescing follower's check: the answer, or whether its leader still holds the lease.
    async fn poll(&self, entry_key: &str, lease_key: &str) -> Result<Poll, StoreError>;

    /// Takes the lease if nobody holds it (a follower taking over from a failed leader).
    async fn take_lease(&self, lease: &LeaseRequest<'_>) -> Result<bool, StoreError>;

    /// Extends a lease this caller still holds; false when it was lost.
    async fn renew_lease(&self, lease: &LeaseRequest<'_>) -> Result<bool, StoreError>;

    /// Counters for each key, in order; a day with no traffic is all zeros.
    async fn day_counters(&self, stats_keys: &[String]) -> Result<Vec<DayCounters>, StoreError>;

    async fn ping(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_field_by_field() {
        let mut a = DayCounters {
            hits: 1,
            cost_micros: 10,
            ..Default::default()
        };
        a.add(&DayCounters {
            hits: 2,
            cost_micros: 5,
            cache_read_tokens: 7,
            ..Default::default()
        });
        assert_eq!(a.hits, 3);
        assert_eq!(a.cost_micros, 15);
        assert_eq!(a.cache_read_tokens, 7);
    }
}
