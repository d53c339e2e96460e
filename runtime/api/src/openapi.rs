//! The OpenAPI 3.0 document, generated from the route types: schemas by `schemars` (which reads the same serde
//! attributes the wire uses), paths from each [`Call`]'s method and template.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::routes::{Visit, visit};
use crate::{API_VERSION, Call, ErrorBody, ErrorClass, Method, path_parameters};

/// What `PUT /v1/uploads` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct UploadAnswer {
    /// The token (32 hex digits): `upload:TOKEN/NAME` in a request of `command`, by this principal, once.
    pub upload: String,
    pub command: String,
    pub sha256: String,
    pub bytes: u64,
}

const ERROR_STATUSES: [u16; 8] = [400, 401, 403, 404, 409, 413, 429, 500];

struct Paths {
    generator: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Paths {
    /// A schema in OpenAPI 3.0's dialect (`nullable`, no type arrays), as the definitions are.
    fn dialect(&mut self, schema: Value) -> Value {
        let Ok(mut schema) = schemars::Schema::try_from(schema.clone()) else { return schema };
        for t in self.generator.transforms_mut() {
            t.transform(&mut schema);
        }
        schema.to_value()
    }

    /// The definition a schema refers to (following `$ref`s), or the schema itself.
    fn resolve(&self, schema: &Value) -> Value {
        let mut at = schema.clone();
        for _ in 0..8 {
            let Some(name) = at.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) else {
                break;
            };
            match self.generator.definitions().get(name) {
                Some(def) => at = def.clone(),
                None => break,
            }
        }
        at
    }

    fn operation<C: Call>(&mut self) -> Value {
        let request = self.generator.subschema_for::<C>().to_value();
        let answer = self.generator.subschema_for::<C::Answer>().to_value();
        let definition = self.resolve(&request);
        let properties = definition.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let required: Vec<&str> = definition
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let in_path = path_parameters(C::PATH);
        let mut parameters = Vec::new();
        for name in &in_path {
            let schema = properties.get(*name).cloned().unwrap_or_else(|| json!({ "type": "string" }));
            let schema = self.dialect(schema);
            parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": schema }));
        }
        let mut op = Map::new();
        op.insert("operationId".into(), json!(C::NAME));
        op.insert("summary".into(), json!(C::SUMMARY));
        op.insert("tags".into(), json!([C::NAME.split('.').next().unwrap_or(C::NAME)]));
        match C::METHOD {
            Method::Get => {
                for (name, schema) in &properties {
                    if in_path.contains(&name.as_str()) {
                        continue;
                    }
                    let schema = self.dialect(schema.clone());
                    let mut p = json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": schema });
                    if let Some(d) = schema.get("description") {
                        p["description"] = d.clone();
                    }
                    parameters.push(p);
                }
            }
            Method::Post => {
                let body = if in_path.is_empty() {
                    request.clone()
                } else {
                    // The body is the request without what travels in the path.
                    let mut inline = definition.clone();
                    if let Some(props) = inline.get_mut("properties").and_then(Value::as_object_mut) {
                        for name in &in_path {
                            props.remove(*name);
                        }
                    }
                    if let Some(req) = inline.get_mut("required").and_then(Value::as_array_mut) {
                        req.retain(|r| !r.as_str().is_some_and(|r| in_path.contains(&r)));
                        if req.is_empty() {
                            inline.as_object_mut().map(|o| o.remove("required"));
                        }
                    }
                    inline.as_object_mut().map(|o| o.remove("title"));
                    inline
                };
                let body = self.dialect(body);
                // A body is required only when it has a required field; a request of optional fields (or none)
                // may be sent without one.
                let resolved = self.resolve(&body);
                let needed = resolved.get("required").and_then(Value::as_array).is_some_and(|r| !r.is_empty());
                op.insert(
                    "requestBody".into(),
                    json!({ "required": needed, "content": { "application/json": { "schema": body } } }),
                );
            }
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        let answer = self.dialect(answer);
        let mut responses = Map::new();
        responses.insert(
            C::STATUS.to_string(),
            json!({ "description": "done", "content": { "application/json": { "schema": answer } } }),
        );
        for status in ERROR_STATUSES {
            responses.insert(status.to_string(), json!({ "$ref": "#/components/responses/Error" }));
        }
        op.insert("responses".into(), Value::Object(responses));
        Value::Object(op)
    }

    fn add(&mut self, path: &str, method: &str, operation: Value) {
        let item = self.paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        item[method] = operation;
    }
}

impl Visit for Paths {
    fn call<C: Call>(&mut self) {
        let op = self.operation::<C>();
        self.add(C::PATH, C::METHOD.name(), op);
    }
}

fn errors_description() -> String {
    let mut by_status = std::collections::BTreeMap::<u16, Vec<&str>>::new();
    for c in ErrorClass::ALL {
        by_status.entry(c.status()).or_default().push(c.id());
    }
    let lines: Vec<String> = by_status.iter().map(|(s, ids)| format!("{s}: {}", ids.join(", "))).collect();
    format!(
        "Refused or failed: the zone's error class (one status per class) and the host's message. {}",
        lines.join("; ")
    )
}

/// The whole API description.
pub fn openapi() -> Value {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let mut paths = Paths { generator: settings.into_generator(), paths: Map::new() };
    visit(&mut paths);
    let error = paths.generator.subschema_for::<ErrorBody>().to_value();
    let upload = paths.generator.subschema_for::<UploadAnswer>().to_value();
    let error_ref = json!({ "$ref": "#/components/responses/Error" });
    let errors = |statuses: &[u16]| -> Value {
        Value::Object(statuses.iter().map(|s| (s.to_string(), error_ref.clone())).collect())
    };
    let mut upload_responses = errors(&ERROR_STATUSES);
    upload_responses["201"] = json!({ "description": "stored in the caller's spool", "content": { "application/json": { "schema": upload } } });
    paths.add(
        "/v1/uploads",
        "put",
        json!({
            "operationId": "upload",
            "summary": "Streams a file (module, dataset file, policy, CA, evidence) into the caller's own spool, for one operation.",
            "description": "The answer's token is usable only by the principal that made it, once, in a request of the operation named by `command`, as `upload:TOKEN/NAME`. Each principal holds at most --max-uploads unused uploads and --upload-quota-mib MiB.",
            "tags": ["files"],
            "parameters": [{ "name": "command", "in": "query", "required": true, "schema": { "type": "string" },
                             "description": "The operation the file is for (`dataset.publish`, `app.submit`, …)." }],
            "requestBody": { "required": true, "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary", "minLength": 1 } } } },
            "responses": upload_responses,
        }),
    );
    let mut download_responses = errors(&ERROR_STATUSES);
    download_responses["200"] = json!({ "description": "the file's bytes (once: the file goes as it is sent)",
        "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } });
    paths.add(
        "/v1/downloads/{token}/{slot}/{name}",
        "get",
        json!({
            "operationId": "download",
            "summary": "Takes one file an operation wrote for the caller (a product, a bundle, a certificate).",
            "tags": ["files"],
            "parameters": [
                { "name": "token", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } },
                { "name": "slot", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 0, "maximum": 4294967295u32 } },
                { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } },
            ],
            "responses": download_responses,
        }),
    );
    paths.add(
        "/v1/openapi.json",
        "get",
        json!({
            "operationId": "openapi",
            "summary": "This document (the only route that needs no client certificate).",
            "tags": ["api"],
            "security": [],
            "responses": { "200": { "description": "the API description", "content": { "application/json": { "schema": { "type": "object" } } } } },
        }),
    );
    let schemas: Map<String, Value> = paths.generator.take_definitions(true).into_iter().collect();
    let mut sorted_paths: Vec<(String, Value)> = paths.paths.into_iter().collect();
    sorted_paths.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "cleanroom zone API",
            "version": API_VERSION,
            "description": "The zone runtime over HTTPS with mutual TLS. Every request but this document's needs a client certificate issued by a CA registered for the principal's organisation (`org add`); its subject CN names the principal and its O the organisation; a suspended or removed principal, or a revoked certificate, is refused. Requests are decided by the same authorization as the local CLI, and every change and every refusal is in the zone's audit log with the certificate's identity (`via`). Fields named in a path travel there; a GET's other fields are query parameters, a POST's a JSON body. Files go up first (`PUT /v1/uploads`) and are named `upload:TOKEN/NAME` in the request.",
        },
        "servers": [{ "url": "https://localhost:8443" }],
        "paths": Value::Object(sorted_paths.into_iter().collect()),
        "components": {
            "schemas": Value::Object(schemas),
            "responses": {
                "Error": { "description": errors_description(), "content": { "application/json": { "schema": error } } },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in document is the one the types generate (`BLESS=1` rewrites it).
    #[test]
    fn the_checked_in_openapi_json_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let generated = openapi();
        let text = serde_json::to_string_pretty(&generated).expect("json") + "\n";
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(path, &text).expect("write openapi.json");
        }
        let checked_in: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("openapi.json")).expect("valid JSON");
        assert!(
            checked_in == generated,
            "runtime/api/openapi.json differs from the types: run `BLESS=1 cargo test -p zone-api` and review the diff"
        );
    }

    #[test]
    fn every_route_has_a_unique_operation_and_documents_its_errors() {
        let doc = openapi();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "{id} twice");
                if path != "/v1/openapi.json" {
                    assert!(op["responses"]["403"].is_object(), "{method} {path} documents no 403");
                }
                for p in path_parameters(path) {
                    let params = op["parameters"].as_array().expect("parameters");
                    assert!(params.iter().any(|x| x["name"] == p && x["in"] == "path"), "{method} {path}: {p}");
                }
            }
        }
        assert!(ids.len() > 50, "{} operations", ids.len());
    }
}
