//! `POST /v1/messages` over HTTP: the Messages API forwarded untouched, cached under a canonical
//! key, streamed and replayed, with errors in Anthropic's shape. `sdk` drives it with the
//! official Python SDK.

mod sdk;

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_anthropic::{FAKE_API_KEY, Reply};
use crate::support::gateway::{Gateway, GatewayBuilder, Reply as GatewayReply};
use crate::{Stack, stack_with};

pub const GATEWAY_KEY: &str = "sk-gateway-sdk-test-0123456789";

pub async fn messages_stack(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Stack {
    stack_with(|b| configure(b.env("GATEWAY_API_KEYS", format!("sdk:{GATEWAY_KEY}")))).await
}

async fn post(gateway: &Gateway, body: &Value) -> GatewayReply {
    post_with(gateway, body, &[]).await
}

async fn post_with(gateway: &Gateway, body: &Value, headers: &[(&str, &str)]) -> GatewayReply {
    let mut request = gateway
        .client
        .post(format!("{}/v1/messages", gateway.url))
        .header("x-api-key", GATEWAY_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    gateway.send(request).await
}

fn ask(text: &str) -> Value {
    json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    })
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

/// `(event name, data)` of each server-sent event.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let field = |name: &str| {
                e.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            let data = serde_json::from_str(&field("data:")).unwrap_or(Value::Null);
            (field("event:"), data)
        })
        .collect()
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_string())
        .collect()
}

fn assert_anthropic_error(reply: &GatewayReply, status: u16, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], error_type, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().len() > 5,
        "{body}"
    );
}

#[tokio::test]
async fn messages_are_forwarded_untouched_with_cache_control_and_beta() {
    let s = messages_stack(|b| b).await;
    let body = json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 300,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "A long document.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Summarise it."}
            ]}
        ],
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.3, "top_p": 0.9, "top_k": 40,
        "metadata": {"user_id": "u-42"},
        "future_field": {"kept": [1, 2.5, null]},
    });
    let beta = "prompt-caching-2024-07-31,token-efficient-tools-2025-02-19";
    let reply = post_with(&s.gateway, &body, &[("anthropic-beta", beta)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("x-cache"), Some("MISS"));
    let cost: f64 = reply.header("x-gateway-cost-usd").unwrap().parse().unwrap();
    assert!(cost > 0.0);
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(
        message["content"][0]["text"],
        "Echo: A long document.\nSummarise it."
    );

    let received = &s.fake.requests()[0];
    assert_eq!(received.body, body, "every field, cache_control included");
    assert_eq!(received.header("anthropic-beta"), Some(beta));
    assert_eq!(received.header("x-api-key"), Some(FAKE_API_KEY));
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn key_order_stream_and_metadata_do_not_change_the_key_but_beta_does() {
    let s = messages_stack(|b| b).await;
    let first = post(
        &s.gateway,
        &serde_json::from_str(
            r#"{"model":"claude-sonnet-4-6","max_tokens":256,"temperature":0,
                "messages":[{"role":"user","content":[{"type":"text","text":"Key order"}]}]}"#,
        )
        .unwrap(),
    )
    .await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let reordered = post(
        &s.gateway,
        &serde_json::from_str(
            r#"{"messages":[{"content":[{"text":"Key order","type":"text"}],"role":"user"}],
                "temperature":0,"metadata":{"user_id":"someone"},"max_tokens":256,
                "model":"claude-sonnet-4-6","stream":false}"#,
        )
        .unwrap(),
    )
    .await;
    assert_eq!(reordered.header("x-cache"), Some("HIT"));
    assert_eq!(reordered.header("x-gateway-cost-usd"), Some("0"));
    assert_eq!(reordered.text, first.text, "a hit is the stored bytes");
    assert_eq!(s.fake.calls(), 1);

    let other = ask("Key order");
    let with_beta = post_with(&s.gateway, &other, &[("anthropic-beta", "x-2025")]).await;
    let without = post(&s.gateway, &other).await;
    assert_eq!(with_beta.header("x-cache"), Some("MISS"));
    assert_eq!(without.header("x-cache"), Some("MISS"));
    assert_eq!(s.fake.calls(), 3);
}

#[tokio::test]
async fn streamed_and_whole_requests_share_an_entry_and_hits_replay_as_events() {
    let s = messages_stack(|b| b).await;
    // Whole first, then streamed: the stored message replays as a valid event sequence.
    let whole = post(&s.gateway, &ask("Share me")).await;
    assert_eq!(whole.header("x-cache"), Some("MISS"));
    let hit = post(&s.gateway, &streamed(ask("Share me"))).await;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(
        hit.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let replayed = events(&hit.text);
    let names: Vec<&str> = replayed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(streamed_text(&replayed), "Echo: Share me");
    let stored = whole.json();
    assert_eq!(replayed[0].1["message"]["id"], stored["id"]);
    assert_eq!(replayed[5].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(replayed[5].1["usage"], stored["usage"]);

    // Streamed first: relayed as it arrives, assembled, stored; a whole request gets it back.
    let miss = post(&s.gateway, &streamed(ask("Stream first"))).await;
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(
        miss.header("x-gateway-cost-usd"),
        None,
        "known only at the end"
    );
    let relayed = events(&miss.text);
    assert_eq!(
        relayed
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .count(),
        3
    );
    assert_eq!(streamed_text(&relayed), "Echo: Stream first");
    let whole_hit = post(&s.gateway, &ask("Stream first")).await;
    assert_eq!(whole_hit.header("x-cache"), Some("HIT"));
    let message = whole_hit.json();
    assert_eq!(message["content"][0]["text"], "Echo: Stream first");
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["usage"]["output_tokens"], 5,
        "message_delta's count"
    );
    assert_eq!(message["usage"]["input_tokens"], 3, "message_start's count");
    assert_eq!(s.fake.calls(), 2);

    let stats = s
        .gateway
        .get_with_key("/v1/stats", GATEWAY_KEY)
        .await
        .json();
    assert_eq!(stats["misses"], 2);
    assert_eq!(stats["hits"], 2);
    assert_eq!(stats["tokens"]["output"], 4 + 5);
    assert!(stats["cost_usd"].as_f64().unwrap() > 0.0);
    let line = s
        .gateway
        .logs()
        .lines()
        .find(|l| l.contains("stream finished"))
        .map(str::to_string)
        .expect("a streamed miss logs its cost when it ends");
    assert!(line.contains("cost_usd"), "{line}");
}

#[tokio::test]
async fn a_stream_the_caller_leaves_still_finishes_and_is_stored() {
    let s = messages_stack(|b| b).await;
    let response = s
        .gateway
        .client
        .post(format!("{}/v1/messages", s.gateway.url))
        .header("x-api-key", GATEWAY_KEY)
        .json(&streamed(ask("Leave early")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.redis.cmd(&["KEYS", "ai:v1:*"]).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the answer was stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hit = post(&s.gateway, &ask("Leave early")).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(s.fake.calls(), 1);
}

#[tokio::test]
async fn an_error_mid_stream_is_relayed_and_nothing_is_stored() {
    let s = messages_stack(|b| b).await;
    s.fake.push(Reply::overloaded_mid_stream());
    let reply = post(&s.gateway, &streamed(ask("Break"))).await;
    assert_eq!(reply.status, 200, "the stream had started");
    let relayed = events(&reply.text);
    let (name, data) = relayed.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert_eq!(s.redis.cmd(&["KEYS", "ai:v1:*"]).await, "");
    let again = post(&s.gateway, &streamed(ask("Break"))).await;
    assert_eq!(again.header("x-cache"), Some("MISS"));
    assert_eq!(streamed_text(&events(&again.text)), "Echo: Break");
    assert_eq!(s.fake.calls(), 2);
    let stats = s
        .gateway
        .get_with_key("/v1/stats", GATEWAY_KEY)
        .await
        .json();
    assert_eq!(stats["errors"], 1);
}

#[tokio::test]
async fn identical_streams_at_once_make_one_upstream_call() {
    let s = messages_stack(|b| b).await;
    s.fake.set_latency(Duration::from_millis(400));
    let body = streamed(ask("Together"));
    let (a, b) = tokio::join!(post(&s.gateway, &body), post(&s.gateway, &body));
    let mut caches = [a.header("x-cache").unwrap(), b.header("x-cache").unwrap()];
    caches.sort();
    assert_eq!(caches, ["COALESCED", "MISS"]);
    assert_eq!(streamed_text(&events(&a.text)), "Echo: Together");
    assert_eq!(streamed_text(&events(&b.text)), "Echo: Together");
    assert_eq!(s.fake.calls(), 1);
}

#[tokio::test]
async fn tool_calls_are_stored_and_replayed_whole() {
    let s = messages_stack(|b| b).await;
    let input = json!({"city": "Paris", "days": [1, 2], "note": "ünïcode \"quoted\""});
    s.fake.push(Reply::tool_use("get_weather", input.clone()));
    let mut body = streamed(ask("Weather?"));
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let miss = post(&s.gateway, &body).await;
    let partial: String = events(&miss.text)
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), input);
    body["stream"] = json!(false);
    let hit = post(&s.gateway, &body).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let message = hit.json();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][1]["type"], "tool_use");
    assert_eq!(message["content"][1]["input"], input);
    assert_eq!(s.fake.calls(), 1);
}

#[tokio::test]
async fn gateway_errors_on_messages_are_in_anthropics_shape() {
    let s = messages_stack(|b| {
        b.env("DAILY_REQUEST_LIMIT", "1")
            .env("MAX_BODY_BYTES", "4096")
    })
    .await;
    let g = &s.gateway;
    assert_anthropic_error(
        &post(g, &ask(&"x".repeat(5000))).await,
        413,
        "request_too_large",
    );
    let no_key = g
        .send(
            g.client
                .post(format!("{}/v1/messages", g.url))
                .json(&ask("x")),
        )
        .await;
    assert_anthropic_error(&no_key, 401, "authentication_error");
    let not_json = g
        .send(
            g.client
                .post(format!("{}/v1/messages", g.url))
                .header("x-api-key", GATEWAY_KEY)
                .body("{"),
        )
        .await;
    assert_anthropic_error(&not_json, 400, "invalid_request_error");
    assert_anthropic_error(
        &post(g, &json!({"model": "m", "max_tokens": 5, "messages": []})).await,
        400,
        "invalid_request_error",
    );
    let get = g
        .send(
            g.client
                .get(format!("{}/v1/messages", g.url))
                .header("x-api-key", GATEWAY_KEY),
        )
        .await;
    assert_anthropic_error(&get, 405, "api_error");
    let count_tokens = g
        .send(
            g.client
                .post(format!("{}/v1/messages/count_tokens", g.url))
                .header("x-api-key", GATEWAY_KEY)
                .json(&ask("x")),
        )
        .await;
    assert_anthropic_error(&count_tokens, 404, "not_found_error");
    // The gateway's own shape stays on its own routes.
    assert_eq!(g.get("/v1/stats").await.json()["code"], "unauthorized");

    assert_eq!(post(g, &ask("first")).await.status, 200);
    let limited = post(g, &streamed(ask("second"))).await;
    assert_anthropic_error(&limited, 429, "rate_limit_error");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.header("x-should-retry"), Some("false"));
    let stats = g.get_with_key("/v1/stats", GATEWAY_KEY).await.json();
    assert_eq!(stats["rate_limited"], 1);
    assert_eq!(s.fake.calls(), 1);
}

#[tokio::test]
async fn claudes_errors_keep_their_status_except_a_refused_gateway_key() {
    let s = messages_stack(|b| b.env("UPSTREAM_MAX_RETRIES", "0")).await;
    let g = &s.gateway;
    s.fake
        .push(Reply::bad_request("tools.0.input_schema: Field required"));
    let bad = post(g, &ask("a")).await;
    assert_anthropic_error(&bad, 400, "invalid_request_error");
    assert_eq!(
        bad.json()["error"]["message"],
        "tools.0.input_schema: Field required"
    );

    s.fake.push(Reply::rate_limited(7));
    let limited = post(g, &ask("b")).await;
    assert_anthropic_error(&limited, 429, "rate_limit_error");
    assert_eq!(limited.header("retry-after"), Some("7"));

    s.fake.push(Reply::overloaded());
    assert_anthropic_error(&post(g, &streamed(ask("c"))).await, 529, "overloaded_error");

    s.fake.push(Reply::server_error());
    assert_anthropic_error(&post(g, &ask("d")).await, 500, "api_error");

    s.fake.push(Reply::unauthorized());
    let refused = post(g, &streamed(ask("e"))).await;
    assert_anthropic_error(&refused, 502, "api_error");
    assert!(
        refused.text.contains("ANTHROPIC_API_KEY"),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains(FAKE_API_KEY));

    let stats = g.get_with_key("/v1/stats", GATEWAY_KEY).await.json();
    assert_eq!(stats["errors"], 5);
    assert_eq!(s.redis.cmd(&["KEYS", "ai:v1:*"]).await, "");
}
