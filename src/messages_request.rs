//! The `/v1/messages` body, checked at the edge only as far as the gateway relies on it: a JSON
//! object with a `model`, a positive `max_tokens`, a non-empty `messages` array and, if present,
//! a boolean `stream`. Every other field is Claude's business and goes upstream untouched.

use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::upstream::mock::text_of;

/// Fields that do not change the answer, so not part of the cache key: how it is delivered,
/// and the caller's own labels.
const NOT_IN_KEY: &[&str] = &["stream", "metadata"];

#[derive(Debug, Clone)]
pub struct MessagesRequest {
    /// The body as received: what is forwarded.
    pub raw: Bytes,
    body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
}

impl MessagesRequest {
    pub fn parse(raw: Bytes) -> Result<MessagesRequest, GatewayError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(GatewayError::InvalidJson(
                "the body is empty; send a Messages API request".into(),
            ));
        }
        let value: Value =
            serde_json::from_slice(&raw).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
        let Value::Object(body) = value else {
            return Err(invalid("The body must be a JSON object."));
        };
        let model = match body.get("model") {
            Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
            None | Some(Value::Null) => return Err(invalid("model: Field required.")),
            Some(_) => return Err(invalid("model: must be a non-empty string.")),
        };
        match body.get("max_tokens") {
            None | Some(Value::Null) => return Err(invalid("max_tokens: Field required.")),
            Some(n) if n.as_u64().is_some_and(|n| n >= 1) => {}
            Some(_) => return Err(invalid("max_tokens: must be a positive integer.")),
        }
        match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {}
            Some(Value::Array(_)) => {
                return Err(invalid("messages: at least one message is required."));
            }
            None | Some(Value::Null) => return Err(invalid("messages: Field required.")),
            Some(_) => return Err(invalid("messages: must be an array of messages.")),
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => return Err(invalid("stream: must be a boolean.")),
        };
        Ok(MessagesRequest {
            raw,
            body,
            model,
            stream,
        })
    }

    /// The request in canonical form, for the cache key: object keys sorted at every depth,
    /// without the fields that do not change the answer ([`NOT_IN_KEY`]).
    pub fn canonical(&self) -> Canonical<'_> {
        Canonical(&self.body)
    }

    /// The same request asking `model` instead (for `FALLBACK_MODEL`), re-encoded.
    pub fn with_model(&self, model: &str) -> MessagesRequest {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(model.into()));
        MessagesRequest {
            raw: Bytes::from(Value::Object(body.clone()).to_string()),
            body,
            model: model.into(),
            stream: self.stream,
        }
    }

    /// The system prompt's text, for the request log (`LOG_PROMPTS=true`).
    pub fn system_text(&self) -> Option<String> {
        self.body.get("system").map(text_of)
    }

    /// The last user message's text, for the request log (`LOG_PROMPTS=true`).
    pub fn last_user_text(&self) -> Option<String> {
        self.body
            .get("messages")?
            .as_array()?
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
    }
}

fn invalid(message: &str) -> GatewayError {
    GatewayError::InvalidRequest(message.to_string())
}

/// The request body without [`NOT_IN_KEY`], serialized with sorted keys.
pub struct Canonical<'a>(&'a Map<String, Value>);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        sorted_map(
            self.0
                .iter()
                .filter(|(k, _)| !NOT_IN_KEY.contains(&k.as_str())),
            s,
        )
    }
}

/// Sorts explicitly: `serde_json::Map` keeps insertion order when any crate in the build turns
/// on serde_json's `preserve_order`.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => sorted_map(map.iter(), s),
            Value::Array(items) => s.collect_seq(items.iter().map(Sorted)),
            other => other.serialize(s),
        }
    }
}

fn sorted_map<'a, S: Serializer>(
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    s.collect_map(entries.into_iter().map(|(k, v)| (k, Sorted(v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<MessagesRequest, GatewayError> {
        MessagesRequest::parse(Bytes::from(body.to_string()))
    }

    fn canonical(body: &str) -> String {
        serde_json::to_string(&parse(body).unwrap().canonical()).unwrap()
    }

    #[test]
    fn key_order_stream_and_metadata_do_not_change_the_canonical_form() {
        let a = canonical(
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"stream":true,"metadata":{"user_id":"u1"}}"#,
        );
        let b = canonical(
            r#"{"messages":[{"content":[{"cache_control":{"type":"ephemeral"},"text":"hi","type":"text"}],"role":"user"}],"max_tokens":5,"model":"m"}"#,
        );
        assert_eq!(a, b);
        assert!(!a.contains("stream") && !a.contains("user_id"));
        assert!(a.contains("cache_control"));
        let c = canonical(
            r#"{"model":"m","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_ne!(a, c);
    }

    #[test]
    fn only_what_the_gateway_relies_on_is_checked() {
        let ok = parse(r#"{"model":"m","max_tokens":1,"messages":[{}],"anything":{"x":1}}"#);
        assert!(!ok.unwrap().stream);
        for (body, field) in [
            ("[]", "JSON object"),
            (r#"{"max_tokens":1,"messages":[{}]}"#, "model"),
            (r#"{"model":"m","messages":[{}]}"#, "max_tokens"),
            (
                r#"{"model":"m","max_tokens":0,"messages":[{}]}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","max_tokens":1.5,"messages":[{}]}"#,
                "max_tokens",
            ),
            (r#"{"model":"m","max_tokens":1,"messages":[]}"#, "messages"),
            (
                r#"{"model":"m","max_tokens":1,"messages":"hi"}"#,
                "messages",
            ),
            (
                r#"{"model":"m","max_tokens":1,"messages":[{}],"stream":"yes"}"#,
                "stream",
            ),
        ] {
            let message = parse(body).unwrap_err().to_string();
            assert!(message.contains(field), "{body}: {message}");
        }
        assert!(matches!(parse("{"), Err(GatewayError::InvalidJson(_))));
        assert!(matches!(parse(" "), Err(GatewayError::InvalidJson(_))));
    }

    #[test]
    fn another_model_changes_only_the_model() {
        let request = parse(r#"{ "model" : "m", "max_tokens": 1, "messages": [{}] }"#).unwrap();
        let other = request.with_model("n");
        let body: Value = serde_json::from_slice(&other.raw).unwrap();
        assert_eq!(body["model"], "n");
        assert_eq!(body["max_tokens"], 1);
        assert_eq!(other.model, "n");
    }
}
