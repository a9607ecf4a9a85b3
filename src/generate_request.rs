//! The `/v1/generate` body, parsed at the edge: past [`GenerateRequest::parse`] every field is
//! valid, and a mistake is a 400 that names the field.

use serde::Deserialize;

use crate::error::GatewayError;

/// Longest `model`, `template_id` or `contact_id` accepted.
const MAX_ID_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Look up, and store a complete answer.
    #[default]
    Default,
    /// Skip the lookup, call upstream, store the new answer.
    Refresh,
    /// Neither read nor write.
    Bypass,
}

/// The body as sent. Numbers may arrive as strings (`"1024"`): Make.com's mapped fields do that.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenerate {
    prompt: Option<String>,
    system: Option<String>,
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient::u64_opt")]
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::f64_opt")]
    temperature: Option<f64>,
    template_id: Option<String>,
    contact_id: Option<String>,
    cache: Option<CacheMode>,
    #[serde(default, deserialize_with = "lenient::u64_opt")]
    ttl_secs: Option<u64>,
    #[serde(default, deserialize_with = "lenient::bool_opt")]
    prompt_cache: Option<bool>,
}

/// A valid `/v1/generate` request, defaults not yet applied (they depend on settings).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub prompt: String,
    pub system: Option<String>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub template_id: Option<String>,
    pub contact_id: Option<String>,
    pub cache: CacheMode,
    pub ttl_secs: Option<u64>,
    /// `false` turns Anthropic prompt caching off for this request.
    pub prompt_cache: Option<bool>,
}

impl GenerateRequest {
    pub fn parse(body: &[u8], max_ttl_secs: u64) -> Result<GenerateRequest, GatewayError> {
        let raw: RawGenerate = parse_json(body)?;
        let invalid = |msg: String| Err(GatewayError::InvalidRequest(msg));

        let prompt = match raw.prompt {
            Some(p) if !p.trim().is_empty() => p,
            Some(_) => {
                return invalid("`prompt` is empty; send the text Claude should answer.".into());
            }
            None => return invalid("`prompt` is required: a non-empty string.".into()),
        };
        let model = match raw.model.map(|m| m.trim().to_string()) {
            Some(m) if m.is_empty() => None,
            Some(m) if m.len() > MAX_ID_CHARS || !m.chars().all(is_model_char) => {
                return invalid(
                    "`model` must be a Claude model id such as claude-sonnet-4-6 (letters, digits, - . _ @ :)."
                        .into(),
                );
            }
            other => other,
        };
        let max_tokens = match raw.max_tokens {
            None => None,
            Some(n @ 1..=128_000) => Some(n as u32),
            Some(n) => return invalid(format!("`max_tokens` is {n}; accepted: 1 to 128000.")),
        };
        let temperature = match raw.temperature {
            None => None,
            Some(t) if (0.0..=1.0).contains(&t) => Some(t),
            Some(t) => return invalid(format!("`temperature` is {t}; accepted: 0 to 1.")),
        };
        let ttl_secs = match raw.ttl_secs {
            None => None,
            Some(t) if (1..=max_ttl_secs).contains(&t) => Some(t),
            Some(t) => {
                return invalid(format!(
                    "`ttl_secs` is {t}; accepted: 1 to {max_ttl_secs} (CACHE_MAX_TTL_SECS)."
                ));
            }
        };
        Ok(GenerateRequest {
            prompt,
            system: raw.system.filter(|s| !s.is_empty()),
            model,
            max_tokens,
            temperature,
            template_id: scope_id("template_id", raw.template_id)?,
            contact_id: scope_id("contact_id", raw.contact_id)?,
            cache: raw.cache.unwrap_or_default(),
            ttl_secs,
            prompt_cache: raw.prompt_cache,
        })
    }
}

fn is_model_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@' | ':')
}

fn scope_id(field: &str, value: Option<String>) -> Result<Option<String>, GatewayError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > MAX_ID_CHARS || v.chars().any(char::is_control) => {
            Err(GatewayError::InvalidRequest(format!(
                "`{field}` must be at most {MAX_ID_CHARS} characters without control characters."
            )))
        }
        Some(v) => Ok(Some(v)),
    }
}

/// Deserializes a JSON body; a syntax error is `invalid_json`, a wrong or unknown field is
/// `invalid_request` naming the field.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::InvalidJson(
            "the body is empty; send a JSON object such as {\"prompt\": \"...\"}".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                // serde's text ends with " at line L column C"; the field name is clearer.
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_string();
                if path == "." || path.is_empty() {
                    GatewayError::InvalidRequest(format!("The body is not valid: {message}."))
                } else {
                    GatewayError::InvalidRequest(format!("`{path}`: {message}."))
                }
            }
            _ => GatewayError::InvalidJson(inner.to_string()),
        }
    })?;
    de.end()
        .map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    Ok(value)
}

/// Numbers that may arrive as strings.
mod lenient {
    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Int(u64),
        Float(f64),
        Text(String),
    }

    pub fn u64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<NumOrText>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrText::Int(n)) => Ok(Some(n)),
            Some(NumOrText::Float(f)) if f.fract() == 0.0 && (0.0..1e15).contains(&f) => {
                Ok(Some(f as u64))
            }
            Some(NumOrText::Text(s)) if s.trim().parse::<u64>().is_ok() => {
                Ok(s.trim().parse().ok())
            }
            Some(_) => Err(D::Error::custom("expected a whole number")),
        }
    }

    pub fn bool_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum BoolOrText {
            Bool(bool),
            Text(String),
        }
        match Option::<BoolOrText>::deserialize(d)? {
            None => Ok(None),
            Some(BoolOrText::Bool(b)) => Ok(Some(b)),
            Some(BoolOrText::Text(s)) => match s.trim() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(D::Error::custom("expected true or false")),
            },
        }
    }

    pub fn f64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<NumOrText>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrText::Int(n)) => Ok(Some(n as f64)),
            Some(NumOrText::Float(f)) => Ok(Some(f)),
            Some(NumOrText::Text(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(D::Error::custom("expected a number")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<GenerateRequest, GatewayError> {
        GenerateRequest::parse(body.as_bytes(), 2_592_000)
    }

    fn message(err: GatewayError) -> (String, &'static str) {
        let code = err.code();
        (err.to_string(), code)
    }

    #[test]
    fn a_typo_in_a_field_name_is_named() {
        let (msg, code) = message(parse(r#"{"promt":"hi"}"#).unwrap_err());
        assert_eq!(code, "invalid_request");
        assert!(msg.contains("promt"), "{msg}");
    }

    #[test]
    fn broken_json_is_invalid_json() {
        assert_eq!(parse(r#"{"prompt": "#).unwrap_err().code(), "invalid_json");
        assert_eq!(parse("").unwrap_err().code(), "invalid_json");
        assert_eq!(
            parse(r#"{"prompt":"a"} trailing"#).unwrap_err().code(),
            "invalid_json"
        );
    }

    #[test]
    fn wrong_types_and_ranges_name_the_field() {
        let (msg, _) = message(parse(r#"{"prompt":5}"#).unwrap_err());
        assert!(msg.contains("prompt"), "{msg}");
        let (msg, _) = message(parse(r#"{"prompt":"a","temperature":1.5}"#).unwrap_err());
        assert!(msg.contains("temperature"), "{msg}");
        let (msg, _) = message(parse(r#"{"prompt":"a","cache":"sometimes"}"#).unwrap_err());
        assert!(msg.contains("cache"), "{msg}");
        let (msg, _) = message(parse(r#"{"prompt":"a","ttl_secs":0}"#).unwrap_err());
        assert!(msg.contains("ttl_secs"), "{msg}");
        assert!(parse(r#"[1,2]"#).is_err());
    }

    #[test]
    fn numbers_may_come_as_strings_from_make() {
        let r = parse(r#"{"prompt":"a","max_tokens":"200","temperature":"0.5"}"#).unwrap();
        assert_eq!(r.max_tokens, Some(200));
        assert_eq!(r.temperature, Some(0.5));
    }

    #[test]
    fn empty_or_missing_prompt_is_refused() {
        assert!(parse(r#"{"prompt":"  "}"#).is_err());
        assert!(parse(r#"{"system":"x"}"#).is_err());
    }
}
