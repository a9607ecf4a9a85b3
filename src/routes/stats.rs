//! `GET /v1/stats?date=YYYY-MM-DD&days=N`: the caller's day counters, money in dollars.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::cache_key::stats_key;
use crate::clock;
use crate::error::GatewayError;
use crate::gateway::{Caller, Gateway, STATS_RETENTION_DAYS, Tokens};
use crate::money::Micros;
use crate::store::DayCounters;

#[derive(Debug, Serialize, PartialEq)]
pub struct DayReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub upstream_calls: u64,
    pub errors: u64,
    pub rate_limited: u64,
    /// Share of answered requests served without a new upstream call (hits and coalesced).
    pub hit_rate: f64,
    pub cost_usd: f64,
    pub saved_usd: f64,
    pub tokens: Tokens,
}

impl DayReport {
    pub fn new(date: Option<String>, c: &DayCounters) -> DayReport {
        let answered = c.hits + c.coalesced + c.misses;
        let hit_rate = if answered == 0 {
            0.0
        } else {
            ((c.hits + c.coalesced) as f64 / answered as f64 * 10_000.0).round() / 10_000.0
        };
        DayReport {
            date,
            requests: c.requests,
            hits: c.hits,
            misses: c.misses,
            coalesced: c.coalesced,
            upstream_calls: c.upstream_calls,
            errors: c.errors,
            rate_limited: c.rate_limited,
            hit_rate,
            cost_usd: Micros(c.cost_micros).usd(),
            saved_usd: Micros(c.saved_micros).usd(),
            tokens: Tokens {
                input: c.input_tokens,
                output: c.output_tokens,
                cache_creation: c.cache_creation_tokens,
                cache_read: c.cache_read_tokens,
            },
        }
    }
}

#[derive(Serialize)]
struct RangeReport {
    tenant: String,
    from: String,
    to: String,
    days: Vec<DayReport>,
    total: DayReport,
}

pub async fn stats(
    State(gateway): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut response = match report(&gateway, &caller, &query).await {
        Ok(response) => response,
        Err(error) => error.into_gateway_response(),
    };
    response.extensions_mut().insert(caller);
    response
}

async fn report(
    gateway: &Gateway,
    caller: &Caller,
    query: &HashMap<String, String>,
) -> Result<Response, GatewayError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "date" | "days"))
    {
        return Err(GatewayError::InvalidRequest(format!(
            "Unknown query parameter `{unknown}`; accepted: date=YYYY-MM-DD, days=1..{STATS_RETENTION_DAYS}."
        )));
    }
    let to = match query.get("date") {
        None => clock::utc_today(),
        Some(text) => clock::parse_day(text).ok_or_else(|| {
            GatewayError::InvalidRequest(format!(
                "`date` is {text:?}; accepted: a UTC day as YYYY-MM-DD."
            ))
        })?,
    };
    let days = match query.get("days") {
        None => None,
        Some(text) => match text.parse::<u64>() {
            Ok(n @ 1..=STATS_RETENTION_DAYS) => Some(n),
            _ => {
                return Err(GatewayError::InvalidRequest(format!(
                    "`days` is {text:?}; accepted: 1 to {STATS_RETENTION_DAYS}."
                )));
            }
        },
    };
    let dates: Vec<String> = (0..days.unwrap_or(1))
        .rev()
        .map(|back| clock::day_string(to - chrono::Duration::days(back as i64)))
        .collect();
    let keys: Vec<String> = dates.iter().map(|d| stats_key(&caller.tenant, d)).collect();
    let counters = gateway.store.day_counters(&keys).await.map_err(|e| {
        tracing::warn!(error = %e, "stats unavailable");
        GatewayError::StoreUnavailable
    })?;
    if days.is_none() {
        let day = DayReport::new(dates.first().cloned(), &counters[0]);
        return Ok(axum::Json(day).into_response());
    }
    let mut total = DayCounters::default();
    for day in &counters {
        total.add(day);
    }
    let report = RangeReport {
        tenant: caller.tenant.clone(),
        from: dates.first().cloned().unwrap_or_default(),
        to: dates.last().cloned().unwrap_or_default(),
        days: dates
            .iter()
            .zip(&counters)
            .map(|(d, c)| DayReport::new(Some(d.clone()), c))
            .collect(),
        total: DayReport::new(None, &total),
    };
    Ok(axum::Json(report).into_response())
}
