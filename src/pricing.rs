//! Prices per model and the cost of a call, cache tokens included.
//!
//! The table is `pricing.json`, embedded at build time, so a price change is a data change;
//! `PRICING_FILE` replaces it at run time with a file of the same format.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::money::Micros;
use crate::upstream::Usage;

const BUILTIN: &str = include_str!("../pricing.json");

/// Prices in micro-dollars per million tokens (= USD per million × 10⁶), so cost sums are exact.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    pub id: String,
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    /// The shortest prompt prefix Anthropic will cache for this model.
    pub min_cacheable_tokens: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Pricing {
    by_id: HashMap<String, Arc<ModelPrice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default, rename = "_comment")]
    _comment: Option<String>,
    models: Vec<PriceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    input: f64,
    output: f64,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    cache_read: Option<f64>,
    min_cacheable_tokens: Option<u64>,
}

/// USD per million tokens → micro-dollars per million tokens.
fn per_mtok(usd: f64) -> u64 {
    (usd * 1_000_000.0).round() as u64
}

impl Pricing {
    pub fn builtin() -> Pricing {
        Pricing::from_json(BUILTIN).unwrap_or_else(|e| {
            // The file is checked by a unit test; this only guards against a broken edit.
            tracing::error!(error = %e, "the built-in pricing.json is invalid; every cost will be null");
            Pricing {
                by_id: HashMap::new(),
            }
        })
    }

    /// `PRICING_FILE` when given, else the built-in table.
    pub fn load(path: Option<&Path>) -> Result<Pricing, String> {
        match path {
            None => Ok(Pricing::builtin()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("PRICING_FILE {}: cannot read it ({e})", path.display())
                })?;
                Pricing::from_json(&text)
                    .map_err(|e| format!("PRICING_FILE {}: {e}", path.display()))
            }
        }
    }

    pub fn from_json(text: &str) -> Result<Pricing, String> {
        let file: PriceFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a price table ({e}); expected {{\"models\":[{{\"id\":..,\"input\":..,\"output\":..}}]}}"
            )
        })?;
        let mut by_id = HashMap::new();
        for entry in file.models {
            let prices = [entry.input, entry.output]
                .into_iter()
                .chain(entry.cache_write_5m)
                .chain(entry.cache_write_1h)
                .chain(entry.cache_read);
            if prices.into_iter().any(|p| !p.is_finite() || p < 0.0) {
                return Err(format!(
                    "model {}: prices must be non-negative numbers",
                    entry.id
                ));
            }
            let price = Arc::new(ModelPrice {
                id: entry.id.clone(),
                input: per_mtok(entry.input),
                output: per_mtok(entry.output),
                cache_write_5m: per_mtok(entry.cache_write_5m.unwrap_or(entry.input * 1.25)),
                cache_write_1h: per_mtok(entry.cache_write_1h.unwrap_or(entry.input * 2.0)),
                cache_read: per_mtok(entry.cache_read.unwrap_or(entry.input * 0.1)),
                min_cacheable_tokens: entry.min_cacheable_tokens,
            });
            for id in std::iter::once(entry.id).chain(entry.aliases) {
                by_id.insert(id, price.clone());
            }
        }
        Ok(Pricing { by_id })
    }

    /// Finds a model by id or alias; a dated id (`…-20251001`) or `-latest` falls back to its
    /// base alias, and `claude-opus-4` finds `claude-opus-4-0`.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(price) = self.by_id.get(model) {
            return Some(price);
        }
        let base = strip_date(model).trim_end_matches("-latest");
        self.by_id
            .get(base)
            .or_else(|| self.by_id.get(&format!("{base}-0")))
            .map(|p| p.as_ref())
    }

    /// What a call with `usage` cost on `model`; `None` when the model has no known price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Micros> {
        let price = self.lookup(model)?;
        Some(price.cost(usage))
    }
}

impl ModelPrice {
    /// input + output + cache writes (by lifetime) + cache reads, each at its own price,
    /// rounded once to the nearest micro-dollar.
    pub fn cost(&self, usage: &Usage) -> Micros {
        let (written_5m, written_1h) = match usage.cache_creation {
            Some(split) => {
                let known = split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens;
                // Anything the split does not explain is billed at the 5-minute price.
                let rest = usage.cache_creation_input_tokens.saturating_sub(known);
                (
                    split.ephemeral_5m_input_tokens + rest,
                    split.ephemeral_1h_input_tokens,
                )
            }
            None => (usage.cache_creation_input_tokens, 0),
        };
        let pico: u128 = [
            (usage.input_tokens, self.input),
            (usage.output_tokens, self.output),
            (written_5m, self.cache_write_5m),
            (written_1h, self.cache_write_1h),
            (usage.cache_read_input_tokens, self.cache_read),
        ]
        .iter()
        .map(|&(tokens, price)| tokens as u128 * price as u128)
        .sum();
        Micros(((pico + 500_000) / 1_000_000) as u64)
    }
}

fn strip_date(model: &str) -> &str {
    match model.rsplit_once('-') {
        Some((base, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::CacheCreation;

    fn usage(input: u64, output: u64, write: u64, read: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
            cache_creation: None,
        }
    }

    #[test]
    fn the_builtin_table_parses_and_knows_the_default_model() {
        let pricing = Pricing::from_json(BUILTIN).unwrap();
        assert!(pricing.lookup("claude-sonnet-4-6").is_some());
    }

    #[test]
    fn aliases_and_dated_ids_find_the_same_price() {
        let p = Pricing::builtin();
        let alias = p.lookup("claude-haiku-4-5").unwrap();
        assert_eq!(p.lookup("claude-haiku-4-5-20251001").unwrap(), alias);
        assert_eq!(alias.input, 1_000_000);
        assert_eq!(alias.output, 5_000_000);
        assert!(p.lookup("claude-nonexistent-9").is_none());
    }

    #[test]
    fn sonnet_cost_counts_every_kind_of_token_at_its_own_price() {
        let p = Pricing::builtin();
        // 1000 in × $3 + 500 out × $15 + 2000 written × $3.75 + 4000 read × $0.30 per Mtok
        // = 3000 + 7500 + 7500 + 1200 micro-dollars
        let cost = p.cost("claude-sonnet-4-6", &usage(1000, 500, 2000, 4000));
        assert_eq!(cost, Some(Micros(19_200)));
    }

    #[test]
    fn one_hour_cache_writes_cost_twice_the_input_price() {
        let p = Pricing::builtin();
        let mut u = usage(0, 0, 3000, 0);
        u.cache_creation = Some(CacheCreation {
            ephemeral_5m_input_tokens: 1000,
            ephemeral_1h_input_tokens: 2000,
        });
        // Haiku 4.5: 1000 × $1.25 + 2000 × $2.00 per Mtok = 1250 + 4000
        assert_eq!(p.cost("claude-haiku-4-5", &u), Some(Micros(5_250)));
    }

    #[test]
    fn fractions_of_a_micro_dollar_round_once_at_the_end() {
        let p = Pricing::builtin();
        // Haiku 3: 3 × $0.25 + 3 × $1.25 per Mtok = 4.5 micro-dollars → 5 (not 1 + 4)
        assert_eq!(
            p.cost("claude-3-haiku-20240307", &usage(3, 3, 0, 0)),
            Some(Micros(5))
        );
    }

    #[test]
    fn unknown_models_have_no_cost() {
        assert_eq!(Pricing::builtin().cost("gpt-4", &usage(1, 1, 0, 0)), None);
    }
}
