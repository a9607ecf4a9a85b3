//! The Lambda entry: one handler for two kinds of events.
//!
//! - HTTP events (API Gateway REST v1, HTTP API v2, Function URLs, ALB) go through lambda_http's
//!   own conversion into the same router the local server uses, and back.
//! - `{"ai_gateway_task": "daily_summary"}` (the EventBridge schedule in `template.yaml`) runs
//!   the [daily summary](crate::summary); an optional `"date": "YYYY-MM-DD"` re-sends a past day.
//!
//! lambda_http's own `run` accepts HTTP events only, so the runtime is driven here with a plain
//! JSON payload that is told apart first.

use std::sync::Arc;

use axum::Router;
use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, RequestExt};
use serde_json::Value;
use tower::ServiceExt;
use tower::util::MapRequest;

use crate::gateway::Gateway;
use crate::{clock, routes, summary};

/// The field that marks a task event; anything without it is treated as an HTTP event.
const TASK_FIELD: &str = "ai_gateway_task";

/// The router behind lambda_http's event-to-request-and-back conversion.
type HttpHandler = Adapter<
    'static,
    axum::response::Response,
    MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request>,
>;

/// API Gateway puts a named stage in the path (`/prod/v1/generate`: REST APIs always, HTTP APIs
/// on a stage other than `$default`); route on the path the client meant.
pub fn strip_stage(mut request: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::request::RequestContext;
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return request;
    };
    let path = match request.uri().path().strip_prefix(&format!("/{stage}")) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => return request,
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

pub async fn run(gateway: Arc<Gateway>) -> Result<(), String> {
    let stage_stripped: fn(lambda_http::Request) -> lambda_http::Request = strip_stage;
    let http: HttpHandler = Adapter::from(MapRequest::new(
        routes::router(gateway.clone()),
        stage_stripped,
    ));
    let handler =
        service_fn(move |event: LambdaEvent<Value>| invoke(gateway.clone(), http.clone(), event));
    lambda_runtime::run(handler)
        .await
        .map_err(|e| format!("Lambda runtime error: {e}"))
}

/// One invocation. An `Err` becomes an invocation error: the schedule retries those.
async fn invoke(
    gateway: Arc<Gateway>,
    http: HttpHandler,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic> {
    let LambdaEvent { payload, context } = event;
    if let Some(task) = payload.get(TASK_FIELD) {
        return run_task(&gateway, task, payload.get("date")).await;
    }
    let request: LambdaRequest = serde_json::from_value(payload).map_err(|e| {
        failure(
            "UnsupportedEvent",
            format!(
                "the event is neither an HTTP event (API Gateway, Function URL, ALB) nor an {TASK_FIELD} event: {e}"
            ),
        )
    })?;
    let response = match http.oneshot(LambdaEvent::new(request, context)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    serde_json::to_value(response)
        .map_err(|e| failure("ResponseError", format!("cannot encode the response: {e}")))
}

async fn run_task(
    gateway: &Gateway,
    task: &Value,
    date: Option<&Value>,
) -> Result<Value, Diagnostic> {
    match task.as_str() {
        Some("daily_summary") => {
            let day = match date {
                None | Some(Value::Null) => summary::default_day(),
                Some(date) => date.as_str().and_then(clock::parse_day).ok_or_else(|| {
                    failure(
                        "InvalidTask",
                        format!(
                            "daily_summary: `date` is {date}; accepted: a UTC day as \"YYYY-MM-DD\""
                        ),
                    )
                })?,
            };
            let summary = summary::run(gateway, day)
                .await
                .map_err(|e| failure("SummaryFailed", e))?;
            serde_json::to_value(summary)
                .map_err(|e| failure("ResponseError", format!("cannot encode the summary: {e}")))
        }
        _ => Err(failure(
            "UnknownTask",
            format!("unknown {TASK_FIELD} {task}; accepted: \"daily_summary\""),
        )),
    }
}

fn failure(error_type: &str, error_message: String) -> Diagnostic {
    tracing::error!(error_type, error = %error_message, "invocation failed");
    Diagnostic {
        error_type: error_type.to_string(),
        error_message,
    }
}
