//! The daily summary: the schedule's event over the Lambda runtime protocol, and the
//! `ai-gateway summary` command, against counters seeded straight into Redis.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::fake_anthropic::FakeAnthropic;
use crate::support::gateway::Gateway;
use crate::support::lambda_runtime::{FakeRuntime, LambdaFunction};
use crate::support::redis::RedisServer;
use crate::{event, seed_counters, utc_day};

/// The secret part of the webhook URL: it must never show up in the gateway's output.
const WEBHOOK_TOKEN: &str = "T0KEN-summary-8c1f2e9d";
const KEYS: &str =
    "acme:acme-secret-0123456789,globex:globex-secret-0123456789,dev:dev-key-change-me";

/// A webhook endpoint that keeps every body posted to it and answers with `status`.
struct Webhook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    async fn start(status: StatusCode) -> Webhook {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let receive = |State((bodies, status)): State<(Arc<Mutex<Vec<Value>>>, StatusCode)>,
                       Path(token): Path<String>,
                       body: Bytes| async move {
            assert_eq!(token, WEBHOOK_TOKEN);
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            bodies.lock().unwrap().push(body);
            status
        };
        let app = axum::Router::new()
            .route("/hooks/{token}", post(receive))
            .with_state((bodies.clone(), status));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Webhook {
            url: format!("http://{addr}/hooks/{WEBHOOK_TOKEN}"),
            bodies,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// acme and globex for `day`: 1,234 requests, 61.2% from cache, $4.12 spent, $6.40 saved.
async fn seed_day(redis: &RedisServer, day: &str) {
    seed_counters(
        redis,
        "acme",
        day,
        &[
            ("requests", 1000),
            ("hits", 700),
            ("misses", 300),
            ("upstream_calls", 300),
            ("cost_micros", 2_500_000),
            ("saved_micros", 5_830_000),
            ("input_tokens", 90_000),
            ("output_tokens", 60_000),
        ],
    )
    .await;
    seed_counters(
        redis,
        "globex",
        day,
        &[
            ("requests", 234),
            ("hits", 55),
            ("misses", 179),
            ("upstream_calls", 179),
            ("errors", 2),
            ("cost_micros", 1_620_000),
            ("saved_micros", 570_000),
        ],
    )
    .await;
}

/// What a summary of [`seed_day`] must say, whichever way it was run.
fn assert_summary(summary: &Value, day: &str) {
    assert_eq!(summary["date"], day, "{summary:#}");
    let tenants: Vec<&str> = summary["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(
        tenants,
        ["acme", "globex", "dev"],
        "every key's tenant, in order"
    );
    let acme = &summary["tenants"][0];
    assert_eq!(acme["requests"], 1000);
    assert_eq!(acme["hits"], 700);
    assert_eq!(acme["hit_rate"], 0.7);
    assert_eq!(acme["cost_usd"], 2.5);
    assert_eq!(acme["saved_usd"], 5.83);
    assert_eq!(acme["tokens"]["input"], 90_000);
    assert_eq!(summary["tenants"][1]["errors"], 2);
    assert_eq!(
        summary["tenants"][2]["requests"], 0,
        "a quiet tenant is zeros"
    );
    assert_eq!(summary["total"]["requests"], 1234);
    assert_eq!(summary["total"]["hits"], 755);
    assert_eq!(summary["total"]["cost_usd"], 4.12);
    assert_eq!(summary["total"]["saved_usd"], 6.4);
    assert_eq!(
        summary["text"],
        format!("ai-gateway {day}: 1,234 requests, 61.2% from cache, $4.12 spent, $6.40 saved")
    );
}

#[tokio::test]
async fn the_scheduled_event_summarises_yesterday_logs_one_line_and_posts_the_webhook() {
    let redis = RedisServer::start().await;
    let yesterday = utc_day(1);
    seed_day(&redis, &yesterday).await;
    // Today is not part of yesterday's summary.
    seed_counters(&redis, "acme", &utc_day(0), &[("requests", 5)]).await;
    let webhook = Webhook::start(StatusCode::OK).await;
    let fake = FakeAnthropic::start().await;
    let runtime = FakeRuntime::start(vec![
        event("daily-summary.json"),
        json!({"ai_gateway_task": "weekly_summary"}).to_string(),
        json!({"ai_gateway_task": "daily_summary", "date": "2026-13-01"}).to_string(),
        json!({"hello": "world"}).to_string(),
        event("generate.json"),
    ])
    .await;
    let mut function = LambdaFunction::start(
        Gateway::builder()
            .redis(&redis)
            .upstream(&fake)
            .env("GATEWAY_API_KEYS", KEYS)
            .env("SUMMARY_WEBHOOK_URL", &webhook.url),
        &runtime,
    );
    let answers = runtime.answers(5, &mut function).await;

    let summary = &answers[0];
    assert_summary(summary, &yesterday);
    assert_eq!(summary["webhook"], "posted");

    let posted = webhook.bodies();
    assert_eq!(posted.len(), 1, "posted once: {posted:#?}");
    let mut expected = summary.clone();
    expected.as_object_mut().unwrap().remove("webhook");
    assert_eq!(
        posted[0], expected,
        "the webhook gets what the invocation returns"
    );

    for (answer, error_type, names) in [
        (
            &answers[1],
            "UnknownTask",
            ["weekly_summary", "daily_summary"],
        ),
        (&answers[2], "InvalidTask", ["2026-13-01", "YYYY-MM-DD"]),
        (
            &answers[3],
            "UnsupportedEvent",
            ["HTTP event", "ai_gateway_task"],
        ),
    ] {
        let error = &answer["invocation_error"];
        assert_eq!(error["errorType"], error_type, "{answers:#?}");
        let message = error["errorMessage"].as_str().unwrap();
        assert!(names.iter().all(|n| message.contains(n)), "{message}");
    }

    // The same process still serves HTTP events afterwards.
    assert_eq!(answers[4]["statusCode"], 200, "{answers:#?}");
    assert_eq!(answers[4]["headers"]["x-cache"], "MISS");

    let lines = function.log_lines("daily_summary");
    assert_eq!(lines.len(), 1, "one log line per summary: {lines:#?}");
    assert_eq!(lines[0]["date"], yesterday.as_str());
    assert_eq!(lines[0]["level"], "INFO");
    let logged: Value = serde_json::from_str(lines[0]["tenants"].as_str().unwrap()).unwrap();
    assert_eq!(logged, summary["tenants"]);
    let logs = function.stop().await;
    assert!(
        !logs.contains(WEBHOOK_TOKEN),
        "the webhook URL is a secret:\n{logs}"
    );
    assert!(!logs.contains(&webhook.url));
}

#[tokio::test]
async fn the_summary_command_prints_the_json_and_survives_a_failing_webhook() {
    let redis = RedisServer::start().await;
    let day = utc_day(3);
    seed_day(&redis, &day).await;
    let webhook = Webhook::start(StatusCode::INTERNAL_SERVER_ERROR).await;
    let builder = Gateway::builder()
        .redis(&redis)
        .env("GATEWAY_API_KEYS", KEYS)
        .env("ALLOW_ANONYMOUS", "false")
        .env("SUMMARY_WEBHOOK_URL", &webhook.url);

    let (code, stdout, stderr) = builder.clone().run(&["summary", "--date", &day]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is the summary alone ({e}):\n{stdout}"));
    assert_summary(&summary, &day);
    assert_eq!(summary["webhook"], "failed");
    assert_eq!(webhook.bodies().len(), 1, "tried once");
    let warning = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["level"] == "WARN" && l["status"] == 500)
        .unwrap_or_else(|| panic!("a warning names the status:\n{stderr}"));
    assert!(warning["message"].as_str().unwrap().contains("webhook"));
    assert!(!stderr.contains(WEBHOOK_TOKEN), "{stderr}");

    // Without --date: yesterday, which has no counters here.
    let (code, stdout, _) = builder.clone().run(&["summary"]).await;
    assert_eq!(code, 0);
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["date"], utc_day(1));
    assert_eq!(summary["total"]["requests"], 0);

    let (code, stdout, stderr) = builder.run(&["summary", "--date", "yesterday"]).await;
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("--date") && stderr.contains("YYYY-MM-DD"),
        "{stderr}"
    );
}
