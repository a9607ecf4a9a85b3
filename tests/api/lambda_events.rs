//! The Lambda path: each event in `events/` through lambda_http's request parsing into the
//! router, and the real binary speaking the Lambda runtime protocol.

use std::collections::HashMap;
use std::sync::Arc;

use ai_gateway::config::Config;
use ai_gateway::{lambda, startup};
use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// What each event file must produce, in order (a file listed twice is sent twice).
const EXPECTED: &[(&str, u16, Option<&str>)] = &[
    ("generate.json", 200, Some("MISS")),
    ("generate.json", 200, Some("HIT")),
    ("generate-rest-v1.json", 200, Some("HIT")),
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
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
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

/// A minimal Lambda Runtime API: hands out the queued events and collects the responses.
struct FakeRuntime {
    addr: String,
    responses: Arc<tokio::sync::Mutex<Vec<Value>>>,
}

async fn fake_runtime(events: Vec<String>) -> FakeRuntime {
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    type Shared = (
        Arc<tokio::sync::Mutex<std::collections::VecDeque<String>>>,
        Arc<tokio::sync::Mutex<Vec<Value>>>,
    );
    let queue = Arc::new(tokio::sync::Mutex::new(events.into_iter().collect()));
    let responses = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let next = |State((queue, _)): State<Shared>| async move {
        let event = queue.lock().await.pop_front();
        match event {
            Some(event) => {
                let id = format!("req-{}", fastrand::u64(..));
                let deadline = (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 30_000)
                    .to_string();
                axum::http::Response::builder()
                    .header("lambda-runtime-aws-request-id", id)
                    .header("lambda-runtime-deadline-ms", deadline)
                    .header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:ai-gateway",
                    )
                    .header(
                        "lambda-runtime-trace-id",
                        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
                    )
                    .body(Body::from(event))
                    .unwrap()
            }
            None => {
                // No more work: hold the poll open as the real runtime does.
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                axum::http::Response::new(Body::empty())
            }
        }
    };
    let respond = |State((_, responses)): State<Shared>,
                   Path(_id): Path<String>,
                   body: axum::body::Bytes| async move {
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        responses.lock().await.push(value);
        axum::http::StatusCode::ACCEPTED
    };
    let error = |State((_, responses)): State<Shared>,
                 Path(_id): Path<String>,
                 body: axum::body::Bytes| async move {
        let text = String::from_utf8_lossy(&body).to_string();
        responses
            .lock()
            .await
            .push(serde_json::json!({"invocation_error": text}));
        axum::http::StatusCode::ACCEPTED
    };
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state((queue, responses.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeRuntime { addr, responses }
}

#[tokio::test]
async fn the_binary_serves_api_gateway_events_over_the_lambda_runtime_protocol() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let generate = std::fs::read_to_string(format!("{dir}/generate.json")).unwrap();
    let unauthorized =
        std::fs::read_to_string(format!("{dir}/generate-unauthorized.json")).unwrap();
    let runtime = fake_runtime(vec![generate.clone(), generate, unauthorized]).await;
    let fake = crate::support::fake_anthropic::FakeAnthropic::start().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ai-gateway"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "ai-gateway")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ai-gateway")
        .env(
            "ANTHROPIC_API_KEY",
            crate::support::fake_anthropic::FAKE_API_KEY,
        )
        .env("ANTHROPIC_BASE_URL", fake.url())
        .env("GATEWAY_API_KEYS", "dev:dev-key-change-me")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while runtime.responses.lock().await.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the function did not answer 3 events"
        );
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "the function exited ({status}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let responses = runtime.responses.lock().await.clone();
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
    let _ = child.kill().await;
}
