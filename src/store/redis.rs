//! The Redis store: fred over TCP or TLS, two Lua scripts for the two round trips.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::*;
use fred::types::config::{ReconnectPolicy, TlsConnector};
use fred::types::scripts::Script;
use secrecy::{ExposeSecret, SecretString};

use super::{
    Admission, Admitted, CachedEntry, DayCounters, LeaseRequest, Outcome, Poll, Store, StoreError,
};
use crate::money::Micros;

const ADMIT_LUA: &str = include_str!("scripts/admit.lua");
const RECORD_LUA: &str = include_str!("scripts/record.lua");
const POLL_LUA: &str = include_str!("scripts/poll.lua");
const LEASE_LUA: &str = include_str!("scripts/lease.lua");

pub struct RedisStore {
    client: Client,
    admit: Script,
    record: Script,
    poll: Script,
    lease: Script,
    timeout: Duration,
}

impl RedisStore {
    /// Builds the client and connects: start-up never fails on, and waits at most `timeout`
    /// for, a Redis that is down; requests meet it through their own timeout.
    pub async fn connect(
        url: &SecretString,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<RedisStore, String> {
        // fred's own errors quote the URL, password included; report only what went wrong.
        let mut config = fred::types::config::Config::from_url(url.expose_secret())
            .map_err(|e| format!("REDIS_URL is not a valid Redis URL ({:?})", e.kind()))?;
        if config.tls.is_some() {
            config.tls = Some(tls_connector(ca_file)?.into());
        } else if ca_file.is_some() {
            tracing::warn!("REDIS_CA_FILE is set but REDIS_URL is not rediss://; ignoring it");
        }
        // The first attempt is made at once (`fail_fast`): a client that reconnects by its
        // policy waits the policy's first delay (50–150 ms) before even trying, which was
        // most of a cold start. Later disconnects reconnect by the policy either way.
        config.fail_fast = true;
        let client = build_client(config.clone(), timeout)?;
        let first = client.connect();
        let client = match tokio::time::timeout(timeout, client.wait_for_connect()).await {
            Ok(Ok(())) => client,
            _ => {
                // Down or slow at start: serve without it, and keep trying in the background.
                first.abort();
                config.fail_fast = false;
                let client = build_client(config, timeout)?;
                client.connect();
                client
            }
        };
        Ok(RedisStore {
            client,
            admit: Script::from_lua(ADMIT_LUA),
            record: Script::from_lua(RECORD_LUA),
            poll: Script::from_lua(POLL_LUA),
            lease: Script::from_lua(LEASE_LUA),
            timeout,
        })
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, StoreError> {
        // While the client knows it is disconnected (it reconnects in the background), fail at
        // once instead of spending REDIS_TIMEOUT_MS of every request on a known outage.
        if !self.client.is_connected() {
            return Err(StoreError::Backend("not connected (reconnecting)".into()));
        }
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if *e.kind() == fred::error::ErrorKind::Timeout => Err(StoreError::Timeout),
            Ok(Err(e)) => Err(StoreError::Backend(format!(
                "{:?}: {}",
                e.kind(),
                e.details()
            ))),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn eval(
        &self,
        script: &Script,
        keys: Vec<&str>,
        args: Vec<Value>,
    ) -> Result<Vec<Value>, StoreError> {
        let keys: Vec<Key> = keys.into_iter().map(Key::from).collect();
        self.bounded(script.evalsha_with_reload(&self.client, keys, args))
            .await
    }
}

impl RedisStore {
    async fn lease_op(&self, op: &str, lease: &LeaseRequest<'_>) -> Result<bool, StoreError> {
        let args: Vec<Value> = vec![
            op.into(),
            lease.token.into(),
            (lease.ttl.as_millis().max(1) as i64).into(),
        ];
        let reply: Value = self
            .bounded(
                self.lease
                    .evalsha_with_reload(&self.client, vec![Key::from(lease.key)], args),
            )
            .await?;
        Ok(reply.as_i64() == Some(1))
    }
}

fn build_client(config: fred::types::config::Config, timeout: Duration) -> Result<Client, String> {
    Builder::from_config(config)
        .with_performance_config(|perf| perf.default_command_timeout = timeout)
        .with_connection_config(|conn| {
            conn.connection_timeout = timeout.max(Duration::from_secs(2));
            conn.internal_command_timeout = timeout.max(Duration::from_secs(2));
            // A command is tried once: a retry after our timeout would count twice.
            conn.max_command_attempts = 1;
            conn.tcp = fred::types::config::TcpConfig {
                nodelay: Some(true),
                ..Default::default()
            };
        })
        // Reconnect forever, quickly at first, at most every 2 s.
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build()
        .map_err(|e| format!("cannot build the Redis client ({:?})", e.kind()))
}

/// The system roots plus the CA in `REDIS_CA_FILE`, if any.
fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("REDIS_CA_FILE {}: cannot read it ({e})", path.display()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| {
                format!(
                    "REDIS_CA_FILE {}: not a PEM certificate ({e})",
                    path.display()
                )
            })?;
            roots
                .add(cert)
                .map_err(|e| format!("REDIS_CA_FILE {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "REDIS_CA_FILE {}: holds no certificate",
                path.display()
            ));
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(config))
}

fn as_bytes(value: &Value) -> Bytes {
    match value {
        Value::Bytes(b) => b.clone(),
        Value::String(s) => s.inner().clone(),
        other => Bytes::copy_from_slice(other.as_bytes().unwrap_or_default()),
    }
}

fn as_cost(value: Option<&Value>) -> Option<Micros> {
    let value = value?;
    match value {
        Value::Integer(n) => u64::try_from(*n).ok().map(Micros),
        other => other.as_str()?.parse().ok().map(Micros),
    }
}

fn unexpected(reply: &[Value]) -> StoreError {
    StoreError::Backend(format!("unexpected script reply: {reply:?}"))
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn admit(&self, a: &Admission<'_>) -> Result<Admitted, StoreError> {
        let mut keys = vec![a.stats_key];
        keys.extend(a.lookup_key);
        let (token, lease_ms) = match &a.lease {
            Some(lease) => {
                keys.push(lease.key);
                (lease.token, lease.ttl.as_millis().max(1) as i64)
            }
            None => ("", 0),
        };
        let budget = a.daily_budget.map(|b| b.0 as i64).unwrap_or(-1);
        let args: Vec<Value> = vec![
            (a.daily_request_limit as i64).into(),
            budget.into(),
            (a.stats_ttl_secs as i64).into(),
            if a.lookup_key.is_some() { "1" } else { "0" }.into(),
            token.into(),
            lease_ms.into(),
        ];
        let reply = self.eval(&self.admit, keys, args).await?;
        match reply.first().and_then(|v| v.as_str()).as_deref() {
            Some("limited") => Ok(Admitted::RateLimited),
            Some("budget") => Ok(Admitted::BudgetExceeded),
            Some("hit") => Ok(Admitted::Hit(CachedEntry {
                body: reply
                    .get(1)
                    .map(as_bytes)
                    .ok_or_else(|| unexpected(&reply))?,
                cost: as_cost(reply.get(2)),
            })),
            Some("miss") => Ok(Admitted::Miss {
                leader: reply.get(1).and_then(Value::as_i64) != Some(0),
            }),
            _ => Err(unexpected(&reply)),
        }
    }

    async fn record(&self, o: &Outcome<'_>) -> Result<(), StoreError> {
        let mut keys = vec![o.stats_key];
        let mut args: Vec<Value> = vec![(o.stats_ttl_secs as i64).into()];
        match &o.store {
            Some((key, entry, ttl_secs)) => {
                keys.push(key);
                args.push("1".into());
                args.push(Value::Bytes(entry.body.clone()));
                args.push(match entry.cost {
                    Some(cost) => (cost.0 as i64).into(),
                    None => "".into(),
                });
                args.push((*ttl_secs as i64).into());
            }
            None => args.extend(["0".into(), "".into(), "".into(), 0.into()]),
        }
        match &o.release {
            Some(lease) => {
                keys.push(lease.key);
                args.push(lease.token.into());
            }
            None => args.push("".into()),
        }
        for (field, value) in o.counters.fields() {
            if value > 0 {
                args.push(field.into());
                args.push((value as i64).into());
            }
        }
        self.eval(&self.record, keys, args).await.map(|_| ())
    }

    async fn poll(&self, entry_key: &str, lease_key: &str) -> Result<Poll, StoreError> {
        let reply = self
            .eval(&self.poll, vec![entry_key, lease_key], Vec::new())
            .await?;
        match reply.first().and_then(|v| v.as_str()).as_deref() {
            Some("ready") => Ok(Poll::Ready(CachedEntry {
                body: reply
                    .get(1)
                    .map(as_bytes)
                    .ok_or_else(|| unexpected(&reply))?,
                cost: as_cost(reply.get(2)),
            })),
            Some("pending") => Ok(Poll::Pending),
            Some("abandoned") => Ok(Poll::Abandoned),
            _ => Err(unexpected(&reply)),
        }
    }

    async fn take_lease(&self, lease: &LeaseRequest<'_>) -> Result<bool, StoreError> {
        self.lease_op("take", lease).await
    }

    async fn renew_lease(&self, lease: &LeaseRequest<'_>) -> Result<bool, StoreError> {
        self.lease_op("renew", lease).await
    }

    async fn day_counters(&self, stats_keys: &[String]) -> Result<Vec<DayCounters>, StoreError> {
        let pipeline = self.client.pipeline();
        for key in stats_keys {
            let _: () = self.bounded(pipeline.hgetall(key.as_str())).await?;
        }
        let replies: Vec<HashMap<String, u64>> = self.bounded(pipeline.all()).await?;
        Ok(replies
            .into_iter()
            .map(|fields| {
                let mut day = DayCounters::default();
                for (name, value) in fields {
                    day.set(&name, value);
                }
                day
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(self.client.ping::<()>(None)).await
    }
}
