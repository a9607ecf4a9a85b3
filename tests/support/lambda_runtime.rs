//! A fake Lambda Runtime API on 127.0.0.1:0, and the real binary started against it the way
//! Lambda starts a `provided.al2023` function.
//!
//! The fake hands out the queued events one by one (`GET /2018-06-01/runtime/invocation/next`)
//! and keeps what the function answers: the response body, or for an invocation error
//! `{"invocation_error": <the error body>}`. Once the queue is empty it holds the poll open,
//! as the real runtime does between invocations.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Response, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::process::Child;

use super::gateway::{GatewayBuilder, keep_output};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:ai-gateway";
/// How long a test waits for the function to answer everything it was given.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct FakeRuntime {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub addr: String,
    answers: Arc<Mutex<Vec<Value>>>,
}

#[derive(Clone)]
struct Shared {
    queue: Arc<Mutex<VecDeque<String>>>,
    answers: Arc<Mutex<Vec<Value>>>,
}

impl FakeRuntime {
    /// Serves `events` (JSON texts), in order.
    pub async fn start(events: Vec<String>) -> FakeRuntime {
        let shared = Shared {
            queue: Arc::new(Mutex::new(events.into_iter().collect())),
            answers: Arc::new(Mutex::new(Vec::new())),
        };
        let answers = shared.answers.clone();
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeRuntime { addr, answers }
    }

    /// Waits until the function has answered `count` events, and returns the answers in order.
    /// Fails the test, with the function's output, if it exits or takes too long.
    pub async fn answers(&self, count: usize, function: &mut LambdaFunction) -> Vec<Value> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let answers = self.answers.lock().unwrap().clone();
            if answers.len() >= count {
                return answers;
            }
            if let Ok(Some(status)) = function.child.try_wait() {
                panic!(
                    "the function exited ({status}) after {} answers; its output:\n{}",
                    answers.len(),
                    function.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the function answered {} of {count} events; its output:\n{}",
                answers.len(),
                function.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn next(State(shared): State<Shared>) -> Response<Body> {
    let event = shared.queue.lock().unwrap().pop_front();
    let Some(event) = event else {
        // No more work: hold the poll open as the real runtime does.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Response::new(Body::empty());
    };
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    Response::builder()
        .header(
            "lambda-runtime-aws-request-id",
            format!("req-{}", fastrand::u64(..)),
        )
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", FUNCTION_ARN)
        .header(
            "lambda-runtime-trace-id",
            "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
        )
        .body(Body::from(event))
        .unwrap()
}

async fn respond(State(shared): State<Shared>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.answers.lock().unwrap().push(value);
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Shared>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    shared
        .answers
        .lock()
        .unwrap()
        .push(json!({ "invocation_error": value }));
    StatusCode::ACCEPTED
}

/// The binary running as a Lambda function against a [`FakeRuntime`].
pub struct LambdaFunction {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl LambdaFunction {
    /// Starts the binary from `builder` (its environment) with the variables Lambda sets.
    pub fn start(builder: GatewayBuilder, runtime: &FakeRuntime) -> LambdaFunction {
        let mut command = builder
            .env("AWS_LAMBDA_RUNTIME_API", &runtime.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "ai-gateway")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ai-gateway")
            .command();
        let mut child = command.spawn().expect("the function binary starts");
        let logs = keep_output(&mut child, |_| {});
        LambdaFunction { child, logs }
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The JSON log lines with this `message`.
    pub fn log_lines(&self, message: &str) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    pub async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        self.logs()
    }
}
