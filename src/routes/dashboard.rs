//! `GET /dashboard`: the savings page, compiled into the binary so the Lambda package stays one file.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE_HTML: &str = include_str!("../../static/dashboard.html");

/// The page runs only its own inline script and style and talks only to this origin, so a
/// script injected through a stats field could not send the key elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            // The page is tiny and a key may be typed into it: no copy in any cache.
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE_HTML,
    )
}
