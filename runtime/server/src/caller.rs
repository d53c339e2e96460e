//! Who is calling and how a refusal is answered: the identity a connection's certificate gives, the zone opened as
//! that principal (with every identity check), and the error answer with its [`ErrorClass`].

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use zone_api::{ErrorBody, ErrorClass, ErrorDetail};
use zone_ops::OpsError;
use zone_ops::pki::CertIdentity;
use zone_store::{Principal, StoreError, Zone};

/// The identity of the connection a request came on (set per connection after the handshake).
#[derive(Debug, Clone)]
pub struct PeerIdentity(pub Arc<Result<CertIdentity, String>>);

/// An error answer: the zone's error class (which decides the HTTP status), the message and its causes.
#[derive(Debug)]
pub struct ApiError {
    class: ErrorClass,
    message: String,
    causes: Vec<String>,
    rules: Vec<String>,
}

impl ApiError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> ApiError {
        ApiError { class, message: message.into(), causes: Vec::new(), rules: Vec::new() }
    }

    pub fn class(&self) -> ErrorClass {
        self.class
    }
}

impl From<OpsError> for ApiError {
    fn from(error: OpsError) -> ApiError {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(&error);
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        let class = error.class();
        if class == ErrorClass::Internal {
            tracing::error!(error = %error, "an error without a class");
        }
        ApiError { class, message: error.to_string(), causes, rules: error.rules() }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::from(OpsError::Store(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.class.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail { class: self.class, message: self.message, causes: self.causes, rules: self.rules },
        };
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The verified certificate of the caller (401 only when a request reached the router without a TLS identity,
/// which the server's own connections never do).
#[derive(Debug, Clone)]
pub struct Caller(pub CertIdentity);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, ApiError> {
        match parts.extensions.get::<PeerIdentity>().map(|p| p.0.as_ref()) {
            Some(Ok(id)) => Ok(Caller(id.clone())),
            Some(Err(why)) => Err(ApiError::new(ErrorClass::AccessCertificate, why.clone())),
            None => Err(ApiError::new(ErrorClass::RequestUnauthenticated, "no client certificate")),
        }
    }
}

/// Opens the zone for one request, as the caller's principal. The certificate's CN must name a principal that is
/// neither suspended nor removed; its O must be the principal's organisation (a certificate without O is refused);
/// it must have been issued by a CA registered for that organisation, and not be revoked. Every refusal is recorded.
pub(crate) fn open_as(root: &Path, caller: &CertIdentity) -> ApiResult<(Zone, Principal)> {
    let mut zone = Zone::open(root)?;
    zone.set_via(Some(caller.via()));
    // Unknown, suspended and removed principals are refused (and recorded) here.
    let who = zone.actor(&caller.common_name)?;
    let refuse = |class: &str, detail: String| -> ApiError {
        let objects = [format!("principal:{}", who.name), format!("cert:{}", caller.fingerprint)];
        match zone.record_refusal(&who, "zone.access", &objects, class, &detail) {
            Ok(()) => ApiError::new(ErrorClass::of(class), detail),
            Err(e) => ApiError::from(e),
        }
    };
    let Some(cert_org) = &caller.organisation else {
        return Err(refuse(
            "access.certificate",
            "the certificate's subject has no organisation (O): a certificate must name its principal's organisation"
                .to_owned(),
        ));
    };
    let Some(org) = &who.org else {
        return Err(refuse(
            "access.certificate",
            format!("principal `{}` has no organisation, so no CA speaks for it", who.name),
        ));
    };
    if cert_org != org {
        return Err(refuse(
            "access.certificate",
            format!(
                "the certificate's organisation `{}` is not principal `{}`'s (`{org}`)",
                cert_org.escape_debug(),
                who.name
            ),
        ));
    }
    if let Some(revoked) = zone.certificate(&caller.fingerprint)?.filter(|c| c.revoked_at.is_some()) {
        return Err(refuse(
            "access.revoked",
            format!(
                "certificate {} was revoked on {}",
                caller.fingerprint,
                revoked.revoked_at.as_deref().unwrap_or_default()
            ),
        ));
    }
    let anchors: Vec<String> = zone.trust_anchors(Some(org))?.into_iter().map(|a| a.cert_pem).collect();
    if let Err(why) = zone_ops::pki::issued_by_one_of(&caller.chain, &anchors) {
        return Err(refuse("access.certificate", format!("the certificate does not speak for `{org}`: {why}")));
    }
    Ok((zone, who))
}

/// Runs blocking zone work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorClass::ZonePanic, format!("request failed: {e}")))?
}
