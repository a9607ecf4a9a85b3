//! Every error the contract names: JSON with a code and a sentence, never a panic or HTML.

use serde_json::json;

use crate::support::fake_anthropic::Reply;
use crate::support::gateway::Reply as GatewayReply;
use crate::{opener, stack, stack_with};

fn assert_error(reply: &GatewayReply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{}",
        reply.text
    );
    let body = reply.json();
    assert_eq!(body["code"], code, "{body}");
    let message = body["error"]
        .as_str()
        .expect("an error sentence")
        .to_string();
    assert!(message.len() > 10, "{message}");
    message
}

#[tokio::test]
async fn client_mistakes_are_4xx_json_naming_the_problem() {
    let s = stack().await;
    let g = &s.gateway;
    assert_error(
        &g.post_raw("/v1/generate", "{\"prompt\": ").await,
        400,
        "invalid_json",
    );
    assert_error(&g.post_raw("/v1/generate", "").await, 400, "invalid_json");
    let typo = assert_error(
        &g.generate(json!({"promt": "hi"})).await,
        400,
        "invalid_request",
    );
    assert!(typo.contains("promt"), "{typo}");
    let missing = assert_error(
        &g.generate(json!({"system": "x"})).await,
        400,
        "invalid_request",
    );
    assert!(missing.contains("prompt"), "{missing}");
    let temp = assert_error(
        &g.generate(json!({"prompt": "x", "temperature": 2})).await,
        400,
        "invalid_request",
    );
    assert!(temp.contains("temperature"), "{temp}");
    let ttl = assert_error(
        &g.generate(json!({"prompt": "x", "ttl_secs": 99_999_999}))
            .await,
        400,
        "invalid_request",
    );
    assert!(ttl.contains("ttl_secs"), "{ttl}");
    assert_error(&g.get("/nope").await, 404, "not_found");
    let wrong_method = g.get("/v1/generate").await;
    assert_error(&wrong_method, 405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert_error(
        &g.get("/v1/stats?date=yesterday").await,
        400,
        "invalid_request",
    );
    assert_eq!(s.fake.calls(), 0, "no bad request reached upstream");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let s = stack_with(|b| b.env("MAX_BODY_BYTES", "2048")).await;
    let big = json!({"prompt": "x".repeat(4096)});
    assert_error(&s.gateway.generate(big).await, 413, "payload_too_large");
    let ok = json!({"prompt": "x".repeat(1000)});
    assert_eq!(s.gateway.generate(ok).await.status, 200);
}

#[tokio::test]
async fn upstream_errors_carry_their_type_and_message_but_never_the_key() {
    let s = stack_with(|b| b.env("UPSTREAM_MAX_RETRIES", "0")).await;
    s.fake
        .push(Reply::bad_request("max_tokens: too large for this model"));
    let message = assert_error(
        &s.gateway.generate(opener("Ada")).await,
        502,
        "upstream_error",
    );
    assert!(message.contains("invalid_request_error"), "{message}");
    assert!(message.contains("too large for this model"), "{message}");

    s.fake.push(Reply::unauthorized());
    let reply = s.gateway.generate(opener("Ada")).await;
    let message = assert_error(&reply, 502, "upstream_error");
    assert!(message.contains("authentication_error"), "{message}");
    assert!(
        !reply
            .text
            .contains(crate::support::fake_anthropic::FAKE_API_KEY)
    );

    s.fake.push(Reply::rate_limited(7));
    let reply = s.gateway.generate(opener("Ada")).await;
    assert_error(&reply, 503, "upstream_overloaded");
    assert_eq!(reply.header("retry-after"), Some("7"));

    s.fake.push(Reply::overloaded());
    assert_error(
        &s.gateway.generate(opener("Ada")).await,
        503,
        "upstream_overloaded",
    );

    let stats = s.gateway.get("/v1/stats").await.json();
    assert_eq!(stats["errors"], 4);
    assert_eq!(
        s.redis.cmd(&["KEYS", "ai:v1:*"]).await,
        "",
        "no error was cached"
    );
}

#[tokio::test]
async fn a_silent_upstream_is_a_504_within_the_timeout() {
    let s = stack_with(|b| b.env("UPSTREAM_TIMEOUT_SECS", "1")).await;
    s.fake.push(Reply::Hang);
    let started = std::time::Instant::now();
    assert_error(
        &s.gateway.generate(opener("Ada")).await,
        504,
        "upstream_timeout",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let s = stack_with(|b| {
        b.env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
            .env("UPSTREAM_MAX_RETRIES", "0")
    })
    .await;
    let message = assert_error(
        &s.gateway.generate(opener("Ada")).await,
        502,
        "upstream_error",
    );
    assert!(message.contains("connection_error"), "{message}");
}
