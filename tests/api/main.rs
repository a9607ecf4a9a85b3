//! Black-box tests: the real binary over HTTP, a private redis-server, a fake Messages API.

#[path = "../support/mod.rs"]
mod support;

mod cache;
mod errors;
mod lambda_events;
mod limits;
mod messages;
mod stores;

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
