//! `POST /v1/messages`: Anthropic's Messages API, for the Anthropic SDKs pointed at the gateway.
//! Answers are Claude's bytes (or the stored ones) with `x-cache` and `x-gateway-cost-usd`;
//! errors are in Anthropic's shape, so the SDKs raise their usual exceptions.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{RequestLog, read_body};
use crate::gateway::{Caller, Gateway, MessagesBody};
use crate::messages_request::MessagesRequest;
use crate::money::Micros;

pub async fn messages(
    State(gateway): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut log = RequestLog::default();
    let result = async {
        let body = read_body(body, gateway.config.max_body_bytes).await?;
        let request = MessagesRequest::parse(body)?;
        if gateway.config.log_prompts {
            log.prompt = request.last_user_text();
            log.system = request.system_text();
        }
        let beta = headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        gateway.messages(&caller, request, beta).await
    }
    .await;
    let mut response = match result {
        Ok(reply) => {
            log.cache = Some(reply.status.as_header());
            log.cache_key = Some(reply.cache_key);
            log.model = Some(reply.model);
            log.cost_usd = reply.cost.map(Micros::usd);
            log.upstream_ms = reply.upstream_ms;
            let mut response = match reply.body {
                MessagesBody::Json(bytes) => {
                    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
                }
                MessagesBody::Events(bytes) => event_stream(Body::from(bytes)),
                MessagesBody::Relay(chunks) => {
                    event_stream(Body::from_stream(chunks.map(Ok::<_, Infallible>)))
                }
            };
            let headers = response.headers_mut();
            headers.insert(
                "x-cache",
                HeaderValue::from_static(reply.status.as_header()),
            );
            if let Some(cost) = reply.cost
                && let Ok(value) = HeaderValue::from_str(&usd_string(cost))
            {
                headers.insert("x-gateway-cost-usd", value);
            }
            if gateway.upstream.name() == "mock" {
                headers.insert("x-upstream", HeaderValue::from_static("mock"));
            }
            response
        }
        Err(error) => error.into_anthropic_response(),
    };
    response.extensions_mut().insert(log);
    response.extensions_mut().insert(caller);
    response
}

fn event_stream(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Dollars as a plain decimal (`0`, `0.004755`), exact to the micro-dollar.
fn usd_string(cost: Micros) -> String {
    let (whole, micros) = (cost.0 / 1_000_000, cost.0 % 1_000_000);
    if micros == 0 {
        return whole.to_string();
    }
    let decimal = format!("{whole}.{micros:06}");
    decimal.trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_plain_decimals() {
        assert_eq!(usd_string(Micros(0)), "0");
        assert_eq!(usd_string(Micros(4_755)), "0.004755");
        assert_eq!(usd_string(Micros(1_500_000)), "1.5");
        assert_eq!(usd_string(Micros(2_000_000)), "2");
    }
}
