//! The Lambda entry: API Gateway (REST v1, HTTP API v2) and Function URL events, through
//! lambda_http, into the same router the local server uses.

use axum::Router;
use lambda_http::RequestExt;

/// API Gateway REST events put the stage in the path (`/prod/v1/generate`); route on the path
/// the client asked for.
pub fn strip_stage(mut request: lambda_http::Request) -> lambda_http::Request {
    let raw = request.raw_http_path();
    if !raw.is_empty() && raw != request.uri().path() {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{raw}?{q}"),
            None => raw.to_string(),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

pub async fn run(app: Router) -> Result<(), String> {
    let service = tower::ServiceBuilder::new()
        .map_request(strip_stage)
        .service(app);
    lambda_http::run(service)
        .await
        .map_err(|e| format!("Lambda runtime error: {e}"))
}
