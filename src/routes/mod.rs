//! The one router, used both by the local server and under Lambda. One file per route; the
//! middleware here authenticates callers and writes one log line per request.

mod dashboard;
mod generate;
mod health;
mod messages;
pub mod stats;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use http_body_util::BodyExt;

use crate::auth;
use crate::error::{ErrorCode, GatewayError};
use crate::gateway::{Caller, Gateway};

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/generate", post(generate::generate))
        .route("/", post(generate::generate))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/stats", get(stats::stats))
        .route("/health", get(health::health))
        .route("/dashboard", get(dashboard::dashboard))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            gateway.clone(),
            authenticate,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(gateway)
}

/// Details a handler leaves in the response for the request log line.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    pub cache: Option<&'static str>,
    pub cache_key: Option<String>,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
    pub upstream_ms: Option<u64>,
    /// Only when `LOG_PROMPTS=true`.
    pub prompt: Option<String>,
    pub system: Option<String>,
}

/// Paths an Anthropic SDK calls: their errors, the middleware's and fallbacks' too, come in
/// Anthropic's shape so the SDK raises its usual exceptions.
fn speaks_anthropic(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

fn error_response(path: &str, error: GatewayError) -> Response {
    if speaks_anthropic(path) {
        error.into_anthropic_response()
    } else {
        error.into_gateway_response()
    }
}

/// Routes anyone may call: the health check and the dashboard page (it asks for a key itself).
fn is_open(path: &str) -> bool {
    matches!(path, "/health" | "/dashboard")
}

async fn authenticate(
    State(gateway): State<Arc<Gateway>>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    match auth::caller_for(&gateway.config, request.headers()) {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => error_response(request.uri().path(), GatewayError::Unauthorized),
    }
}

/// One line per request, with what the handler learned. No prompt text unless LOG_PROMPTS.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The matched route is shared (an Arc); only an unmatched path is copied.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let unmatched = match matched {
        Some(_) => None,
        None => Some(request.uri().path().chars().take(200).collect::<String>()),
    };
    let route = matched
        .as_ref()
        .map(MatchedPath::as_str)
        .or(unmatched.as_deref());
    let mut response = next.run(request).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let status = response.status().as_u16();
    // Taken, not cloned: nothing after this layer reads them.
    let extensions = response.extensions_mut();
    let log = extensions.remove::<RequestLog>().unwrap_or_default();
    let caller = extensions.remove::<Caller>().map(|c| c.tenant);
    let error = extensions.get::<ErrorCode>().map(|c| c.0);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                method = %method,
                route,
                status,
                latency_ms,
                tenant = caller,
                cache = log.cache,
                cache_key = log.cache_key,
                model = log.model,
                cost_usd = log.cost_usd,
                upstream_ms = log.upstream_ms,
                error,
                prompt = log.prompt,
                system = log.system,
                "request"
            )
        };
    }
    if status >= 500 {
        line!(error);
    } else if status >= 400 {
        line!(warn);
    } else {
        line!(info);
    }
    response
}

/// Reads a request body up to `limit` bytes; more is a 413.
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, GatewayError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::PayloadTooLarge { limit_bytes: limit })
        }
        Err(e) => Err(GatewayError::InvalidRequest(format!(
            "The request body could not be read: {e}."
        ))),
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    let error = GatewayError::NotFound {
        method: method.to_string(),
        path: uri.path().chars().take(200).collect(),
    };
    error_response(uri.path(), error)
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    let allowed = match path.as_str() {
        "/v1/generate" | "/" | "/v1/messages" => "POST",
        _ => "GET",
    };
    let error = GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path,
        allowed,
    };
    let mut response = error_response(uri.path(), error);
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
