//! Anthropic prompt caching of the system prompt, sent only when it can work.
//!
//! Anthropic ignores a cache breakpoint on a prefix shorter than the model's minimum (1024
//! tokens for Sonnet, 4096 for Haiku 4.5, … — `min_cacheable_tokens` in pricing.json), so a
//! short system prompt gets no breakpoint, and the response says `"prompt_cache": "too_short"`.

use serde::Serialize;

use crate::config::PromptCacheTtl;
use crate::pricing::ModelPrice;
use crate::upstream::Usage;

/// What happened to prompt caching on a call, as the response reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptCacheOutcome {
    /// The system prompt was written to Anthropic's cache (billed at the write price).
    Write,
    /// It was read from Anthropic's cache (billed at 0.1× input).
    Read,
    /// Too short for the model's minimum: no breakpoint sent.
    TooShort,
    /// Disabled (PROMPT_CACHE=off, `"prompt_cache": false`) or no system prompt.
    Off,
}

/// A `system` value for the Messages API: plain text, or one text block with a breakpoint.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SystemField<'a> {
    Text(&'a str),
    Cached([CachedBlock<'a>; 1]),
}

#[derive(Debug, Serialize)]
pub struct CachedBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    cache_control: CacheControl,
}

#[derive(Debug, Serialize)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'static str>,
}

/// A generous token estimate (about 3.5 characters a token): erring high only sends a
/// breakpoint Anthropic may ignore, which costs nothing.
pub fn estimate_tokens_high(text: &str) -> u64 {
    (text.len() as u64 * 2).div_ceil(7)
}

/// The minimum when the model is not in the price table: the most common one.
const DEFAULT_MIN_TOKENS: u64 = 1024;

/// Decides how to send `system`: with a breakpoint when enabled and long enough.
pub fn system_field<'a>(
    system: Option<&'a str>,
    enabled: bool,
    ttl: PromptCacheTtl,
    price: Option<&ModelPrice>,
) -> (Option<SystemField<'a>>, PromptCacheOutcome) {
    let Some(system) = system else {
        return (None, PromptCacheOutcome::Off);
    };
    if !enabled {
        return (Some(SystemField::Text(system)), PromptCacheOutcome::Off);
    }
    let minimum = price
        .and_then(|p| p.min_cacheable_tokens)
        .unwrap_or(DEFAULT_MIN_TOKENS);
    if estimate_tokens_high(system) < minimum {
        return (
            Some(SystemField::Text(system)),
            PromptCacheOutcome::TooShort,
        );
    }
    let block = CachedBlock {
        kind: "text",
        text: system,
        cache_control: CacheControl {
            kind: "ephemeral",
            ttl: match ttl {
                PromptCacheTtl::FiveMinutes => None,
                PromptCacheTtl::OneHour => Some("1h"),
            },
        },
    };
    // Write or read is known only from the response's usage; see `outcome`.
    (
        Some(SystemField::Cached([block])),
        PromptCacheOutcome::Write,
    )
}

/// What the usage says happened to a breakpoint that was sent.
pub fn outcome(sent: PromptCacheOutcome, usage: &Usage) -> PromptCacheOutcome {
    if sent != PromptCacheOutcome::Write {
        return sent;
    }
    if usage.cache_read_input_tokens > 0 {
        PromptCacheOutcome::Read
    } else if usage.cache_creation_input_tokens > 0 {
        PromptCacheOutcome::Write
    } else {
        // Sent, but the real count fell under the minimum: Anthropic ignored it.
        PromptCacheOutcome::TooShort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(min: u64) -> ModelPrice {
        ModelPrice {
            id: "m".into(),
            input: 1,
            output: 1,
            cache_write_5m: 1,
            cache_write_1h: 1,
            cache_read: 1,
            min_cacheable_tokens: Some(min),
        }
    }

    #[test]
    fn a_short_system_prompt_gets_no_breakpoint() {
        let (field, outcome) = system_field(
            Some("Be brief."),
            true,
            PromptCacheTtl::FiveMinutes,
            Some(&price(1024)),
        );
        assert!(matches!(field, Some(SystemField::Text(_))));
        assert_eq!(outcome, PromptCacheOutcome::TooShort);
    }

    #[test]
    fn a_long_one_is_sent_as_a_cached_block_with_the_ttl() {
        let long = "word ".repeat(2000);
        let (field, _) = system_field(
            Some(&long),
            true,
            PromptCacheTtl::OneHour,
            Some(&price(1024)),
        );
        let json = serde_json::to_value(field.unwrap()).unwrap();
        assert_eq!(json[0]["cache_control"]["type"], "ephemeral");
        assert_eq!(json[0]["cache_control"]["ttl"], "1h");
        assert_eq!(json[0]["type"], "text");
    }
}
