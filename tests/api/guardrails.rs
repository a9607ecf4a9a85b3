//! Keys and tenants, dollar budgets, Redis and upstream faults, secrets kept out of logs.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::fake_anthropic::{FAKE_API_KEY, FakeAnthropic, Reply};
use crate::support::gateway::{Gateway, Reply as GatewayReply};
use crate::support::redis::RedisServer;
use crate::{opener, stack_with};

const ACME_KEY: &str = "acme-secret-key-0123456789";
const BETA_KEY: &str = "beta-secret-key-9876543210";

fn keys() -> String {
    format!("acme:{ACME_KEY},beta:{BETA_KEY}")
}

async fn as_tenant(gateway: &Gateway, key: &str, body: serde_json::Value) -> GatewayReply {
    gateway
        .send(
            gateway
                .client
                .post(format!("{}/v1/generate", gateway.url))
                .header("x-api-key", key)
                .json(&body),
        )
        .await
}

async fn stats_of(gateway: &Gateway, key: &str) -> serde_json::Value {
    gateway
        .send(
            gateway
                .client
                .get(format!("{}/v1/stats", gateway.url))
                .header("authorization", format!("Bearer {key}")),
        )
        .await
        .json()
}

#[tokio::test]
async fn requests_need_a_gateway_key_and_health_stays_open() {
    let s = stack_with(|b| b.env("GATEWAY_API_KEYS", keys())).await;
    let g = &s.gateway;
    for reply in [
        g.generate(opener("Ada")).await,
        as_tenant(g, "acme-secret-key-012345678X", opener("Ada")).await,
        g.get("/v1/stats").await,
    ] {
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(reply.json()["code"], "unauthorized");
    }
    assert_eq!(g.get("/health").await.status, 200);
    assert_eq!(as_tenant(g, ACME_KEY, opener("Ada")).await.status, 200);
    let bearer = g
        .send(
            g.client
                .post(format!("{}/v1/generate", g.url))
                .header("authorization", format!("Bearer {BETA_KEY}"))
                .json(&opener("Ada")),
        )
        .await;
    assert_eq!(bearer.status, 200);
    assert_eq!(
        s.fake.calls(),
        2,
        "unauthorized requests never reach upstream"
    );
}

#[tokio::test]
async fn one_tenant_never_reads_anothers_entries_and_sees_only_its_own_stats() {
    let s = stack_with(|b| b.env("GATEWAY_API_KEYS", keys())).await;
    let g = &s.gateway;
    let acme = as_tenant(g, ACME_KEY, opener("Ada")).await;
    assert_eq!(
        as_tenant(g, ACME_KEY, opener("Ada"))
            .await
            .header("x-cache"),
        Some("HIT")
    );
    let beta = as_tenant(g, BETA_KEY, opener("Ada")).await;
    assert_eq!(
        beta.header("x-cache"),
        Some("MISS"),
        "beta must not read acme's entry"
    );
    assert_ne!(acme.json()["cache_key"], beta.json()["cache_key"]);
    assert!(
        acme.json()["cache_key"]
            .as_str()
            .unwrap()
            .contains("{acme}")
    );
    assert_eq!(s.fake.calls(), 2);
    let acme_stats = stats_of(g, ACME_KEY).await;
    let beta_stats = stats_of(g, BETA_KEY).await;
    assert_eq!(
        (acme_stats["requests"].as_u64(), acme_stats["hits"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (beta_stats["requests"].as_u64(), beta_stats["hits"].as_u64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn a_spent_budget_stops_misses_but_still_serves_hits() {
    let s = stack_with(|b| {
        b.env("GATEWAY_API_KEYS", keys()).env(
            "TENANT_LIMITS",
            r#"{"acme":{"daily_budget_usd":0.000001},"beta":{"daily_request_limit":1}}"#,
        )
    })
    .await;
    let g = &s.gateway;
    assert_eq!(
        as_tenant(g, ACME_KEY, opener("Ada")).await.status,
        200,
        "spend 0 < budget"
    );
    let over = as_tenant(g, ACME_KEY, opener("Bob")).await;
    assert_eq!(over.status, 429, "{}", over.text);
    assert_eq!(over.json()["code"], "budget_exceeded");
    assert!(over.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
    let hit = as_tenant(g, ACME_KEY, opener("Ada")).await;
    assert_eq!(hit.status, 200, "hits are free, so still served");
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    // Per-tenant overrides: beta has a request limit of 1 and no budget.
    assert_eq!(as_tenant(g, BETA_KEY, opener("Ada")).await.status, 200);
    assert_eq!(
        as_tenant(g, BETA_KEY, opener("Ada")).await.json()["code"],
        "rate_limited"
    );
    assert_eq!(s.fake.calls(), 2);
    assert_eq!(stats_of(g, ACME_KEY).await["rate_limited"], 1);
}

#[tokio::test]
async fn upstream_overloads_are_retried_and_honour_retry_after() {
    let s = stack_with(|b| b.env("UPSTREAM_MAX_RETRIES", "2")).await;
    s.fake.push(Reply::overloaded());
    s.fake.push(Reply::server_error());
    let ok = s.gateway.generate(opener("Ada")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(s.fake.calls(), 3);

    s.fake.push(Reply::rate_limited(1));
    let started = Instant::now();
    assert_eq!(s.gateway.generate(opener("Bob")).await.status, 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited retry-after"
    );
    assert_eq!(s.fake.calls(), 5);

    // After the retries run out: 503 with retry-after; nothing cached.
    for _ in 0..3 {
        s.fake.push(Reply::overloaded());
    }
    let failed = s.gateway.generate(opener("Cy")).await;
    assert_eq!(failed.status, 503);
    assert_eq!(failed.json()["code"], "upstream_overloaded");
    assert!(failed.header("retry-after").is_some());
    assert_eq!(s.fake.calls(), 8);
    let stats = s.gateway.get("/v1/stats").await.json();
    assert_eq!(stats["upstream_calls"], 8, "every attempt is counted");
    assert_eq!(stats["errors"], 1);
}

#[tokio::test]
async fn client_errors_and_spend_limits_are_never_retried() {
    let s = stack_with(|b| b.env("UPSTREAM_MAX_RETRIES", "3")).await;
    for (reply, status) in [
        (Reply::bad_request("messages: bad"), 400),
        (Reply::unauthorized(), 401),
        (Reply::error(403, "forbidden"), 403),
        (Reply::error(404, "model not found"), 404),
        (Reply::error(413, "too large"), 413),
    ] {
        let before = s.fake.calls();
        s.fake.push(reply);
        let r = s
            .gateway
            .generate(json!({"prompt": format!("status {status}")}))
            .await;
        assert_eq!(r.status, 502, "{}", r.text);
        assert_eq!(s.fake.calls(), before + 1, "{status} was retried");
    }
    s.fake.push(Reply::Error {
        status: 429,
        error_type: "rate_limit_error".into(),
        message: "You have reached your specified API usage limits.".into(),
        retry_after_secs: Some(1),
    });
    let before = s.fake.calls();
    let r = s.gateway.generate(json!({"prompt": "spend"})).await;
    assert_eq!(s.fake.calls(), before + 1, "a spend limit is not retried");
    assert!(r.json()["error"].as_str().unwrap().contains("usage limits"));
}

#[tokio::test]
async fn a_fallback_model_answers_and_is_stored_under_its_own_key_only() {
    let s = stack_with(|b| {
        b.env("UPSTREAM_MAX_RETRIES", "0")
            .env("FALLBACK_MODEL", "claude-haiku-4-5")
    })
    .await;
    s.fake.push(Reply::overloaded());
    let r = s.gateway.generate(opener("Ada")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["model"],
        "claude-haiku-4-5",
        "the response says which model answered"
    );
    let sent = s.fake.requests();
    assert_eq!(sent[0].body["model"], "claude-sonnet-4-6");
    assert_eq!(sent[1].body["model"], "claude-haiku-4-5");

    // Never under the requested model's key: asking Sonnet again goes upstream.
    let again = s.gateway.generate(opener("Ada")).await;
    assert_eq!(again.header("x-cache"), Some("MISS"));
    assert_eq!(again.json()["model"], "claude-sonnet-4-6");
    // Under the fallback model's key: asking Haiku directly is a hit.
    let mut haiku = opener("Ada");
    haiku["model"] = json!("claude-haiku-4-5");
    assert_eq!(
        s.gateway.generate(haiku).await.header("x-cache"),
        Some("HIT")
    );
    assert_eq!(s.fake.calls(), 3);
}

#[tokio::test]
async fn when_redis_goes_down_requests_are_served_without_it_and_hits_resume_after() {
    let mut redis = RedisServer::start().await;
    let fake = FakeAnthropic::start().await;
    let gateway = Gateway::builder()
        .redis(&redis)
        .upstream(&fake)
        .env("REDIS_TIMEOUT_MS", "300")
        .spawn()
        .await;
    assert_eq!(
        gateway.generate(opener("Ada")).await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        gateway.generate(opener("Ada")).await.header("x-cache"),
        Some("HIT")
    );

    redis.stop().await;
    for i in 0..6 {
        let started = Instant::now();
        let r = gateway.generate(opener(&format!("down {}", i % 2))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-cache"), Some("SKIP"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a request waited {:?} on a dead Redis",
            started.elapsed()
        );
    }
    let health = gateway.get("/health").await.json();
    assert_eq!(health["redis"], "down");
    assert!(gateway.logs().contains("store unavailable"));

    redis.restart().await;
    // It reconnects by itself; the restarted Redis is empty, so one miss then hits.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gateway.generate(opener("back")).await;
        if r.header("x-cache") == Some("HIT") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hits did not resume: {:?}",
            r.header("x-cache")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gateway.get("/health").await.json()["redis"], "ok");
}

#[tokio::test]
async fn in_closed_mode_a_dead_redis_is_a_fast_503() {
    let mut redis = RedisServer::start().await;
    let fake = FakeAnthropic::start().await;
    let gateway = Gateway::builder()
        .redis(&redis)
        .upstream(&fake)
        .env("REDIS_TIMEOUT_MS", "300")
        .env("REDIS_FAILURE_MODE", "closed")
        .spawn()
        .await;
    redis.stop().await;
    let started = Instant::now();
    let r = gateway.generate(opener("Ada")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["code"], "store_unavailable");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.calls(), 0);
}

/// A full run — successes, a cache hit, a wrong key, an upstream 401, a dead Redis — then
/// every secret is searched for in everything the process printed.
#[tokio::test]
async fn secrets_never_appear_in_logs_or_responses() {
    let redis_password = "redis-password-5e3b1d7c";
    let mut redis = RedisServer::start_tls(redis_password).await;
    let fake = FakeAnthropic::start().await;
    let gateway = Gateway::builder()
        .redis(&redis)
        .upstream(&fake)
        .env("GATEWAY_API_KEYS", keys())
        .env("REDIS_TIMEOUT_MS", "300")
        .env(
            "SUMMARY_WEBHOOK_URL",
            "https://hooks.example.invalid/T0/secret-hook-path",
        )
        .env("RUST_LOG", "debug")
        .spawn()
        .await;
    let mut bodies = Vec::new();
    bodies.push(as_tenant(&gateway, ACME_KEY, opener("Ada")).await.text);
    bodies.push(as_tenant(&gateway, ACME_KEY, opener("Ada")).await.text);
    bodies.push(
        as_tenant(&gateway, "wrong-key-but-long-enough", opener("Ada"))
            .await
            .text,
    );
    fake.push(Reply::unauthorized());
    bodies.push(as_tenant(&gateway, BETA_KEY, opener("Bob")).await.text);
    redis.stop().await;
    bodies.push(as_tenant(&gateway, BETA_KEY, opener("Cy")).await.text);
    let logs = gateway.stop().await;
    assert!(logs.lines().count() > 5, "the run logged something: {logs}");
    for secret in [
        ACME_KEY,
        BETA_KEY,
        FAKE_API_KEY,
        redis_password,
        "secret-hook-path",
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
        for body in &bodies {
            assert!(!body.contains(secret), "a secret leaked into a response");
        }
    }
}
