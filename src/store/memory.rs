//! The embedded store: one process's memory, with TTLs and a size bound.
//!
//! It mirrors the Redis scripts under one mutex, so limits, budgets and coalescing behave the
//! same inside a process; entries are not shared between processes (a start-up warning says so).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Admission, Admitted, CachedEntry, DayCounters, LeaseRequest, Outcome, Poll, Store, StoreError,
};

pub struct MemoryStore {
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Expiring<CachedEntry>>,
    leases: HashMap<String, Expiring<String>>,
    stats: HashMap<String, Expiring<DayCounters>>,
}

struct Expiring<T> {
    value: T,
    expires_at: Instant,
}

impl<T> Expiring<T> {
    fn live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

fn live<'m, T>(map: &'m HashMap<String, Expiring<T>>, key: &str, now: Instant) -> Option<&'m T> {
    map.get(key).filter(|e| e.live(now)).map(|e| &e.value)
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> MemoryStore {
        MemoryStore {
            max_entries: max_entries.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the whole cache, so keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn stats_mut(&mut self, key: &str, ttl_secs: u64, now: Instant) -> &mut DayCounters {
        let slot = self
            .stats
            .entry(key.to_string())
            .or_insert_with(|| Expiring {
                value: DayCounters::default(),
                expires_at: now + Duration::from_secs(ttl_secs),
            });
        if !slot.live(now) {
            slot.value = DayCounters::default();
            slot.expires_at = now + Duration::from_secs(ttl_secs);
        }
        &mut slot.value
    }

    /// Makes room for one more entry: expired ones go first, then the one closest to expiry.
    fn evict_for_insert(&mut self, max_entries: usize, now: Instant) {
        if self.entries.len() < max_entries {
            return;
        }
        self.entries.retain(|_, e| e.live(now));
        self.leases.retain(|_, e| e.live(now));
        self.stats.retain(|_, e| e.live(now));
        while self.entries.len() >= max_entries {
            let Some(soonest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&soonest);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn admit(&self, a: &Admission<'_>) -> Result<Admitted, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let served = inner.stats_mut(a.stats_key, a.stats_ttl_secs, now).requests;
        if a.daily_request_limit > 0 && served >= a.daily_request_limit {
            inner
                .stats_mut(a.stats_key, a.stats_ttl_secs, now)
                .rate_limited += 1;
            return Ok(Admitted::RateLimited);
        }
        if let Some(key) = a.lookup_key
            && let Some(entry) = live(&inner.entries, key, now).cloned()
        {
            let day = inner.stats_mut(a.stats_key, a.stats_ttl_secs, now);
            day.requests += 1;
            day.hits += 1;
            day.saved_micros += entry.cost.map_or(0, |c| c.0);
            return Ok(Admitted::Hit(entry));
        }
        let day = inner.stats_mut(a.stats_key, a.stats_ttl_secs, now);
        if let Some(budget) = a.daily_budget
            && day.cost_micros >= budget.0
        {
            day.rate_limited += 1;
            return Ok(Admitted::BudgetExceeded);
        }
        day.requests += 1;
        let leader = match &a.lease {
            Some(lease) if live(&inner.leases, lease.key, now).is_some() => false,
            Some(lease) => {
                inner.leases.insert(
                    lease.key.to_string(),
                    Expiring {
                        value: lease.token.to_string(),
                        expires_at: now + lease.ttl,
                    },
                );
                true
            }
            None => true,
        };
        if leader {
            inner.stats_mut(a.stats_key, a.stats_ttl_secs, now).misses += 1;
        }
        Ok(Admitted::Miss { leader })
    }

    async fn record(&self, o: &Outcome<'_>) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some((key, entry, ttl_secs)) = o.store {
            inner.evict_for_insert(self.max_entries, now);
            inner.entries.insert(
                key.to_string(),
                Expiring {
                    value: entry.clone(),
                    expires_at: now + Duration::from_secs(ttl_secs),
                },
            );
        }
        if o.counters != DayCounters::default() {
            inner
                .stats_mut(o.stats_key, o.stats_ttl_secs, now)
                .add(&o.counters);
        }
        if let Some(lease) = &o.release
            && live(&inner.leases, lease.key, now).is_some_and(|t| t == lease.token)
        {
            inner.leases.remove(lease.key);
        }
        Ok(())
    }

    async fn poll(&self, entry_key: &str, lease_key: &str) -> Result<Poll, StoreError> {
        let now = Instant::now();
        let inner = self.lock();
        if let Some(entry) = live(&inner.entries, entry_key, now) {
            return Ok(Poll::Ready(entry.clone()));
        }
        Ok(match live(&inner.leases, lease_key, now) {
            Some(_) => Poll::Pending,
            None => Poll::Abandoned,
        })
    }

    async fn take_lease(&self, lease: &LeaseRequest<'_>) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if live(&inner.leases, lease.key, now).is_some() {
            return Ok(false);
        }
        inner.leases.insert(
            lease.key.to_string(),
            Expiring {
                value: lease.token.to_string(),
                expires_at: now + lease.ttl,
            },
        );
        Ok(true)
    }

    async fn renew_lease(&self, lease: &LeaseRequest<'_>) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.leases.get_mut(lease.key) {
            Some(held) if held.live(now) && held.value == lease.token => {
                held.expires_at = now + lease.ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn day_counters(&self, stats_keys: &[String]) -> Result<Vec<DayCounters>, StoreError> {
        let now = Instant::now();
        let inner = self.lock();
        Ok(stats_keys
            .iter()
            .map(|key| live(&inner.stats, key, now).copied().unwrap_or_default())
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Micros;
    use bytes::Bytes;

    fn admission<'a>(key: &'a str) -> Admission<'a> {
        Admission {
            stats_key: "stats",
            lookup_key: Some(key),
            lease: None,
            daily_request_limit: 0,
            daily_budget: None,
            stats_ttl_secs: 60,
        }
    }

    fn entry(text: &str) -> CachedEntry {
        CachedEntry {
            body: Bytes::from(text.to_string()),
            cost: Some(Micros(7)),
        }
    }

    async fn put(store: &MemoryStore, key: &str, ttl_secs: u64) {
        let e = entry(key);
        store
            .record(&Outcome {
                stats_key: "stats",
                stats_ttl_secs: 60,
                store: Some((key, &e, ttl_secs)),
                release: None,
                counters: DayCounters::default(),
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_size_bound_holds_and_evicts_the_soonest_to_expire() {
        let store = MemoryStore::new(2);
        put(&store, "short", 10).await;
        put(&store, "long", 1000).await;
        put(&store, "new", 1000).await;
        assert_eq!(store.poll("short", "l").await.unwrap(), Poll::Abandoned);
        assert!(matches!(
            store.poll("long", "l").await.unwrap(),
            Poll::Ready(_)
        ));
        assert!(matches!(
            store.poll("new", "l").await.unwrap(),
            Poll::Ready(_)
        ));
        assert_eq!(store.lock().entries.len(), 2);
    }

    #[tokio::test]
    async fn a_hit_counts_and_reports_what_it_saved() {
        let store = MemoryStore::new(10);
        put(&store, "k", 100).await;
        let admitted = store.admit(&admission("k")).await.unwrap();
        assert_eq!(admitted, Admitted::Hit(entry("k")));
        let day = store.day_counters(&["stats".into()]).await.unwrap()[0];
        assert_eq!((day.requests, day.hits, day.saved_micros), (1, 1, 7));
    }
}
