//! `ai-gateway replay FILE.jsonl`: an offline what-if. Given a log of `/v1/generate` bodies, it
//! estimates what those calls cost without the gateway and with it (cache under the current
//! TTL, routing, prompt caching). No upstream calls; every figure is an estimate.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::cache_key::CacheKey;
use crate::config::{Config, PromptCacheTtl};
use crate::generate_request::{CacheMode, GenerateRequest};
use crate::pricing::Pricing;
use crate::prompt_cache::{self, PromptCacheOutcome};
use crate::routing;
use crate::upstream::Usage;
use crate::upstream::mock::estimate_tokens;

/// Output tokens assumed per call when the log cannot say (capped by the call's `max_tokens`).
pub const ASSUMED_OUTPUT_TOKENS: u64 = 200;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    pub calls: u64,
    pub hits: u64,
    pub cost_without_usd: f64,
    pub cost_with_usd: f64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub total: Tally,
    /// Keyed by the model that would answer through the gateway.
    pub by_model: Vec<(String, Tally)>,
    /// Lines that were not valid `/v1/generate` bodies: (line number, problem).
    pub skipped: Vec<(usize, String)>,
    /// Calls whose model has no known price (their cost is left out of both sides).
    pub unpriced: u64,
}

struct Call {
    at: Option<DateTime<Utc>>,
    request: GenerateRequest,
}

/// Simulates `text` (one JSON body per line, optionally with a `timestamp`).
pub fn simulate(config: &Config, pricing: &Pricing, text: &str) -> Report {
    let mut report = Report::default();
    let mut calls = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, config.cache_max_ttl_secs) {
            Ok(call) => calls.push(call),
            Err(problem) => report.skipped.push((index + 1, problem)),
        }
    }
    // With timestamps the log is replayed in time order; without, in file order, back to back.
    if calls.iter().all(|c| c.at.is_some()) {
        calls.sort_by_key(|c| c.at);
    }

    let mut cache_expiry: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
    let mut prompt_cache_expiry: HashMap<(String, String), Option<DateTime<Utc>>> = HashMap::new();
    let mut by_model: HashMap<String, Tally> = HashMap::new();
    let prompt_cache_secs = match config.prompt_cache_ttl {
        PromptCacheTtl::FiveMinutes => 300,
        PromptCacheTtl::OneHour => 3600,
    };
    let live =
        |expiry: Option<&Option<DateTime<Utc>>>, now: Option<DateTime<Utc>>| match (expiry, now) {
            (None, _) => false,
            (Some(Some(until)), Some(now)) => now < *until,
            (Some(_), _) => true,
        };

    for call in calls {
        let r = &call.request;
        let asked = r
            .model
            .clone()
            .unwrap_or_else(|| config.default_model.clone());
        let model = match asked.as_str() {
            "auto" => routing::route(&config.routing_rules, &r.prompt).to_string(),
            _ => asked.clone(),
        };
        let without_model = if asked == "auto" {
            config.default_model.clone()
        } else {
            asked
        };
        let max_tokens = r.max_tokens.unwrap_or(config.default_max_tokens) as u64;
        let system_tokens = r.system.as_deref().map_or(0, estimate_tokens);
        let prompt_tokens = estimate_tokens(&r.prompt) + 8;
        let output_tokens = ASSUMED_OUTPUT_TOKENS.min(max_tokens);
        let plain = Usage {
            input_tokens: system_tokens + prompt_tokens,
            output_tokens,
            ..Usage::default()
        };
        let (Some(without), Some(_)) =
            (pricing.cost(&without_model, &plain), pricing.lookup(&model))
        else {
            report.unpriced += 1;
            continue;
        };

        let key = CacheKey::new(
            "replay",
            r.template_id.as_deref(),
            r.contact_id.as_deref(),
            &(&model, &r.system, &r.prompt, max_tokens, r.temperature),
        );
        let tally = by_model.entry(model.clone()).or_default();
        tally.calls += 1;
        tally.cost_without_usd += without.usd();
        let cached = r.cache == CacheMode::Default && live(cache_expiry.get(key.as_str()), call.at);
        if cached {
            tally.hits += 1;
            continue;
        }
        let (_, sent) = prompt_cache::system_field(
            r.system.as_deref(),
            config.prompt_cache && r.prompt_cache != Some(false),
            config.prompt_cache_ttl,
            pricing.lookup(&model),
        );
        let mut usage = Usage {
            input_tokens: prompt_tokens,
            output_tokens,
            ..Usage::default()
        };
        let system_key = (model.clone(), r.system.clone().unwrap_or_default());
        match sent {
            PromptCacheOutcome::Write if live(prompt_cache_expiry.get(&system_key), call.at) => {
                usage.cache_read_input_tokens = system_tokens;
            }
            PromptCacheOutcome::Write => usage.cache_creation_input_tokens = system_tokens,
            _ => usage.input_tokens += system_tokens,
        }
        if sent == PromptCacheOutcome::Write {
            let until = call
                .at
                .map(|t| t + chrono::Duration::seconds(prompt_cache_secs));
            prompt_cache_expiry.insert(system_key, until);
        }
        tally.cost_with_usd += pricing.cost(&model, &usage).unwrap_or_default().usd();
        if r.cache != CacheMode::Bypass {
            let ttl = r.ttl_secs.unwrap_or(config.cache_ttl_secs) as i64;
            let until = call.at.map(|t| t + chrono::Duration::seconds(ttl));
            cache_expiry.insert(key.as_str().to_string(), until);
        }
    }

    let mut by_model: Vec<(String, Tally)> = by_model.into_iter().collect();
    by_model.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(&b.0)));
    for (_, t) in &by_model {
        report.total.calls += t.calls;
        report.total.hits += t.hits;
        report.total.cost_without_usd += t.cost_without_usd;
        report.total.cost_with_usd += t.cost_with_usd;
    }
    report.by_model = by_model;
    report
}

/// One log line: a `/v1/generate` body, with an optional `timestamp` (RFC 3339 or Unix seconds).
fn parse_line(line: &str, max_ttl_secs: u64) -> Result<Call, String> {
    let mut value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Some(object) = value.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    let at = match object.remove("timestamp") {
        None => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(&s)
                .map_err(|e| format!("timestamp {s:?}: {e}"))?
                .with_timezone(&Utc),
        ),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .map(Some)
            .ok_or_else(|| format!("timestamp {n} is not Unix seconds"))?,
        Some(other) => return Err(format!("timestamp {other} is neither text nor a number")),
    };
    let body = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    let request = GenerateRequest::parse(&body, max_ttl_secs).map_err(|e| e.to_string())?;
    Ok(Call { at, request })
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}%", part / whole * 100.0)
    } else {
        "-".into()
    }
}

/// The report as a table a person reads.
pub fn render(report: &Report, file: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ai-gateway replay of {file}: ESTIMATES (about 4 characters a token, {ASSUMED_OUTPUT_TOKENS} output tokens a call, no upstream calls made)\n"
    );
    let _ = writeln!(
        out,
        "{:<28} {:>8} {:>9} {:>14} {:>14} {:>8}",
        "model", "calls", "hit rate", "without ($)", "with ($)", "saved"
    );
    let mut row = |name: &str, t: &Tally| {
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>9} {:>14.4} {:>14.4} {:>8}",
            name,
            t.calls,
            percent(t.hits as f64, t.calls as f64),
            t.cost_without_usd,
            t.cost_with_usd,
            percent(t.cost_without_usd - t.cost_with_usd, t.cost_without_usd),
        );
    };
    for (model, tally) in &report.by_model {
        row(model, tally);
    }
    row("total", &report.total);
    if report.unpriced > 0 {
        let _ = writeln!(
            out,
            "\n{} calls name a model with no known price and are left out.",
            report.unpriced
        );
    }
    if !report.skipped.is_empty() {
        let _ = writeln!(out, "\n{} lines skipped:", report.skipped.len());
        for (line, problem) in report.skipped.iter().take(10) {
            let _ = writeln!(out, "  line {line}: {problem}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_lookup(|_| None).unwrap()
    }

    #[test]
    fn repeats_hit_and_cost_nothing_with_the_gateway() {
        let log = r#"{"prompt":"Opener for Ada","system":"Be brief."}
{"prompt":"Opener for Ada","system":"Be brief."}
{"prompt":"Opener for Bob","system":"Be brief."}
{"promt":"typo"}"#;
        let report = simulate(&config(), &Pricing::builtin(), log);
        assert_eq!(report.total.calls, 3);
        assert_eq!(report.total.hits, 1);
        assert_eq!(report.skipped.len(), 1);
        let one_call = report.total.cost_without_usd / 3.0;
        assert!((report.total.cost_with_usd - 2.0 * one_call).abs() < 1e-9);
    }

    #[test]
    fn timestamps_let_entries_expire() {
        let log = r#"{"prompt":"a","ttl_secs":60,"timestamp":"2026-12-01T10:00:00Z"}
{"prompt":"a","timestamp":"2026-12-01T10:00:30Z"}
{"prompt":"a","timestamp":"2026-12-01T10:05:00Z"}"#;
        let report = simulate(&config(), &Pricing::builtin(), log);
        assert_eq!((report.total.calls, report.total.hits), (3, 1));
    }

    #[test]
    fn auto_is_priced_at_the_routed_model_with_and_the_default_without() {
        let report = simulate(
            &config(),
            &Pricing::builtin(),
            r#"{"prompt":"hi","model":"auto"}"#,
        );
        assert_eq!(report.by_model[0].0, "claude-haiku-4-5");
        assert!(report.total.cost_with_usd < report.total.cost_without_usd);
    }
}
