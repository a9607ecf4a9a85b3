//! `openapi.yaml` as a test oracle: the spec loaded from YAML, replies checked against the
//! response the spec documents for their route and status (content type, body, headers).
//!
//! Bodies are validated with the `jsonschema` crate as JSON Schema 2020-12 (what OpenAPI 3.1
//! schemas are), in a document that carries the spec's `components`, so `#/components/...`
//! references resolve. Object schemas are checked closed: a field the spec does not name fails
//! just like a missing or mistyped one, so the spec cannot fall behind the code unnoticed.

use std::collections::BTreeSet;

use jsonschema::Draft;
use serde_json::{Map, Value};

use super::gateway::Reply as GatewayReply;

/// Routes in the spec that do not exist yet.
pub const PLANNED: &[&str] = &["/v1/messages"];

pub struct Spec {
    pub doc: Value,
    /// `components`, with every object schema closed (see [`closed`]).
    components: Value,
    /// (path, status) pairs checked so far.
    pub checked: BTreeSet<(String, String)>,
    pub failures: Vec<String>,
}

impl Spec {
    pub fn load() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let doc: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("openapi.yaml is not valid YAML: {e}"));
        assert_eq!(doc["openapi"], "3.1.0");
        let mut components = doc["components"].clone();
        let schemas = components["schemas"].as_object().unwrap().clone();
        // A definition is closed where it is used: in allOf it must stay open.
        components["schemas"] = schemas
            .into_iter()
            .map(|(name, schema)| (name, closed(&schema, true)))
            .collect::<Map<_, _>>()
            .into();
        Spec {
            doc,
            components,
            checked: BTreeSet::new(),
            failures: Vec::new(),
        }
    }

    /// Follows an OpenAPI `$ref` (responses, headers) within the document.
    pub fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => {
                let target = self
                    .doc
                    .pointer(pointer.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("openapi.yaml: dangling $ref {pointer}"));
                self.resolve(target)
            }
            None => value,
        }
    }

    /// Checks `reply` against the response the spec documents for `method path` and its
    /// status; `what` names the case in failure messages.
    pub fn check(&mut self, method: &str, path: &str, what: &str, reply: &GatewayReply) {
        let status = reply.status.to_string();
        let Some(response) = self.doc["paths"][path][method]["responses"].get(&status) else {
            self.failures.push(format!(
                "{what}: {method} {path} answered {status}, which the spec does not list ({})",
                reply.text
            ));
            return;
        };
        let response = self.resolve(response).clone();
        self.checked.insert((path.to_string(), status));
        self.check_response(&response, what, reply);
    }

    /// Checks `reply` against a response object (content type, body schema, headers).
    pub fn check_response(&mut self, response: &Value, what: &str, reply: &GatewayReply) {
        let content_type = reply.header("content-type").unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        let Some(schema) = response["content"][media_type].get("schema") else {
            self.failures.push(format!(
                "{what}: content-type {content_type:?} is not documented (documented: {})",
                response["content"]
            ));
            return;
        };
        let body = if media_type == "application/json" {
            match serde_json::from_str(&reply.text) {
                Ok(body) => body,
                Err(e) => {
                    self.failures.push(format!(
                        "{what}: the body is not JSON ({e}): {}",
                        reply.text
                    ));
                    return;
                }
            }
        } else {
            Value::String(reply.text.clone())
        };
        self.validate(&closed(schema, false), &body, &format!("{what}: body"));
        let headers = response["headers"].as_object().cloned().unwrap_or_default();
        for (name, header) in headers {
            let Some(value) = reply.header(&name) else {
                continue;
            };
            let header = self.resolve(&header).clone();
            let value = match header["schema"]["type"].as_str() {
                Some("integer") => value
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(value)),
                _ => Value::from(value),
            };
            self.validate(&header["schema"], &value, &format!("{what}: header {name}"));
        }
    }

    pub fn validate(&mut self, schema: &Value, instance: &Value, what: &str) {
        // The schema with the components beside it, so `#/components/schemas/...` resolves.
        let mut document = Map::new();
        document.insert("components".into(), self.components.clone());
        match schema {
            Value::Object(keywords) => document.extend(keywords.clone()),
            other => panic!("{what}: a schema that is not an object: {other}"),
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&Value::Object(document))
            .unwrap_or_else(|e| panic!("{what}: the spec's schema does not compile: {e}"));
        for error in validator.iter_errors(instance) {
            self.failures.push(format!(
                "{what}: {error} (at {}; instance {instance})",
                error.instance_path()
            ));
        }
    }

    /// Every (path, status) the spec documents for the routes that exist.
    pub fn documented(&self) -> BTreeSet<(String, String)> {
        let mut all = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            if PLANNED.contains(&path.as_str()) {
                continue;
            }
            for operation in item.as_object().unwrap().values() {
                for status in operation["responses"].as_object().unwrap().keys() {
                    all.insert((path.clone(), status.clone()));
                }
            }
        }
        all
    }
}

/// The schema with every object it describes closed (`unevaluatedProperties: false`) unless
/// it says otherwise. allOf members stay open: the schema around them closes over them all,
/// since unevaluatedProperties sees what each member (and each `$ref`) evaluated.
pub fn closed(schema: &Value, in_all_of: bool) -> Value {
    let Value::Object(keywords) = schema else {
        return schema.clone();
    };
    let each = |value: &Value, in_all_of: bool| match value {
        Value::Array(items) => Value::Array(items.iter().map(|s| closed(s, in_all_of)).collect()),
        other => other.clone(),
    };
    let mut out = Map::new();
    for (keyword, value) in keywords {
        let value = match keyword.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(name, s)| (name.clone(), closed(s, false)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" => closed(value, false),
            "oneOf" | "anyOf" => each(value, false),
            "allOf" => each(value, true),
            _ => value.clone(),
        };
        out.insert(keyword.clone(), value);
    }
    let describes_object = ["$ref", "properties", "allOf"]
        .iter()
        .any(|k| out.contains_key(*k));
    let says_otherwise =
        out.contains_key("additionalProperties") || out.contains_key("unevaluatedProperties");
    if describes_object && !in_all_of && !says_otherwise {
        out.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn closing_keeps_all_of_members_open_and_closes_around_them() {
        let schema = json!({"allOf": [{"$ref": "#/x"}, {"properties": {"a": {"type": "object", "properties": {"b": {}}}}}]});
        let closed = closed(&schema, false);
        assert_eq!(closed["unevaluatedProperties"], false);
        assert!(closed["allOf"][0].get("unevaluatedProperties").is_none());
        assert!(closed["allOf"][1].get("unevaluatedProperties").is_none());
        assert_eq!(
            closed["allOf"][1]["properties"]["a"]["unevaluatedProperties"],
            false
        );
    }
}
