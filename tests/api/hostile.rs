//! Hostile input: any bytes in, a 4xx JSON error (or an answer) out, never a panic or a 5xx.
//! Property tests drive the router in process, with the offline mock upstream and the memory
//! store, for a bounded number of cases (PROPTEST_CASES raises it).

use std::collections::HashMap;

use ai_gateway::config::Config;
use ai_gateway::startup;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

fn app() -> Router {
    let vars: HashMap<&str, &str> = [("MAX_BODY_BYTES", "8192"), ("LOG_FORMAT", "json")].into();
    let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { startup::app(startup::build_gateway(config).await.unwrap()) })
}

/// Sends one request; returns the status and the body, which must be JSON.
fn send(app: &Router, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {bytes:?}"));
        (status, json)
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::hash_map(
                prop_oneof![
                    Just("prompt".to_string()),
                    Just("system".to_string()),
                    Just("model".to_string()),
                    Just("max_tokens".to_string()),
                    Just("temperature".to_string()),
                    Just("cache".to_string()),
                    Just("ttl_secs".to_string()),
                    Just("contact_id".to_string()),
                    ".{0,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn assert_handled(status: u16, body: &Value) {
    assert!(
        status == 200 || (400..500).contains(&status),
        "status {status}: {body}"
    );
    if status != 200 {
        assert!(
            body["error"].is_string() && body["code"].is_string(),
            "{body}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_get_a_json_answer(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let app = app();
        let (status, body) = send(&app, "POST", "/v1/generate", bytes);
        assert_handled(status, &body);
    }

    #[test]
    fn any_json_gets_a_json_answer(value in json_value()) {
        let app = app();
        let (status, body) = send(&app, "POST", "/v1/generate", value.to_string().into_bytes());
        assert_handled(status, &body);
    }

    #[test]
    fn any_path_and_method_get_a_json_answer(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("PATCH")],
        path in "/[a-zA-Z0-9/_.%-]{0,40}",
        query in "[a-z=&0-9-]{0,20}",
    ) {
        let app = app();
        let (status, body) = send(&app, method, &format!("{path}?{query}"), Vec::new());
        assert_handled(status, &body);
    }
}

#[test]
fn deep_nesting_and_oversized_values_are_refused_cleanly() {
    let app = app();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, body) = send(&app, "POST", "/v1/generate", deep.into_bytes());
    assert_eq!(status, 413, "{body}");
    let deep = format!(r#"{{"prompt":{}1{}}}"#, "[".repeat(3000), "]".repeat(3000));
    let (status, body) = send(&app, "POST", "/v1/generate", deep.into_bytes());
    assert_eq!(status, 400, "{body}");
    let (status, _) = send(&app, "POST", "/v1/generate", vec![b'a'; 9000]);
    assert_eq!(status, 413);
    let long_id = json!({"prompt": "x", "contact_id": "c".repeat(300)});
    let (status, body) = send(
        &app,
        "POST",
        "/v1/generate",
        long_id.to_string().into_bytes(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = send(
        &app,
        "POST",
        "/v1/generate",
        b"{\"prompt\":\"\xff\xfe\"}".to_vec(),
    );
    assert_eq!(status, 400, "{body}");
    let control = json!({"prompt": "x", "template_id": "a\u{0}b"});
    let (status, _) = send(
        &app,
        "POST",
        "/v1/generate",
        control.to_string().into_bytes(),
    );
    assert_eq!(status, 400);
}

#[test]
fn settings_never_print_their_secrets() {
    let vars: HashMap<&str, &str> = [
        ("ANTHROPIC_API_KEY", "sk-ant-debug-secret-0001"),
        ("GATEWAY_API_KEYS", "acme:gateway-debug-secret-0002"),
        (
            "REDIS_URL",
            "rediss://:redis-debug-secret-0003@localhost:6380",
        ),
        (
            "SUMMARY_WEBHOOK_URL",
            "https://hooks.example.invalid/debug-secret-0004",
        ),
    ]
    .into();
    let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    let printed = format!("{config:?} {config:#?}");
    for secret in ["0001", "0002", "0003", "0004"] {
        assert!(
            !printed.contains(&format!("debug-secret-{secret}")),
            "{printed}"
        );
    }
}
