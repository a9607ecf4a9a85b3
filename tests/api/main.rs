//! Black-box tests: the real binary over HTTP, a private redis-server, a fake Messages API.

#[path = "../support/mod.rs"]
mod support;

mod cache;
mod dashboard;
mod errors;
mod guardrails;
mod hostile;
mod lambda_events;
mod limits;
mod messages;
mod openapi;
mod optimizers;
mod stores;
mod summary;

use serde_json::{Value, json};
use support::fake_anthropic::FakeAnthropic;
use support::gateway::{Gateway, GatewayBuilder};
use support::redis::RedisServer;

/// A private Redis, a fake upstream, and a gateway wired to both.
pub struct Stack {
    pub redis: RedisServer,
    pub fake: FakeAnthropic,
    pub gateway: Gateway,
}

pub async fn stack() -> Stack {
    stack_with(|b| b).await
}

pub async fn stack_with(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Stack {
    let redis = RedisServer::start().await;
    let fake = FakeAnthropic::start().await;
    let gateway = configure(Gateway::builder().redis(&redis).upstream(&fake))
        .spawn()
        .await;
    Stack {
        redis,
        fake,
        gateway,
    }
}

pub fn opener(contact: &str) -> Value {
    json!({
        "system": "You write cold email openers. Two sentences.",
        "prompt": format!("Write an opener for {contact} at Acme, who just raised a Series A."),
    })
}

/// The text of `events/<file>`, the sample Lambda events.
pub fn event(file: &str) -> String {
    let path = format!("{}/events/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Writes a tenant's day counters the way the gateway keeps them: a Redis hash named
/// `ai:stats:{tenant}:YYYY-MM-DD` whose fields are the counter names.
pub async fn seed_counters(redis: &RedisServer, tenant: &str, day: &str, fields: &[(&str, u64)]) {
    let key = format!("ai:stats:{{{tenant}}}:{day}");
    let values: Vec<String> = fields.iter().map(|(_, v)| v.to_string()).collect();
    let mut args = vec!["HSET", key.as_str()];
    for ((name, _), value) in fields.iter().zip(&values) {
        args.push(name);
        args.push(value);
    }
    assert_eq!(
        redis.cmd(&args).await,
        fields.len().to_string(),
        "HSET {key}"
    );
}

/// The UTC day `days` before today, as `YYYY-MM-DD`.
pub fn utc_day(days_ago: i64) -> String {
    (chrono::Utc::now().date_naive() - chrono::Duration::days(days_ago))
        .format("%Y-%m-%d")
        .to_string()
}
