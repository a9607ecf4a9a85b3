//! `openapi.yaml` against the real API: every status code the routes can be made to answer,
//! each real body validated (JSON Schema 2020-12, as OpenAPI 3.1 defines its schemas) against
//! the schema the spec gives for that route and status, and the documented headers with it.
//!
//! The checking itself (closed schemas, refs, headers) is in `tests/support/openapi.rs`.
//!
//! `POST /v1/messages` is in the spec but not built yet; it is skipped.

use serde_json::{Value, json};

use crate::support::fake_anthropic::Reply;
use crate::support::gateway::{Gateway, Reply as GatewayReply};
use crate::support::openapi::{Spec, closed};
use crate::{opener, stack_with};

const MAIN_KEY: &str = "main-secret-0123456789";
const LIMITED_KEY: &str = "limited-secret-0123456789";
const BROKE_KEY: &str = "broke-secret-0123456789";
async fn send(
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<String>,
) -> GatewayReply {
    let mut request = gateway
        .client
        .request(method, format!("{}{path}", gateway.url));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    gateway.send(request).await
}

async fn generate(gateway: &Gateway, key: &str, body: &Value) -> GatewayReply {
    send(
        gateway,
        reqwest::Method::POST,
        "/v1/generate",
        Some(key),
        Some(body.to_string()),
    )
    .await
}

/// Each `POST /v1/generate` reply is checked against `POST /` too: one handler answers both.
fn check_generate(spec: &mut Spec, what: &str, reply: &GatewayReply) {
    spec.check("post", "/v1/generate", what, reply);
    spec.check("post", "/", what, reply);
}

fn expect(reply: &GatewayReply, status: u16, code: Option<&str>) {
    assert_eq!(reply.status, status, "{}", reply.text);
    if let Some(code) = code {
        assert_eq!(reply.json()["code"], code, "{}", reply.text);
    }
}

#[tokio::test]
async fn every_response_the_routes_give_matches_openapi_yaml() {
    let mut spec = Spec::load();
    let mut s = stack_with(|b| {
        b.env(
            "GATEWAY_API_KEYS",
            format!("main:{MAIN_KEY},limited:{LIMITED_KEY},broke:{BROKE_KEY}"),
        )
        .env(
            "TENANT_LIMITS",
            r#"{"limited":{"daily_request_limit":1},"broke":{"daily_budget_usd":0}}"#,
        )
        .env("MAX_BODY_BYTES", "2048")
        .env("UPSTREAM_MAX_RETRIES", "0")
        .env("UPSTREAM_TIMEOUT_SECS", "1")
        .env("REDIS_FAILURE_MODE", "closed")
    })
    .await;
    let g = &s.gateway;
    use reqwest::Method;

    let miss = generate(g, MAIN_KEY, &opener("Ada")).await;
    expect(&miss, 200, None);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    check_generate(&mut spec, "miss", &miss);
    let hit = generate(g, MAIN_KEY, &opener("Ada")).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    check_generate(&mut spec, "hit", &hit);
    let root = send(
        g,
        Method::POST,
        "/",
        Some(MAIN_KEY),
        Some(opener("Bob").to_string()),
    )
    .await;
    expect(&root, 200, None);
    spec.check("post", "/", "POST /", &root);

    let cases = [
        (
            "invalid_json",
            send(
                g,
                Method::POST,
                "/v1/generate",
                Some(MAIN_KEY),
                Some("{\"prompt\": ".into()),
            )
            .await,
            400,
        ),
        (
            "invalid_request",
            generate(g, MAIN_KEY, &json!({"promt": "hi"})).await,
            400,
        ),
        (
            "unauthorized",
            generate(g, "not-a-key-0123456789", &opener("Ada")).await,
            401,
        ),
        (
            "method_not_allowed",
            send(g, Method::GET, "/v1/generate", Some(MAIN_KEY), None).await,
            405,
        ),
        (
            "payload_too_large",
            generate(g, MAIN_KEY, &json!({"prompt": "x".repeat(4096)})).await,
            413,
        ),
    ];
    for (code, reply, status) in &cases {
        expect(reply, *status, Some(code));
        check_generate(&mut spec, code, reply);
    }

    let first = generate(g, LIMITED_KEY, &opener("Cy")).await;
    expect(&first, 200, None);
    let limited = generate(g, LIMITED_KEY, &opener("Dee")).await;
    expect(&limited, 429, Some("rate_limited"));
    check_generate(&mut spec, "rate_limited", &limited);
    let broke = generate(g, BROKE_KEY, &opener("Eve")).await;
    expect(&broke, 429, Some("budget_exceeded"));
    check_generate(&mut spec, "budget_exceeded", &broke);

    // An entry that no longer parses is our fault: 500.
    let cache_key = miss.json()["cache_key"].as_str().unwrap().to_string();
    s.redis.cmd(&["HSET", &cache_key, "v", "not json"]).await;
    let broken = generate(g, MAIN_KEY, &opener("Ada")).await;
    expect(&broken, 500, Some("internal_error"));
    check_generate(&mut spec, "internal_error", &broken);

    s.fake
        .push(Reply::bad_request("max_tokens: too large for this model"));
    let upstream_error = generate(g, MAIN_KEY, &opener("Fay")).await;
    expect(&upstream_error, 502, Some("upstream_error"));
    check_generate(&mut spec, "upstream_error", &upstream_error);
    s.fake.push(Reply::overloaded());
    let overloaded = generate(g, MAIN_KEY, &opener("Gus")).await;
    expect(&overloaded, 503, Some("upstream_overloaded"));
    check_generate(&mut spec, "upstream_overloaded", &overloaded);
    s.fake.push(Reply::Hang);
    let timeout = generate(g, MAIN_KEY, &opener("Hal")).await;
    expect(&timeout, 504, Some("upstream_timeout"));
    check_generate(&mut spec, "upstream_timeout", &timeout);

    let day = send(g, Method::GET, "/v1/stats", Some(MAIN_KEY), None).await;
    expect(&day, 200, None);
    assert!(day.json()["date"].is_string());
    spec.check("get", "/v1/stats", "stats (one day)", &day);
    let range = send(g, Method::GET, "/v1/stats?days=3", Some(MAIN_KEY), None).await;
    expect(&range, 200, None);
    assert_eq!(range.json()["days"].as_array().unwrap().len(), 3);
    spec.check("get", "/v1/stats", "stats (days=3)", &range);
    for (what, reply, status, code) in [
        (
            "stats invalid_request",
            send(g, Method::GET, "/v1/stats?days=0", Some(MAIN_KEY), None).await,
            400,
            "invalid_request",
        ),
        (
            "stats unauthorized",
            send(g, Method::GET, "/v1/stats", None, None).await,
            401,
            "unauthorized",
        ),
        (
            "stats method_not_allowed",
            send(g, Method::POST, "/v1/stats", Some(MAIN_KEY), None).await,
            405,
            "method_not_allowed",
        ),
    ] {
        expect(&reply, status, Some(code));
        spec.check("get", "/v1/stats", what, &reply);
    }

    let health = send(g, Method::GET, "/health", None, None).await;
    expect(&health, 200, None);
    spec.check("get", "/health", "health (redis)", &health);
    let health_post = send(g, Method::POST, "/health", None, None).await;
    expect(&health_post, 405, Some("method_not_allowed"));
    spec.check("get", "/health", "POST /health", &health_post);

    let dashboard = send(g, Method::GET, "/dashboard", None, None).await;
    expect(&dashboard, 200, None);
    spec.check("get", "/dashboard", "dashboard", &dashboard);
    let dashboard_post = send(g, Method::POST, "/dashboard", None, None).await;
    expect(&dashboard_post, 405, Some("method_not_allowed"));
    spec.check("get", "/dashboard", "POST /dashboard", &dashboard_post);

    // No route: the spec's NotFound response (an unknown path has no entry of its own).
    let not_found = send(g, Method::GET, "/nope", Some(MAIN_KEY), None).await;
    expect(&not_found, 404, Some("not_found"));
    let response = spec
        .resolve(&json!({"$ref": "#/components/responses/NotFound"}))
        .clone();
    spec.check_response(&response, "not_found", &not_found);

    // Redis gone, REDIS_FAILURE_MODE=closed.
    s.redis.stop().await;
    let g = &s.gateway;
    let store_down = generate(g, MAIN_KEY, &opener("Ivy")).await;
    expect(&store_down, 503, Some("store_unavailable"));
    check_generate(&mut spec, "store_unavailable", &store_down);
    let stats_down = send(g, Method::GET, "/v1/stats", Some(MAIN_KEY), None).await;
    expect(&stats_down, 503, Some("store_unavailable"));
    spec.check("get", "/v1/stats", "stats store_unavailable", &stats_down);
    let health_down = send(g, Method::GET, "/health", None, None).await;
    assert_eq!(health_down.json()["redis"], "down");
    spec.check("get", "/health", "health (redis down)", &health_down);

    // The memory store and the offline mock.
    let memory = Gateway::builder().spawn().await;
    let health = send(&memory, Method::GET, "/health", None, None).await;
    assert_eq!(health.json()["redis"], "none");
    spec.check("get", "/health", "health (memory store)", &health);
    let mock = generate(&memory, "unused", &opener("Jo")).await;
    assert_eq!(mock.header("x-upstream"), Some("mock"));
    check_generate(&mut spec, "mock upstream", &mock);

    let unchecked: Vec<_> = spec
        .documented()
        .difference(&spec.checked)
        .cloned()
        .collect();
    if !unchecked.is_empty() {
        spec.failures.push(format!(
            "documented, but never produced by this test: {unchecked:?}"
        ));
    }
    assert!(
        spec.failures.is_empty(),
        "openapi.yaml and the API disagree:\n{}",
        spec.failures.join("\n")
    );
}

/// The spec's own examples are what a reader copies: they must pass the schemas beside them.
#[test]
fn the_examples_in_openapi_yaml_match_their_schemas() {
    let mut spec = Spec::load();
    let mut media = Vec::new();
    for (path, item) in spec.doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            if let Some(body) = operation.get("requestBody") {
                media.push((
                    format!("{name} request"),
                    spec.resolve(body)["content"].clone(),
                ));
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let content = spec.resolve(response)["content"].clone();
                media.push((format!("{name} {status}"), content));
            }
        }
    }
    let mut checked = 0;
    for (what, content) in media {
        for (media_type, entry) in content.as_object().into_iter().flatten() {
            let schema = closed(&entry["schema"], false);
            for (example, value) in entry["examples"].as_object().into_iter().flatten() {
                let value = spec.resolve(value)["value"].clone();
                spec.validate(
                    &schema,
                    &value,
                    &format!("{what} {media_type} example {example}"),
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} examples found");
    assert!(
        spec.failures.is_empty(),
        "examples that do not match their schema:\n{}",
        spec.failures.join("\n")
    );
}
