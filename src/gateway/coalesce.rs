//! Request coalescing: identical concurrent misses — same cache key, any number of processes
//! sharing the store — make one upstream call.
//!
//! The first takes a short lease (SET NX PX, inside the admit script) and renews it while its
//! upstream call runs; the others poll for its stored answer. A leader that fails releases the
//! lease without storing anything; one that dies stops renewing, so its lease lapses within
//! [`LEASE_TTL`]. Either way a follower sees "no answer, no lease" and takes over. Nobody
//! waits past the request deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use super::{Admit, CacheStatus, CachedCall, CallResult, Gateway, OwnedLease, Ticket};
use crate::error::GatewayError;
use crate::store::{DayCounters, Poll};

/// How long a lease lives without renewal: how soon followers notice a dead leader.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often a leader renews its lease while its upstream call is in flight.
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// Followers poll quickly at first (most answers are fast), then back off.
const FIRST_POLL: Duration = Duration::from_millis(15);
const MAX_POLL: Duration = Duration::from_millis(250);

impl Gateway {
    /// Waits for the leader's answer; takes over if the leader is gone.
    pub(super) async fn follow(
        &self,
        c: &CachedCall<'_>,
        mut ticket: Ticket,
        lease: OwnedLease,
    ) -> Result<Admit, GatewayError> {
        let mut pause = FIRST_POLL;
        loop {
            let now = Instant::now();
            if now >= ticket.deadline {
                return Err(GatewayError::UpstreamTimeout {
                    secs: self.config.request_deadline.as_secs(),
                });
            }
            tokio::time::sleep(pause.min(ticket.deadline - now)).await;
            pause = (pause * 3 / 2).min(MAX_POLL);
            match self.store.poll(c.key.as_str(), &lease.key).await {
                Ok(Poll::Ready(entry)) => {
                    let counters = DayCounters {
                        coalesced: 1,
                        saved_micros: entry.cost.map_or(0, |c| c.0),
                        ..Default::default()
                    };
                    self.record(&ticket.stats_key, None, None, counters).await;
                    return Ok(Admit::Answered(CallResult::Cached {
                        entry,
                        status: CacheStatus::Coalesced,
                    }));
                }
                Ok(Poll::Pending) => {}
                Ok(Poll::Abandoned) => match self.store.take_lease(&lease.request()).await {
                    Ok(true) => {
                        ticket.lease = Some(lease);
                        ticket.took_over = true;
                        return Ok(Admit::GoUpstream(ticket));
                    }
                    // Another follower took over first: wait for it instead.
                    Ok(false) => pause = FIRST_POLL,
                    Err(e) => return self.follow_without_store(ticket, &e),
                },
                Err(e) => return self.follow_without_store(ticket, &e),
            }
        }
    }

    /// The store went away while waiting: go upstream alone (fail open) or refuse.
    fn follow_without_store(
        &self,
        mut ticket: Ticket,
        error: &crate::store::StoreError,
    ) -> Result<Admit, GatewayError> {
        self.store_failed("coalescing", error)?;
        ticket.store_up = false;
        ticket.took_over = true;
        Ok(Admit::GoUpstream(ticket))
    }

    /// Runs `work` (the upstream call) while renewing the ticket's lease, if it holds one.
    pub async fn hold_lease<T>(&self, ticket: &Ticket, work: impl Future<Output = T>) -> T {
        let Some(lease) = &ticket.lease else {
            return work.await;
        };
        let mut work = std::pin::pin!(work);
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = renew.tick() => {
                    if let Err(e) = self.store.renew_lease(&lease.request()).await {
                        tracing::warn!(error = %e, "could not renew the coalescing lease");
                    }
                }
            }
        }
    }
}
