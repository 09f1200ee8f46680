//! Google's published discovery documents as a contract: the vendored slices under
//! `tests/support/gcp-discovery/` (see its SOURCES.md) loaded once, and a request held to them.
//! A request passes when its method and path match a published method (including the
//! `{name}:verb` custom-method segments of the newer APIs), every query parameter is the
//! method's or the API's own, every required query parameter is there, and every field of its
//! body exists, with the right JSON type, in the method's request schema. The contract servers
//! answer a request that fails with 400 and record why, and tests assert nothing was recorded.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

const FOLDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gcp-discovery");

/// One published method.
#[derive(Debug, Clone)]
pub struct Published {
    /// The discovery id, `config.projects.locations.deployments.create`.
    pub id: String,
    http_method: String,
    template: Vec<String>,
    parameters: Map<String, Value>,
    request: Option<String>,
    document: usize,
}

/// The methods and schemas of some vendored documents.
#[derive(Debug)]
pub struct Discovery {
    methods: Vec<Published>,
    /// Per document: its global query parameters and its schemas.
    globals: Vec<Vec<String>>,
    schemas: Vec<Map<String, Value>>,
}

impl Discovery {
    /// Loads the named documents (`config.v1`) from the vendored folder; a missing or broken
    /// one is a broken checkout, so this panics naming it.
    pub fn load(documents: &[&str]) -> Discovery {
        let mut discovery = Discovery {
            methods: Vec::new(),
            globals: Vec::new(),
            schemas: Vec::new(),
        };
        for (i, name) in documents.iter().enumerate() {
            let path = format!("{FOLDER}/{name}.json");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            let prefix = doc["servicePath"].as_str().unwrap_or_default();
            collect(
                &doc,
                i,
                prefix.trim_end_matches('/'),
                &mut discovery.methods,
            );
            discovery.globals.push(
                doc["parameters"]
                    .as_object()
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default(),
            );
            discovery
                .schemas
                .push(doc["schemas"].as_object().cloned().unwrap_or_default());
        }
        discovery
    }

    /// The published method `method path` is, or every way it breaks the contract.
    pub fn check(
        &self,
        method: &Method,
        path: &[String],
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<&Published, Vec<String>> {
        let candidates: Vec<&Published> = self
            .methods
            .iter()
            .filter(|m| matches(&m.template, path))
            .collect();
        let published = match candidates.iter().find(|m| m.http_method == method.as_str()) {
            Some(m) => *m,
            None if candidates.is_empty() => {
                return Err(vec![format!(
                    "{method} /{}: no published method has this path",
                    path.join("/")
                )])
            }
            None => {
                return Err(vec![format!(
                    "{method} /{}: the published methods here are {}",
                    path.join("/"),
                    candidates
                        .iter()
                        .map(|m| format!("{} {}", m.http_method, m.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                )])
            }
        };
        let mut problems = Vec::new();
        let globals = &self.globals[published.document];
        for (key, _) in query {
            let declared = published
                .parameters
                .get(key)
                .is_some_and(|p| p["location"] == "query");
            if !declared && !globals.contains(key) {
                problems.push(format!(
                    "{}: query parameter {key} is not published",
                    published.id
                ));
            }
        }
        for (name, parameter) in &published.parameters {
            if parameter["required"] == true
                && parameter["location"] == "query"
                && !query.iter().any(|(k, _)| k == name)
            {
                problems.push(format!(
                    "{}: required query parameter {name} is missing",
                    published.id
                ));
            }
        }
        match (&published.request, body) {
            (Some(schema), Some(body)) => check_body(
                &self.schemas[published.document],
                &json!({ "$ref": schema }),
                body,
                &format!("{} body", published.id),
                &mut problems,
            ),
            (None, Some(body)) if !body.is_null() => {
                problems.push(format!("{} takes no request body", published.id))
            }
            _ => {}
        }
        if problems.is_empty() {
            Ok(published)
        } else {
            Err(problems)
        }
    }
}

fn collect(resource: &Value, document: usize, prefix: &str, out: &mut Vec<Published>) {
    if let Some(methods) = resource.get("methods").and_then(Value::as_object) {
        for method in methods.values() {
            let path = method
                .get("flatPath")
                .or_else(|| method.get("path"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push(Published {
                id: method["id"].as_str().unwrap_or_default().to_string(),
                http_method: method["httpMethod"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                template: segments(&format!("{prefix}/{path}")),
                parameters: method
                    .get("parameters")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                request: method
                    .pointer("/request/$ref")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                document,
            });
        }
    }
    if let Some(resources) = resource.get("resources").and_then(Value::as_object) {
        for child in resources.values() {
            collect(child, document, prefix, out);
        }
    }
}

/// A URL path's non-empty segments.
pub fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a template segment matches a path segment: a literal, `{variable}`, or a custom
/// method `{variable}:verb` (the path's segment must end in that `:verb`).
fn segment_matches(template: &str, segment: &str) -> bool {
    if !template.starts_with('{') {
        return template == segment;
    }
    match template.split_once("}:") {
        Some((_, verb)) => segment
            .rsplit_once(':')
            .is_some_and(|(name, v)| !name.is_empty() && v == verb),
        None => template.ends_with('}') && !segment.contains(':'),
    }
}

fn matches(template: &[String], path: &[String]) -> bool {
    template.len() == path.len()
        && template
            .iter()
            .zip(path)
            .all(|(t, p)| segment_matches(t, p))
}

/// The JSON types a discovery schema allows for `value`, and its unknown fields.
fn check_body(
    schemas: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    at: &str,
    out: &mut Vec<String>,
) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(name) => match schemas.get(name) {
            Some(s) => s,
            None => {
                out.push(format!("{at}: schema {name} is not in the vendored slice"));
                return;
            }
        },
        None => schema,
    };
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    match (kind, value) {
        (_, Value::Null) | ("any", _) => {}
        ("object", Value::Object(fields)) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, field) in fields {
                let path = format!("{at}.{key}");
                match (
                    properties.and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) | (None, Some(s)) => check_body(schemas, s, field, &path, out),
                    (None, None) => {
                        out.push(format!("{path} is not a field of the published schema"))
                    }
                }
            }
        }
        ("array", Value::Array(items)) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check_body(schemas, item, v, &format!("{at}[{i}]"), out);
                }
            }
        }
        ("string", Value::String(s)) => {
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
                if !allowed.iter().any(|a| a.as_str() == Some(s)) {
                    out.push(format!("{at} = {s:?} is not one of the published values"));
                }
            }
        }
        // int64 travels as a string, but Google's parser also takes a number.
        ("string", Value::Number(_)) if schema.get("format").is_some() => {}
        ("integer", Value::Number(_)) | ("number", Value::Number(_)) => {}
        ("integer", Value::String(s)) if s.parse::<i64>().is_ok() => {}
        ("boolean", Value::Bool(_)) => {}
        (kind, value) => out.push(format!("{at} should be {kind}, was {value}")),
    }
}

/// An error as Google's APIs answer one (`{"error": {code, message, status, errors}}`).
pub fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let status_name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        _ => "UNKNOWN",
    };
    (
        status,
        axum::Json(json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "status": status_name,
            "errors": [{"message": message, "domain": "global", "reason": reason}]
        }})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_method_segments_match_only_their_verb() {
        assert!(segment_matches("{previewsId}:export", "p-1:export"));
        assert!(!segment_matches("{previewsId}:export", "p-1:delete"));
        assert!(!segment_matches("{previewsId}:export", "p-1"));
        assert!(!segment_matches("{previewsId}", "p-1:export"));
        assert!(segment_matches("{previewsId}", "p-1"));
        assert!(segment_matches("deployments", "deployments"));
        assert!(!segment_matches("deployments", "previews"));
    }
}
