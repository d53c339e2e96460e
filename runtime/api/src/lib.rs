//! The zone server's HTTPS API as types: every route is a request type implementing [`Call`] (its method, its
//! path, its answer), errors carry one [`ErrorClass`], and the OpenAPI document ([`openapi`]) is generated from
//! these types — the checked-in `openapi.json` is compared with it by a test, so it cannot drift.
//!
//! A request's fields named in its path template (`/v1/grants/{id}`) travel in the path; for `GET` the others
//! travel as query parameters, for `POST` as a JSON body. The server and the client both do this from the types
//! ([`split`] and [`merge`]), so no route is written twice.

mod class;
mod openapi;
pub mod routes;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use class::ErrorClass;
pub use openapi::{UploadAnswer, openapi};

/// The largest id of a record (the catalog keeps ids as signed 64-bit integers); a request naming a larger one
/// is refused as malformed.
pub const MAX_ID: u64 = i64::MAX as u64;

/// The fields that hold record ids.
const ID_FIELDS: [&str; 4] = ["id", "app", "job", "entry"];

/// The version of the API, as in its paths (`/v1/…`) and the OpenAPI document.
pub const API_VERSION: &str = "1.0.0";

/// How a route is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Reads; changes nothing in the zone (but may be recorded, like every refused request).
    Get,
    /// Changes something, or runs work.
    Post,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
        }
    }
}

/// One route of the API: a request type, what it answers, where it lives.
pub trait Call: Serialize + DeserializeOwned + JsonSchema + Send + 'static {
    /// What a successful call answers.
    type Answer: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
    const METHOD: Method;
    /// The path template: `{field}` segments are filled from the request's fields of that name.
    const PATH: &'static str;
    /// The dotted name of the operation (`dataset.publish`): what an upload is made for, and the OpenAPI
    /// operationId.
    const NAME: &'static str;
    /// One line for the API description.
    const SUMMARY: &'static str;
    /// The status of a successful answer.
    const STATUS: u16 = 200;
}

/// A file a request reads. On the caller's own machine, a path; through a server, an upload the caller made for
/// this operation (`upload:TOKEN/NAME`, the answer of `PUT /v1/uploads?command=NAME`). The server never opens a
/// path a client names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct FileRef(
    /// `upload:TOKEN/NAME` (through a server), or a path (on the zone's machine).
    pub String,
);

impl FileRef {
    /// The upload token and file name of a remote reference, if it is one (both checked: 32 hex digits, a plain
    /// file name).
    pub fn upload(&self) -> Option<(&str, &str)> {
        let (token, name) = self.0.strip_prefix("upload:")?.split_once('/')?;
        let plain_name = !name.is_empty()
            && name.len() <= 255
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        (token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) && plain_name).then_some((token, name))
    }
}

/// A file an operation wrote, ready to take: through a server from `/v1/downloads/{download}/0/{name}`, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutputFile {
    /// Relative to the output (a plain file name).
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The files an operation wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Outputs {
    /// Through a server: the download the files are in. Absent on the zone's own machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
    pub files: Vec<OutputFile>,
}

/// What every refused or failed request answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Why a request did not happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    pub class: ErrorClass,
    /// The host's description (never text a guest wrote).
    pub message: String,
    /// The chain of causes, outermost first.
    #[serde(default)]
    pub causes: Vec<String>,
    /// For `policy.refused`: the rules the policy broke.
    #[serde(default)]
    pub rules: Vec<String>,
}

/// A request that cannot be turned into (or out of) its wire form.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the request is not a JSON object")]
    NotAnObject,
    #[error("path parameter `{0}` is missing or not a number or text")]
    PathParameter(String),
    #[error("query parameters: {0}")]
    Query(String),
    #[error("`{0}` is larger than the largest id ({MAX_ID})")]
    IdRange(String),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// The names of the `{…}` segments of a path template.
pub fn path_parameters(template: &str) -> Vec<&str> {
    template.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

/// A request in its wire form: the filled path, the query (`GET`) and the JSON body (`POST`).
#[derive(Debug, Clone, PartialEq)]
pub struct Wire {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
}

/// Splits a request into path, query and body (the client's side).
pub fn split<C: Call>(request: &C) -> Result<Wire, WireError> {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(request)? else {
        return Err(WireError::NotAnObject);
    };
    let mut path = String::new();
    for segment in C::PATH.split('/').skip(1) {
        path.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let text = match fields.remove(name) {
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    Some(serde_json::Value::String(s)) if !s.is_empty() => s,
                    _ => return Err(WireError::PathParameter(name.to_owned())),
                };
                path.push_str(&percent_encode(&text));
            }
            None => path.push_str(segment),
        }
    }
    Ok(match C::METHOD {
        Method::Get => {
            let mut query = Vec::new();
            for (k, v) in fields {
                match v {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(s) => query.push((k, s)),
                    serde_json::Value::Number(_) | serde_json::Value::Bool(_) => query.push((k, v.to_string())),
                    _ => return Err(WireError::Query(format!("`{k}` is not a plain value"))),
                }
            }
            Wire { path, query, body: None }
        }
        Method::Post => Wire { path, query: Vec::new(), body: Some(serde_json::Value::Object(fields)) },
    })
}

/// Puts a request back together from its path parameters, query and body (the server's side). A path or query
/// value is taken as a number where it reads as one and the field is not text; the request type decides.
pub fn merge<C: Call>(
    path: &[(String, String)],
    query: &[(String, String)],
    body: Option<serde_json::Value>,
) -> Result<C, WireError> {
    let mut fields = match body {
        Some(serde_json::Value::Object(m)) => m,
        None => serde_json::Map::new(),
        Some(_) => return Err(WireError::NotAnObject),
    };
    for (k, v) in query.iter().chain(path) {
        fields.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    // First as sent (text); where a field wants a number or a flag, the typed reading of the same text.
    for key in ID_FIELDS {
        let too_large = match fields.get(key) {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().is_some_and(|v| v > MAX_ID) || n.as_f64().is_some_and(|v| v > MAX_ID as f64)
            }
            Some(serde_json::Value::String(s)) => s.parse::<u128>().is_ok_and(|v| v > u128::from(MAX_ID)),
            _ => false,
        };
        if too_large {
            return Err(WireError::IdRange(key.to_owned()));
        }
    }
    let text = serde_json::Value::Object(fields.clone());
    match serde_json::from_value::<C>(text) {
        Ok(c) => Ok(c),
        Err(first) => {
            let mut typed = fields;
            for (k, _) in query.iter().chain(path) {
                if let Some(serde_json::Value::String(s)) = typed.get(k)
                    && let Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) =
                        serde_json::from_str::<serde_json::Value>(s)
                {
                    typed.insert(k.clone(), v);
                }
            }
            serde_json::from_value::<C>(serde_json::Value::Object(typed)).map_err(|_| WireError::Json(first))
        }
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::routes::{AuditLog, GrantChangeRequest, GrantShow, GrantSuspend};
    use super::*;

    #[test]
    fn a_request_splits_into_path_query_and_body_and_merges_back() {
        let show = GrantShow { id: 7 };
        let wire = split(&show).expect("split");
        assert_eq!(wire.path, "/v1/grants/7");
        assert!(wire.query.is_empty() && wire.body.is_none());
        let back: GrantShow = merge(&[("id".into(), "7".into())], &[], None).expect("merge");
        assert_eq!(back.id, 7);

        let suspend = GrantSuspend(GrantChangeRequest {
            target: "acme credit/x".into(),
            reason: "late report".into(),
            correct_by: Some("2027-01-01".into()),
        });
        let wire = split(&suspend).expect("split");
        assert_eq!(wire.path, "/v1/grants/acme%20credit%2Fx/suspend");
        let body = wire.body.clone().expect("body");
        assert!(body.get("target").is_none(), "{body}");
        let back: GrantSuspend = merge(&[("target".into(), "acme credit/x".into())], &[], wire.body).expect("merge");
        assert_eq!(back, suspend);

        let log = AuditLog { app: Some(3), action: Some("job.run".into()), ..AuditLog::default() };
        let wire = split(&log).expect("split");
        assert_eq!(wire.path, "/v1/audit");
        let back: AuditLog = merge(&[], &wire.query, None).expect("merge");
        assert_eq!(back, log);
        // A number where text is wanted stays text; a word where a number is wanted is refused.
        let text: AuditLog = merge(&[], &[("action".into(), "12".into())], None).expect("merge");
        assert_eq!(text.action.as_deref(), Some("12"));
        assert!(merge::<AuditLog>(&[], &[("app".into(), "three".into())], None).is_err());
        // Ids beyond what the catalog holds are refused before anything looks them up.
        assert!(matches!(
            merge::<GrantShow>(&[("id".into(), "9223372036854775808".into())], &[], None),
            Err(WireError::IdRange(_))
        ));
    }

    #[test]
    fn only_plain_upload_references_are_uploads() {
        let token = "0123456789abcdef0123456789abcdef";
        assert_eq!(FileRef(format!("upload:{token}/data.parquet")).upload(), Some((token, "data.parquet")));
        for bad in [
            format!("upload:{token}/../x"),
            format!("upload:{token}/.hidden"),
            format!("upload:{token}/"),
            "upload:abc/x".to_owned(),
            "/etc/passwd".to_owned(),
        ] {
            assert_eq!(FileRef(bad.clone()).upload(), None, "{bad}");
        }
    }
}
