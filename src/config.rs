//! Every setting, read once from the environment and validated at start.
//!
//! A bad value stops start-up with a message naming the variable and what it accepts. Secrets are
//! wrapped in [`SecretString`] so they never reach a log line or a `Debug` print.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::money::Micros;

/// Where the binary runs: decided by `AWS_LAMBDA_RUNTIME_API`, which the Lambda runtime sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Lambda,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// What to do when Redis is down or slower than `REDIS_TIMEOUT_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailureMode {
    /// Serve without cache, limit or budget (`x-cache: SKIP`).
    Open,
    /// Refuse with a fast 503 `store_unavailable`.
    Closed,
}

#[derive(Debug)]
pub struct RedisSettings {
    /// `redis://` or `rediss://`, password included: a secret.
    pub url: SecretString,
    pub ca_file: Option<PathBuf>,
}

/// A gateway key: the tenant's name and the secret its callers present.
#[derive(Debug)]
pub struct GatewayKey {
    pub tenant: String,
    pub secret: SecretString,
}

/// Per-tenant overrides of the daily guards (`TENANT_LIMITS`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    pub daily_request_limit: Option<u64>,
    pub daily_budget_usd: Option<f64>,
}

#[derive(Debug)]
pub struct Config {
    pub runtime: Runtime,
    pub bind: SocketAddr,
    pub worker_threads: Option<usize>,
    pub anthropic_api_key: Option<SecretString>,
    pub anthropic_base_url: String,
    pub default_model: String,
    pub default_max_tokens: u32,
    pub upstream_timeout: Duration,
    pub upstream_max_retries: u32,
    pub request_deadline: Duration,
    pub fallback_model: Option<String>,
    pub redis: Option<RedisSettings>,
    pub redis_timeout: Duration,
    pub redis_failure_mode: RedisFailureMode,
    pub cache_ttl_secs: u64,
    pub cache_max_ttl_secs: u64,
    pub memory_cache_max_entries: usize,
    pub daily_request_limit: u64,
    pub daily_budget: Option<Micros>,
    pub tenant_limits: HashMap<String, TenantLimits>,
    pub gateway_keys: Vec<GatewayKey>,
    pub allow_anonymous: bool,
    pub max_body_bytes: usize,
    pub pricing_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_prompts: bool,
    /// Answer from the offline mock even with a key, or on Lambda (demos, the cargo-lambda loop).
    pub mock_upstream: bool,
    /// Anthropic prompt caching of the system prompt on `/v1/generate`.
    pub prompt_cache: bool,
    pub prompt_cache_ttl: PromptCacheTtl,
    /// Rules for `"model": "auto"`, first match wins.
    pub routing_rules: Vec<RoutingRule>,
    /// Where the daily summary is posted (a Make.com or Slack webhook); a secret.
    pub summary_webhook_url: Option<SecretString>,
}

/// How long Anthropic keeps a prompt-cache entry; the 1 h one costs 2× input to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptCacheTtl {
    FiveMinutes,
    OneHour,
}

/// One routing rule: prompts of at most `max_words` words (no bound when absent) go to `model`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub max_words: Option<usize>,
    pub model: String,
}

/// Short prompts to Haiku, middling ones to Sonnet, long ones to Opus.
pub fn default_routing_rules() -> Vec<RoutingRule> {
    vec![
        RoutingRule {
            max_words: Some(50),
            model: "claude-haiku-4-5".into(),
        },
        RoutingRule {
            max_words: Some(400),
            model: "claude-sonnet-4-6".into(),
        },
        RoutingRule {
            max_words: None,
            model: "claude-opus-4-6".into(),
        },
    ]
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{var}: {problem}; accepted: {accepted}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
    pub accepted: &'static str,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the environment.
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let non_empty = move |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let env = Env(&non_empty);
        let runtime = if env.get("AWS_LAMBDA_RUNTIME_API").is_some() {
            Runtime::Lambda
        } else {
            Runtime::Local
        };

        let anthropic_api_key = env.get("ANTHROPIC_API_KEY").map(SecretString::from);
        if runtime == Runtime::Lambda
            && anthropic_api_key.is_none()
            && !env.parse_bool("MOCK_UPSTREAM", false)?
        {
            return Err(ConfigError {
                var: "ANTHROPIC_API_KEY",
                problem: "is required on Lambda".into(),
                accepted: "an Anthropic API key (or MOCK_UPSTREAM=true for an offline demo)",
            });
        }
        let gateway_keys = parse_gateway_keys(env.get("GATEWAY_API_KEYS"))?;
        let allow_anonymous = env.parse_bool("ALLOW_ANONYMOUS", runtime == Runtime::Local)?;
        if runtime == Runtime::Lambda && gateway_keys.is_empty() && !allow_anonymous {
            return Err(ConfigError {
                var: "GATEWAY_API_KEYS",
                problem: "is required on Lambda, so the URL cannot be used by anyone who finds it"
                    .into(),
                accepted: "comma-separated name:secret pairs, or ALLOW_ANONYMOUS=true",
            });
        }

        let redis = env.get("REDIS_URL").map(|url| RedisSettings {
            url: SecretString::from(url),
            ca_file: env.get("REDIS_CA_FILE").map(PathBuf::from),
        });
        if let Some(redis) = &redis {
            use secrecy::ExposeSecret;
            let url = redis.url.expose_secret();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError {
                    var: "REDIS_URL",
                    problem: "does not start with redis:// or rediss://".into(),
                    accepted: "redis://host:port or rediss://:password@host:port",
                });
            }
        }

        let cache_max_ttl_secs = env.parse_range("CACHE_MAX_TTL_SECS", 2_592_000, 1, u64::MAX)?;
        let daily_budget_usd = env.parse_opt_f64("DAILY_BUDGET_USD")?;
        let mock_upstream = env.parse_bool("MOCK_UPSTREAM", false)?;
        let config = Config {
            runtime,
            bind: env.parse_with("BIND", "127.0.0.1:3000", "an address like 127.0.0.1:3000")?,
            worker_threads: env
                .get("WORKER_THREADS")
                .map(|_| env.parse_range("WORKER_THREADS", 0, 1, 256))
                .transpose()?
                .map(|n| n as usize),
            anthropic_api_key,
            anthropic_base_url: parse_base_url(env.get("ANTHROPIC_BASE_URL"))?,
            default_model: env
                .get("DEFAULT_MODEL")
                .unwrap_or_else(|| "claude-sonnet-4-6".into()),
            default_max_tokens: env.parse_range("DEFAULT_MAX_TOKENS", 1024, 1, 128_000)? as u32,
            upstream_timeout: Duration::from_secs(env.parse_range(
                "UPSTREAM_TIMEOUT_SECS",
                25,
                1,
                900,
            )?),
            upstream_max_retries: env.parse_range("UPSTREAM_MAX_RETRIES", 2, 0, 10)? as u32,
            request_deadline: Duration::from_secs(env.parse_range(
                "REQUEST_DEADLINE_SECS",
                28,
                1,
                900,
            )?),
            fallback_model: env.get("FALLBACK_MODEL"),
            redis,
            redis_timeout: Duration::from_millis(env.parse_range(
                "REDIS_TIMEOUT_MS",
                500,
                1,
                60_000,
            )?),
            redis_failure_mode: match env.get("REDIS_FAILURE_MODE").as_deref() {
                None | Some("open") => RedisFailureMode::Open,
                Some("closed") => RedisFailureMode::Closed,
                Some(other) => {
                    return Err(ConfigError {
                        var: "REDIS_FAILURE_MODE",
                        problem: format!("{other:?} is not a mode"),
                        accepted: "open or closed",
                    });
                }
            },
            cache_ttl_secs: env.parse_range("CACHE_TTL_SECS", 86_400, 1, cache_max_ttl_secs)?,
            cache_max_ttl_secs,
            memory_cache_max_entries: env.parse_range(
                "MEMORY_CACHE_MAX_ENTRIES",
                10_000,
                1,
                10_000_000,
            )? as usize,
            daily_request_limit: env.parse_range("DAILY_REQUEST_LIMIT", 10_000, 0, u64::MAX)?,
            daily_budget: daily_budget_usd.map(Micros::from_usd),
            tenant_limits: parse_tenant_limits(env.get("TENANT_LIMITS"))?,
            gateway_keys,
            allow_anonymous,
            max_body_bytes: env.parse_range("MAX_BODY_BYTES", 262_144, 1024, 64 << 20)? as usize,
            pricing_file: env.get("PRICING_FILE").map(PathBuf::from),
            log_format: match env.get("LOG_FORMAT").as_deref() {
                None if runtime == Runtime::Lambda => LogFormat::Json,
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError {
                        var: "LOG_FORMAT",
                        problem: format!("{other:?} is not a format"),
                        accepted: "json or text",
                    });
                }
            },
            log_prompts: env.parse_bool("LOG_PROMPTS", false)?,
            mock_upstream,
            prompt_cache: env.parse_bool("PROMPT_CACHE", true)?,
            prompt_cache_ttl: match env.get("PROMPT_CACHE_TTL").as_deref() {
                None | Some("5m") => PromptCacheTtl::FiveMinutes,
                Some("1h") => PromptCacheTtl::OneHour,
                Some(other) => {
                    return Err(ConfigError {
                        var: "PROMPT_CACHE_TTL",
                        problem: format!("{other:?} is not a prompt-cache lifetime"),
                        accepted: "5m or 1h",
                    });
                }
            },
            routing_rules: parse_routing_rules(env.get("ROUTING_RULES"))?,
            summary_webhook_url: match env.get("SUMMARY_WEBHOOK_URL") {
                None => None,
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Some(SecretString::from(url))
                }
                Some(_) => {
                    return Err(ConfigError {
                        var: "SUMMARY_WEBHOOK_URL",
                        problem: "is not an http(s) URL".into(),
                        accepted: "a webhook URL such as https://hook.eu1.make.com/...",
                    });
                }
            },
        };
        Ok(config)
    }

    /// The daily request limit and budget that apply to `tenant`.
    pub fn limits_for(&self, tenant: &str) -> (u64, Option<Micros>) {
        let overrides = self.tenant_limits.get(tenant);
        let requests = overrides
            .and_then(|o| o.daily_request_limit)
            .unwrap_or(self.daily_request_limit);
        let budget = overrides
            .and_then(|o| o.daily_budget_usd.map(Micros::from_usd))
            .or(self.daily_budget);
        (requests, budget)
    }
}

/// The environment seen through a lookup function, with typed getters that name the variable.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn parse_range(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError {
                var,
                problem: format!("{raw:?} is not a whole number from {min} to {max}"),
                accepted: "a whole number in that range",
            }),
        }
    }

    fn parse_bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self
            .get(var)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError {
                var,
                problem: format!("{other:?} is not a boolean"),
                accepted: "true or false",
            }),
        }
    }

    fn parse_opt_f64(&self, var: &'static str) -> Result<Option<f64>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(None);
        };
        match raw.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err(ConfigError {
                var,
                problem: format!("{raw:?} is not an amount of dollars"),
                accepted: "a non-negative number such as 5 or 12.50",
            }),
        }
    }

    fn parse_with<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: &str,
        accepted: &'static str,
    ) -> Result<T, ConfigError> {
        let raw = self.get(var).unwrap_or_else(|| default.to_string());
        raw.trim().parse().map_err(|_| ConfigError {
            var,
            problem: format!("{raw:?} cannot be parsed"),
            accepted,
        })
    }
}

fn parse_base_url(raw: Option<String>) -> Result<String, ConfigError> {
    let url = raw.unwrap_or_else(|| "https://api.anthropic.com".into());
    let url = url.trim().trim_end_matches('/').to_string();
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(url),
        _ => Err(ConfigError {
            var: "ANTHROPIC_BASE_URL",
            problem: format!("{url:?} is not an http(s) URL"),
            accepted: "an http:// or https:// URL such as https://api.anthropic.com",
        }),
    }
}

/// `name:secret,name2:secret2`. The problem text never repeats a secret.
fn parse_gateway_keys(raw: Option<String>) -> Result<Vec<GatewayKey>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut keys: Vec<GatewayKey> = Vec::new();
    for (index, pair) in raw.split(',').map(str::trim).enumerate() {
        if pair.is_empty() {
            continue;
        }
        let bad = |problem: String| ConfigError {
            var: "GATEWAY_API_KEYS",
            problem,
            accepted: "comma-separated name:secret pairs; names of letters, digits, _ . -; secrets of 16+ characters",
        };
        let Some((name, secret)) = pair.split_once(':') else {
            return Err(bad(format!("entry {} has no ':'", index + 1)));
        };
        let name = name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad(format!(
                "entry {} has an invalid tenant name",
                index + 1
            )));
        }
        if secret.trim().len() < 16 {
            return Err(bad(format!(
                "the secret for tenant {name:?} is shorter than 16 characters"
            )));
        }
        keys.push(GatewayKey {
            tenant: name.to_string(),
            secret: SecretString::from(secret.trim()),
        });
    }
    Ok(keys)
}

fn parse_routing_rules(raw: Option<String>) -> Result<Vec<RoutingRule>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default_routing_rules());
    };
    let accepted = r#"a JSON list like [{"max_words":50,"model":"claude-haiku-4-5"},{"model":"claude-sonnet-4-6"}], the last rule without max_words"#;
    let rules: Vec<RoutingRule> = serde_json::from_str(&raw).map_err(|e| ConfigError {
        var: "ROUTING_RULES",
        problem: format!("is not valid: {e}"),
        accepted,
    })?;
    let problem = if rules.is_empty() {
        Some("has no rules".to_string())
    } else if rules.last().is_some_and(|r| r.max_words.is_some()) {
        Some("has no catch-all: the last rule must have no max_words".to_string())
    } else {
        rules
            .iter()
            .find(|r| r.model.trim().is_empty() || r.model == "auto")
            .map(|r| format!("names the model {:?}, which cannot answer", r.model))
    };
    match problem {
        Some(problem) => Err(ConfigError {
            var: "ROUTING_RULES",
            problem,
            accepted,
        }),
        None => Ok(rules),
    }
}

fn parse_tenant_limits(raw: Option<String>) -> Result<HashMap<String, TenantLimits>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(HashMap::new());
    };
    let limits: HashMap<String, TenantLimits> =
        serde_json::from_str(&raw).map_err(|e| ConfigError {
            var: "TENANT_LIMITS",
            problem: format!("is not valid: {e}"),
            accepted: r#"JSON like {"acme":{"daily_request_limit":500,"daily_budget_usd":5}}"#,
        })?;
    for (tenant, l) in &limits {
        if l.daily_budget_usd
            .is_some_and(|b| !b.is_finite() || b < 0.0)
        {
            return Err(ConfigError {
                var: "TENANT_LIMITS",
                problem: format!("tenant {tenant:?} has a negative or invalid budget"),
                accepted: "daily_budget_usd >= 0",
            });
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(c.default_model, "claude-sonnet-4-6");
        assert_eq!(c.cache_ttl_secs, 86_400);
        assert_eq!(c.daily_request_limit, 10_000);
        assert_eq!(c.max_body_bytes, 262_144);
        assert_eq!(c.runtime, Runtime::Local);
        assert!(c.allow_anonymous);
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let err = config(&[("DAILY_REQUEST_LIMIT", "lots")]).unwrap_err();
        assert_eq!(err.var, "DAILY_REQUEST_LIMIT");
        assert!(err.to_string().contains("lots"));
        let err = config(&[("REDIS_URL", "http://x")]).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
    }

    #[test]
    fn lambda_refuses_to_start_without_an_api_key_or_gateway_keys() {
        let err = config(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]).unwrap_err();
        assert_eq!(err.var, "ANTHROPIC_API_KEY");
        let err = config(&[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("ANTHROPIC_API_KEY", "sk-ant-x"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "GATEWAY_API_KEYS");
    }

    #[test]
    fn gateway_key_errors_never_repeat_the_secret() {
        let err = config(&[("GATEWAY_API_KEYS", "acme:short-secret")]).unwrap_err();
        assert!(!err.to_string().contains("short-secret"));
    }

    #[test]
    fn tenant_overrides_win_over_the_defaults() {
        let c = config(&[
            ("DAILY_BUDGET_USD", "10"),
            (
                "TENANT_LIMITS",
                r#"{"acme":{"daily_request_limit":5,"daily_budget_usd":0.5}}"#,
            ),
        ])
        .unwrap();
        assert_eq!(c.limits_for("acme"), (5, Some(Micros(500_000))));
        assert_eq!(c.limits_for("other"), (10_000, Some(Micros(10_000_000))));
    }
}
