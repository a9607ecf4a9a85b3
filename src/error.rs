//! One error type for every way a request can fail: its status, machine code, log level and
//! JSON body live together here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("The request body is not valid JSON: {0}.")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(
        "There is no route {method} {path}. Routes: POST /v1/generate, POST /v1/messages, GET /v1/stats, GET /health, GET /dashboard."
    )]
    NotFound { method: String, path: String },
    #[error("{path} does not accept {method}; use {allowed}.")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static str,
    },
    #[error("The request body is larger than {limit_bytes} bytes (MAX_BODY_BYTES).")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("A valid gateway key is required in the x-api-key header (or Authorization: Bearer).")]
    Unauthorized,
    #[error("The daily limit of {limit} requests is reached; it resets at 00:00 UTC.")]
    RateLimited { limit: u64, retry_after_secs: u64 },
    #[error(
        "Today's budget of ${budget_usd:.2} is spent; cached answers are still served, new calls resume at 00:00 UTC."
    )]
    BudgetExceeded {
        budget_usd: f64,
        retry_after_secs: u64,
    },
    /// `upstream_status` is Claude's HTTP status; `None` when no answer came (connection,
    /// malformed response).
    #[error("Claude answered with an error ({error_type}): {message}")]
    Upstream {
        upstream_status: Option<u16>,
        error_type: String,
        message: String,
    },
    #[error(
        "Claude is overloaded or rate limited ({error_type}: {message}); retry after {retry_after_secs} s."
    )]
    UpstreamOverloaded {
        upstream_status: u16,
        error_type: String,
        message: String,
        retry_after_secs: u64,
    },
    #[error(
        "Claude did not answer within {secs} s; the request was not cached, so it is safe to retry."
    )]
    UpstreamTimeout { secs: u64 },
    #[error("The cache store is unavailable and REDIS_FAILURE_MODE is closed; retry shortly.")]
    StoreUnavailable,
    #[error("Internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidJson(_) | GatewayError::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::NotFound { .. } => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::RateLimited { .. } | GatewayError::BudgetExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamOverloaded { .. } | GatewayError::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::InvalidJson(_) => "invalid_json",
            GatewayError::InvalidRequest(_) => "invalid_request",
            GatewayError::NotFound { .. } => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::PayloadTooLarge { .. } => "payload_too_large",
            GatewayError::Unauthorized => "unauthorized",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::BudgetExceeded { .. } => "budget_exceeded",
            GatewayError::Upstream { .. } => "upstream_error",
            GatewayError::UpstreamOverloaded { .. } => "upstream_overloaded",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::StoreUnavailable => "store_unavailable",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// Client mistakes are warnings; our faults and the upstream's are errors.
    pub fn is_our_fault(&self) -> bool {
        self.status().is_server_error()
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited {
                retry_after_secs, ..
            }
            | GatewayError::BudgetExceeded {
                retry_after_secs, ..
            }
            | GatewayError::UpstreamOverloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            GatewayError::StoreUnavailable => Some(1),
            _ => None,
        }
    }

    /// The status `/v1/messages` answers with. Claude's own errors keep Claude's status, so an
    /// SDK raises the same exception it would without the gateway — except a 401: that is
    /// Claude refusing the gateway's key, not the caller's, so it stays a 502.
    pub fn anthropic_status(&self) -> StatusCode {
        let upstream = match self {
            GatewayError::Upstream {
                upstream_status: Some(status),
                ..
            } if *status != 401 => Some(*status),
            GatewayError::UpstreamOverloaded {
                upstream_status, ..
            } => Some(*upstream_status),
            _ => None,
        };
        upstream
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or_else(|| self.status())
    }

    /// The error type Anthropic's SDKs expect for this status (used by `/v1/messages`).
    pub fn anthropic_type(&self) -> &str {
        match self {
            GatewayError::Upstream {
                upstream_status: None | Some(401),
                ..
            } => "api_error",
            GatewayError::Upstream { error_type, .. }
            | GatewayError::UpstreamOverloaded { error_type, .. } => error_type,
            GatewayError::InvalidJson(_) | GatewayError::InvalidRequest(_) => {
                "invalid_request_error"
            }
            GatewayError::Unauthorized => "authentication_error",
            GatewayError::NotFound { .. } => "not_found_error",
            GatewayError::PayloadTooLarge { .. } => "request_too_large",
            GatewayError::RateLimited { .. } | GatewayError::BudgetExceeded { .. } => {
                "rate_limit_error"
            }
            GatewayError::UpstreamTimeout { .. } => "timeout_error",
            GatewayError::StoreUnavailable => "overloaded_error",
            GatewayError::MethodNotAllowed { .. } | GatewayError::Internal(_) => "api_error",
        }
    }

    /// The gateway's own JSON shape: `{"error": "...", "code": "..."}`.
    pub fn into_gateway_response(self) -> Response {
        let body = json!({ "error": self.to_string(), "code": self.code() });
        let status = self.status();
        self.respond(status, body)
    }

    /// The message `/v1/messages` answers with: Claude's own words for Claude's errors.
    fn anthropic_message(&self) -> String {
        match self {
            GatewayError::Upstream {
                upstream_status: Some(401),
                ..
            } => "Claude refused the gateway's own Anthropic key (ANTHROPIC_API_KEY); your gateway key was accepted. Tell the gateway's operator.".into(),
            GatewayError::Upstream {
                upstream_status: Some(_),
                message,
                ..
            }
            | GatewayError::UpstreamOverloaded { message, .. } => message.clone(),
            _ => self.to_string(),
        }
    }

    /// Anthropic's shape, so SDK exception classes work: `{"type":"error","error":{...}}`.
    pub fn into_anthropic_response(self) -> Response {
        let body = json!({
            "type": "error",
            "error": { "type": self.anthropic_type(), "message": self.anthropic_message() },
        });
        let status = self.anthropic_status();
        let daily = matches!(
            self,
            GatewayError::RateLimited { .. } | GatewayError::BudgetExceeded { .. }
        );
        let mut response = self.respond(status, body);
        if daily {
            // The SDKs retry a 429 at once when retry-after is over a minute; this one lasts
            // until midnight UTC. They obey this header (Anthropic's API sends it too).
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }

    fn respond(self, status: StatusCode, body: serde_json::Value) -> Response {
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let GatewayError::MethodNotAllowed { allowed, .. } = &self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }

    /// Maps a failed upstream call, after retries, to what the caller sees.
    pub fn from_upstream(error: UpstreamError, attempt_timeout_secs: u64) -> GatewayError {
        let overload = error.is_overload();
        match error {
            UpstreamError::Api {
                status,
                error_type,
                message,
                retry_after_secs,
                ..
            } if overload => GatewayError::UpstreamOverloaded {
                upstream_status: status,
                error_type,
                message,
                retry_after_secs: retry_after_secs.unwrap_or(10),
            },
            UpstreamError::Api {
                status,
                error_type,
                message,
                ..
            } => GatewayError::Upstream {
                upstream_status: Some(status),
                error_type,
                message,
            },
            UpstreamError::Timeout { .. } => GatewayError::UpstreamTimeout {
                secs: attempt_timeout_secs,
            },
            UpstreamError::Connect { message, .. } => GatewayError::Upstream {
                upstream_status: None,
                error_type: "connection_error".into(),
                message,
            },
            UpstreamError::InvalidResponse { message, .. } => GatewayError::Upstream {
                upstream_status: None,
                error_type: "invalid_response".into(),
                message,
            },
        }
    }
}

/// Left in the response's extensions so the request log can name the error.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.into_gateway_response()
    }
}
