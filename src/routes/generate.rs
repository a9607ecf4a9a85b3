//! `POST /v1/generate` (and `POST /`): the seed-compatible route for Make.com.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::{RequestLog, read_body};
use crate::gateway::{Caller, Gateway};
use crate::generate_request::GenerateRequest;

pub async fn generate(
    State(gateway): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Response {
    let mut log = RequestLog::default();
    let result = async {
        let body = read_body(body, gateway.config.max_body_bytes).await?;
        let request = GenerateRequest::parse(&body, gateway.config.cache_max_ttl_secs)?;
        if gateway.config.log_prompts {
            log.prompt = Some(request.prompt.clone());
            log.system = request.system.clone();
        }
        gateway.generate(&caller, request).await
    }
    .await;
    let mut response = match result {
        Ok(generated) => {
            let mut response = (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                generated.body,
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(
                "x-cache",
                HeaderValue::from_static(generated.status.as_header()),
            );
            if gateway.upstream.name() == "mock" {
                headers.insert("x-upstream", HeaderValue::from_static("mock"));
            }
            // Rendered: the strings move into the log line instead of being copied.
            log.cache = Some(generated.status.as_header());
            log.cost_usd = generated.cost;
            log.upstream_ms = generated.upstream_ms;
            log.cache_key = Some(generated.cache_key);
            log.model = Some(generated.model);
            response
        }
        Err(error) => error.into_gateway_response(),
    };
    response.extensions_mut().insert(log);
    response.extensions_mut().insert(caller);
    response
}
