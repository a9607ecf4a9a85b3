//! The daily summary: one UTC day's counters for every tenant, written as one log line and, when
//! `SUMMARY_WEBHOOK_URL` is set, posted as JSON whose `text` a Slack incoming webhook shows as is.
//!
//! Run by the EventBridge schedule (`{"ai_gateway_task":"daily_summary"}`, see [`crate::lambda`])
//! or by `ai-gateway summary` from cron.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::auth::ANONYMOUS;
use crate::cache_key::stats_key;
use crate::clock;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::routes::stats::DayReport;
use crate::store::{DayCounters, StoreError};

/// A slow webhook must not hold the invocation until Lambda's own timeout.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What is logged, posted and returned.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub date: String,
    pub tenants: Vec<TenantDay>,
    pub total: DayReport,
    /// One line for people: what Slack shows.
    pub text: String,
    /// What became of the webhook post; not part of the posted body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct TenantDay {
    pub tenant: String,
    #[serde(flatten)]
    pub report: DayReport,
}

/// What happened to the webhook post, for the log line and the returned JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    NotConfigured,
    Posted,
    Failed,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::NotConfigured => "off",
            WebhookOutcome::Posted => "posted",
            WebhookOutcome::Failed => "failed",
        }
    }
}

/// Yesterday (UTC): the schedule runs just after midnight, when that day is complete.
pub fn default_day() -> NaiveDate {
    clock::utc_today() - chrono::Duration::days(1)
}

/// Summarises `day`, logs it, posts it to the webhook if one is set, and returns it with
/// `webhook` set to `"posted"`, `"failed"` or `"off"`. Only an unreadable store fails it: a
/// webhook failure is logged and reported, so a retry does not post the summary twice.
pub async fn run(gateway: &Gateway, day: NaiveDate) -> Result<Summary, String> {
    let mut summary = summarize(gateway, day)
        .await
        .map_err(|e| format!("daily summary for {day}: cannot read the counters: {e}"))?;
    let webhook = match &gateway.config.summary_webhook_url {
        Some(url) => post_webhook(url, &summary).await,
        None => WebhookOutcome::NotConfigured,
    };
    let tenants = serde_json::to_string(&summary.tenants).unwrap_or_default();
    tracing::info!(
        date = %summary.date,
        tenants = %tenants,
        requests = summary.total.requests,
        hit_rate = summary.total.hit_rate,
        cost_usd = summary.total.cost_usd,
        saved_usd = summary.total.saved_usd,
        webhook = webhook.as_str(),
        "daily_summary"
    );
    summary.webhook = Some(webhook.as_str());
    Ok(summary)
}

/// Reads every tenant's counters for `day` in one store call and renders them.
pub async fn summarize(gateway: &Gateway, day: NaiveDate) -> Result<Summary, StoreError> {
    let date = clock::day_string(day);
    let tenants = tenant_names(&gateway.config);
    let keys: Vec<String> = tenants.iter().map(|t| stats_key(t, &date)).collect();
    let counters = gateway.store.day_counters(&keys).await?;
    let mut total = DayCounters::default();
    for day_counters in &counters {
        total.add(day_counters);
    }
    let total = DayReport::new(None, &total);
    Ok(Summary {
        text: summary_line(&date, &total),
        date,
        tenants: tenants
            .into_iter()
            .zip(&counters)
            .map(|(tenant, c)| TenantDay {
                tenant,
                report: DayReport::new(None, c),
            })
            .collect(),
        total,
        webhook: None,
    })
}

/// Every tenant a request can be counted under: one per key name (a rotated key may repeat a
/// name), and `anonymous` when there are no keys and keyless use is allowed.
fn tenant_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let keyed = config.gateway_keys.iter().map(|k| k.tenant.as_str());
    // Requests are anonymous only when no keys are configured (see `auth::caller_for`).
    let anonymous = (config.allow_anonymous && config.gateway_keys.is_empty()).then_some(ANONYMOUS);
    for name in keyed.chain(anonymous) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// `ai-gateway 2026-12-02: 1,234 requests, 61.2% from cache, $4.12 spent, $6.40 saved`
pub fn summary_line(date: &str, total: &DayReport) -> String {
    format!(
        "ai-gateway {date}: {} requests, {:.1}% from cache, {} spent, {} saved",
        thousands(total.requests),
        total.hit_rate * 100.0,
        dollars(total.cost_usd),
        dollars(total.saved_usd),
    )
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Cents, with thousands separators; a non-zero amount under a cent keeps four decimals so a
/// quiet day does not read as free.
fn dollars(usd: f64) -> String {
    if usd > 0.0 && usd < 0.005 {
        return format!("${usd:.4}");
    }
    let cents = (usd * 100.0).round() as u64;
    let mut out = format!("${}", thousands(cents / 100));
    let _ = write!(out, ".{:02}", cents % 100);
    out
}

/// Posts the summary once. The URL is a secret (whoever has it can post to the channel), so
/// no log line carries it.
async fn post_webhook(url: &SecretString, summary: &Summary) -> WebhookOutcome {
    let client = match reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        // A redirect would turn the POST into a GET; a webhook that moved should fail loudly.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ai-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "daily summary webhook: cannot build the HTTP client");
            return WebhookOutcome::Failed;
        }
    };
    match client.post(url.expose_secret()).json(summary).send().await {
        Ok(response) if response.status().is_success() => WebhookOutcome::Posted,
        Ok(response) => {
            tracing::warn!(
                status = response.status().as_u16(),
                "daily summary webhook refused the post (SUMMARY_WEBHOOK_URL)"
            );
            WebhookOutcome::Failed
        }
        Err(e) => {
            let timed_out = e.is_timeout();
            tracing::warn!(
                error = %error_chain(&e.without_url()),
                timed_out,
                "daily summary webhook could not be reached (SUMMARY_WEBHOOK_URL)"
            );
            WebhookOutcome::Failed
        }
    }
}

/// An error and its causes on one line (reqwest's own message says little: "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_like_a_sentence() {
        let total = DayReport::new(
            None,
            &DayCounters {
                requests: 1234,
                hits: 612,
                misses: 388,
                cost_micros: 4_120_000,
                saved_micros: 6_400_000,
                ..Default::default()
            },
        );
        assert_eq!(
            summary_line("2026-12-02", &total),
            "ai-gateway 2026-12-02: 1,234 requests, 61.2% from cache, $4.12 spent, $6.40 saved"
        );
    }

    #[test]
    fn money_and_counts_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(dollars(0.0), "$0.00");
        assert_eq!(dollars(0.0047), "$0.0047");
        assert_eq!(dollars(1234.5), "$1,234.50");
    }
}
