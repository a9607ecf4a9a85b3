//! The store edges: one round trip per hit, TLS with a password (Upstash), and the memory store.

use serde_json::json;

use crate::support::fake_anthropic::FakeAnthropic;
use crate::support::gateway::Gateway;
use crate::support::redis::RedisServer;
use crate::{opener, stack};

#[tokio::test]
async fn a_hit_costs_one_redis_round_trip_and_a_miss_two() {
    let s = stack().await;
    // Warm up: scripts loaded, connection made.
    s.gateway.generate(json!({"prompt": "warm up"})).await;

    let monitor = s.redis.monitor().await;
    s.gateway.generate(opener("Ada")).await;
    let miss = monitor.settle().await;
    assert_eq!(miss.len(), 2, "a miss: {miss:#?}");

    let monitor = s.redis.monitor().await;
    let hit = s.gateway.generate(opener("Ada")).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let trips = monitor.settle().await;
    assert_eq!(trips.len(), 1, "a hit: {trips:#?}");
    assert!(trips[0].to_lowercase().contains("evalsha"), "{trips:?}");
}

#[tokio::test]
async fn tls_redis_with_a_password_works_like_upstash_and_the_password_never_shows() {
    let password = "upstash-like-password-7f3a9c";
    let redis = RedisServer::start_tls(password).await;
    let fake = FakeAnthropic::start().await;
    let gateway = Gateway::builder()
        .redis(&redis)
        .upstream(&fake)
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
    let health = gateway.get("/health").await.json();
    assert_eq!(
        health,
        json!({"status": "ok", "store": "redis", "redis": "ok", "upstream": "anthropic"})
    );
    let logs = gateway.stop().await;
    assert!(!logs.contains(password));
}

#[tokio::test]
async fn without_redis_the_memory_store_caches_and_counts_in_process() {
    let fake = FakeAnthropic::start().await;
    let gateway = Gateway::builder()
        .upstream(&fake)
        .env("DAILY_REQUEST_LIMIT", "3")
        .spawn()
        .await;
    assert!(
        gateway.logs().contains("in-memory store"),
        "a start-up warning says so"
    );
    assert_eq!(
        gateway.generate(opener("Ada")).await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        gateway.generate(opener("Ada")).await.header("x-cache"),
        Some("HIT")
    );
    let mut short = opener("Bob");
    short["ttl_secs"] = json!(1);
    assert_eq!(
        gateway.generate(short.clone()).await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        gateway.generate(short).await.status,
        429,
        "the limit applies in memory too"
    );
    assert_eq!(fake.calls(), 2);
    let health = gateway.get("/health").await.json();
    assert_eq!(health["store"], "memory");
    let stats = gateway.get("/v1/stats").await.json();
    assert_eq!(
        (stats["hits"].as_u64(), stats["misses"].as_u64()),
        (Some(1), Some(2))
    );
}

#[tokio::test]
async fn without_an_api_key_the_local_server_answers_from_the_offline_mock() {
    let gateway = Gateway::builder().spawn().await;
    let reply = gateway.generate(opener("Ada")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-upstream"), Some("mock"));
    let body = reply.json();
    assert!(body["response"].as_str().unwrap().contains("mock"));
    assert!(body["tokens"]["input"].as_u64().unwrap() > 0);
    assert_eq!(
        gateway.generate(opener("Ada")).await.header("x-cache"),
        Some("HIT")
    );
    assert!(gateway.logs().contains("offline mock"));
}

#[tokio::test]
async fn bad_configuration_stops_start_up_naming_the_variable() {
    let (code, output) = Gateway::builder()
        .env("CACHE_TTL_SECS", "forever")
        .spawn_expecting_failure()
        .await;
    assert_ne!(code, 0);
    assert!(output.contains("CACHE_TTL_SECS"), "{output}");
    let (code, output) = Gateway::builder()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .spawn_expecting_failure()
        .await;
    assert_ne!(code, 0);
    assert!(output.contains("ANTHROPIC_API_KEY"), "{output}");
}

#[tokio::test]
async fn replay_estimates_savings_offline_from_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    let lines = [
        r#"{"system":"You write openers.","prompt":"Opener for Ada","timestamp":"2026-12-01T10:00:00Z"}"#,
        r#"{"system":"You write openers.","prompt":"Opener for Ada","timestamp":"2026-12-01T10:01:00Z"}"#,
        r#"{"system":"You write openers.","prompt":"Opener for Bob","timestamp":"2026-12-01T10:02:00Z"}"#,
        r#"{"promt":"a typo"}"#,
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ai-gateway"))
        .arg("replay")
        .arg(&log)
        .env_clear()
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("ESTIMATES"), "{text}");
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    let columns: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(columns[1], "3", "{total}");
    assert_eq!(columns[2], "33.3%", "{total}");
    assert!(text.contains("line 4"), "the typo line is reported: {text}");
}
