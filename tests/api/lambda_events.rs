//! The Lambda path: each event in `events/` through lambda_http's request parsing into the
//! router, and the real binary speaking the Lambda runtime protocol.

use std::collections::HashMap;

use ai_gateway::config::Config;
use ai_gateway::{lambda, startup};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::event;
use crate::support::fake_anthropic::FakeAnthropic;
use crate::support::gateway::Gateway;
use crate::support::lambda_runtime::{FakeRuntime, LambdaFunction};

/// What each event file must produce, in order (a file listed twice is sent twice).
const EXPECTED: &[(&str, u16, Option<&str>)] = &[
    ("generate.json", 200, Some("MISS")),
    ("generate.json", 200, Some("HIT")),
    ("generate-rest-v1.json", 200, Some("HIT")),
    ("generate-named-stage.json", 200, Some("HIT")),
    ("generate-invalid-json.json", 400, None),
    ("generate-unknown-field.json", 400, None),
    ("generate-unauthorized.json", 401, None),
    ("stats.json", 200, None),
    ("health.json", 200, None),
    ("not-found.json", 404, None),
    ("messages.json", 200, Some("MISS")),
];

/// Events that are not HTTP requests, exercised elsewhere.
const NOT_HTTP: &[&str] = &["daily-summary.json", "env.example.json"];

fn gateway_config() -> Config {
    let vars: HashMap<&str, &str> = [
        ("GATEWAY_API_KEYS", "dev:dev-key-change-me"),
        ("LOG_FORMAT", "json"),
    ]
    .into();
    Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
}

#[tokio::test]
async fn every_event_file_goes_through_lambda_http_to_the_router() {
    let app = startup::app(startup::build_gateway(gateway_config()).await.unwrap());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.ends_with(".json") && !NOT_HTTP.contains(&f.as_str()))
        .collect();
    files.sort();
    for file in &files {
        assert!(
            EXPECTED.iter().any(|(f, ..)| f == file),
            "events/{file} has no expected status in this test"
        );
    }
    let mut saved = None;
    for (file, status, cache) in EXPECTED {
        let text = event(file);
        let request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("events/{file} is not an API Gateway event: {e}"));
        let request = lambda::strip_stage(request);
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "events/{file}");
        let x_cache = response
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(x_cache.as_deref(), *cache, "events/{file}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&body).expect("every response is JSON");
        if *cache == Some("MISS") {
            saved = json["cost"].as_f64();
        }
        if *cache == Some("HIT") {
            assert_eq!(json["saved"].as_f64(), saved, "events/{file}");
        }
    }
}

#[tokio::test]
async fn a_streamed_message_comes_back_from_lambda_as_one_buffered_event_stream() {
    let app = startup::app(startup::build_gateway(gateway_config()).await.unwrap());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/messages.json")).unwrap())
            .unwrap();
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body["stream"] = Value::Bool(true);
    event["body"] = Value::String(body.to_string());
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("content-length");
    for expected in ["MISS", "HIT"] {
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = app
            .clone()
            .oneshot(lambda::strip_stage(request))
            .await
            .unwrap();
        // What lambda_http::run does with the body: buffer it whole.
        let response = lambda_http::IntoResponse::into_response(response).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-cache"], expected);
        let lambda_http::Body::Text(text) = response.body() else {
            panic!("an event stream is sent as text, not base64");
        };
        assert!(text.starts_with("event: message_start\n"), "{text}");
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }
}

#[tokio::test]
async fn the_binary_serves_api_gateway_events_over_the_lambda_runtime_protocol() {
    let generate = event("generate.json");
    let runtime = FakeRuntime::start(vec![
        generate.clone(),
        generate,
        event("generate-unauthorized.json"),
    ])
    .await;
    let fake = FakeAnthropic::start().await;
    let mut function = LambdaFunction::start(
        Gateway::builder()
            .upstream(&fake)
            .env("GATEWAY_API_KEYS", "dev:dev-key-change-me"),
        &runtime,
    );
    let responses = runtime.answers(3, &mut function).await;
    let statuses: Vec<_> = responses.iter().map(|r| r["statusCode"].as_u64()).collect();
    assert_eq!(
        statuses,
        vec![Some(200), Some(200), Some(401)],
        "{responses:#?}"
    );
    assert_eq!(responses[0]["headers"]["x-cache"], "MISS");
    assert_eq!(responses[1]["headers"]["x-cache"], "HIT");
    let body: Value = serde_json::from_str(responses[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["cached"], true);
    assert_eq!(fake.calls(), 1);
    function.stop().await;
}
