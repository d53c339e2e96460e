//! The router: every route of `zone-api`, each answered by its `zone-ops` operation as the certificate's principal
//! (one generic handler), plus the few the server answers itself (identity, the queue, uploads, downloads). Every
//! refusal is an [`ErrorBody`] with one [`ErrorClass`], whose HTTP status the class decides.

use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::body::Body;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use zone_api::routes::{JobSubmit, Visit, WhoAmI, WhoAmIAnswer};
use zone_api::{Call, ErrorClass, Method};
use zone_ops::{Handle, Session};
use zone_store::NoProgress;

use crate::ServerState;
use crate::caller::{ApiError, ApiResult, Caller, blocking, open_as};
use crate::spool::ServerFiles;

/// The most bytes of a JSON request body.
pub const MAX_BODY: usize = 1 << 20;

/// The API description, generated from the types once.
static OPENAPI: LazyLock<String> = LazyLock::new(|| zone_api::openapi().to_string());

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI.as_str()).into_response()
}

/// Adds every operation of `zone-api` that `zone-ops` answers.
struct Routes {
    router: Option<axum::Router<Arc<ServerState>>>,
}

impl Routes {
    fn add<C: Handle>(&mut self) {
        let Some(router) = self.router.take() else { return };
        let method = match C::METHOD {
            Method::Get => get(operation::<C>),
            Method::Post => post(operation::<C>),
        };
        self.router = Some(router.route(C::PATH, method));
    }
}

/// `zone_api::routes::visit` hands every route's type; the ones the server answers itself are added by [`router`].
macro_rules! handled_by_ops {
    ($($t:ty),* $(,)?) => {
        impl Visit for Routes {
            fn call<C: Call>(&mut self) {
                let id = std::any::TypeId::of::<C>();
                $(if id == std::any::TypeId::of::<$t>() { return self.add::<$t>(); })*
            }
        }
    };
}

use zone_api::routes as r;
handled_by_ops!(
    r::ZoneAbout,
    r::ZoneStatus,
    r::ZoneVerify,
    r::DatasetPublish,
    r::DatasetList,
    r::DatasetShow,
    r::DatasetRows,
    r::DatasetMock,
    r::PrincipalAdd,
    r::PrincipalList,
    r::PrincipalSuspend,
    r::PrincipalResume,
    r::PrincipalRemove,
    r::OrgAdd,
    r::OrgList,
    r::CertList,
    r::CertRevoke,
    r::GrantCreate,
    r::GrantList,
    r::GrantShow,
    r::GrantSuspend,
    r::GrantResume,
    r::GrantTerminate,
    r::AppSubmit,
    r::AppList,
    r::AppShow,
    r::AppApprove,
    r::AppReject,
    r::ModuleCheck,
    r::AuditLog,
    r::AuditVerify,
    r::AuditExport,
    r::AuditCompact,
    r::JobList,
    r::JobStatus,
    r::JobCancel,
    r::JobDiagnostics,
    r::JobProduct,
    r::ArtifactList,
    r::ArtifactReview,
    r::ArtifactRelease,
    r::ArtifactReject,
    r::ArtifactOutput,
    r::ComplaintFile,
    r::ComplaintResolve,
    r::ComplaintList,
    r::IncidentOpen,
    r::IncidentClose,
    r::IncidentList,
    r::ReportUsage,
    r::BudgetShow,
);

/// The router: every route of the API description.
pub fn router(state: Arc<ServerState>) -> axum::Router {
    let mut routes = Routes {
        router: Some(
            axum::Router::new()
                .route("/v1/openapi.json", get(openapi))
                .route(WhoAmI::PATH, get(whoami))
                .route(JobSubmit::PATH, post(submit_job))
                .route("/v1/uploads", put(crate::spool::upload))
                .route("/v1/downloads/{token}/{slot}/{name}", get(crate::spool::download)),
        ),
    };
    zone_api::routes::visit(&mut routes);
    routes
        .router
        .unwrap_or_default()
        .fallback(|| async { ApiError::new(ErrorClass::RequestRoute, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorClass::RequestRoute, "no such method on this route")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::access::log_request))
        .with_state(state)
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes (none is an empty object).
async fn json_body(body: Body) -> ApiResult<Option<serde_json::Value>> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        ApiError::new(ErrorClass::RequestTooLarge, format!("the request body is over {MAX_BODY} bytes or broken: {e}"))
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::new(ErrorClass::RequestInvalid, format!("the body is not JSON: {e}")))
}

/// The request `C` from its path, query and body.
async fn request<C: Call>(params: &RawPathParams, query: Option<String>, body: Body) -> ApiResult<C> {
    let path: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let query: Vec<(String, String)> = match query.as_deref() {
        Some(q) if !q.is_empty() => serde_urlencoded::from_str(q)
            .map_err(|e| ApiError::new(ErrorClass::RequestInvalid, format!("the query string does not parse: {e}")))?,
        _ => Vec::new(),
    };
    let body = match C::METHOD {
        Method::Post => json_body(body).await?,
        Method::Get => None,
    };
    zone_api::merge::<C>(&path, &query, body)
        .map_err(|e| ApiError::new(ErrorClass::RequestInvalid, format!("not a request of `{}`: {e}", C::NAME)))
}

/// Every operation `zone-ops` answers: the request, the caller's zone, its uploads and downloads.
async fn operation<C: Handle>(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    params: RawPathParams,
    RawQuery(query): RawQuery,
    body: Body,
) -> ApiResult<Response> {
    let req = request::<C>(&params, query, body).await?;
    blocking(move || {
        let (zone, who) = open_as(&s.root, &c)?;
        let files = ServerFiles::new(&s, &who)?;
        let mut progress = NoProgress;
        let mut session = Session { zone, who, files: &files, progress: &mut progress };
        let answer = req.handle(&mut session);
        drop(session);
        let answer = files.finish(answer)?;
        // A CA registered through the server takes effect for the next handshake.
        if matches!(C::NAME, "org.add" | "principal.add")
            && let Some(v) = &s.verifier
        {
            v.refresh();
        }
        let status = StatusCode::from_u16(C::STATUS).unwrap_or(StatusCode::OK);
        Ok((status, Json(answer)).into_response())
    })
    .await
}

async fn whoami(State(s): State<Arc<ServerState>>, Caller(c): Caller) -> ApiResult<Json<WhoAmIAnswer>> {
    blocking(move || {
        let (_, who) = open_as(&s.root, &c)?;
        Ok(Json(WhoAmIAnswer {
            name: who.name,
            role: who.role,
            org: who.org,
            certificate: zone_api::routes::CertificateSeen {
                subject_cn: c.common_name.clone(),
                subject_o: c.organisation.clone(),
                sha256: c.fingerprint.clone(),
            },
        }))
    })
    .await
}

/// The most rows a batch may have.
const MAX_BATCH_ROWS: u64 = 1 << 20;

async fn submit_job(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    params: RawPathParams,
    body: Body,
) -> ApiResult<Response> {
    let req = request::<JobSubmit>(&params, None, body).await?;
    let queue = s.queue.clone();
    blocking(move || {
        let (zone, who) = open_as(&s.root, &c)?;
        if req.batch_rows.is_some_and(|b| b == 0 || b > MAX_BATCH_ROWS) {
            return Err(ApiError::new(ErrorClass::InputInvalid, format!("batch_rows must be 1 to {MAX_BATCH_ROWS}")));
        }
        let waiting = zone.queued_job_ids()?.len();
        if waiting >= s.max_queued {
            let detail =
                format!("{waiting} jobs are waiting (the server takes at most {}); try again later", s.max_queued);
            zone.record_refusal(&who, "job.run", &[format!("app:{}", req.app)], "queue.full", &detail)?;
            return Err(ApiError::new(ErrorClass::QueueFull, detail));
        }
        let record = zone.enqueue_job(&who, req.app, req.batch_rows.map(|b| b as usize))?;
        queue.notify();
        Ok((StatusCode::ACCEPTED, Json(record)).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;
    use zone_store::StoreError;

    /// Every route of the description is served by the router (a request without a TLS identity gets 401 from the
    /// route's handler, not 404/405 from the router), and an unlisted one is not.
    #[tokio::test(flavor = "current_thread")]
    async fn the_router_serves_every_route_in_the_description() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = router(Arc::new(ServerState::for_tests(dir.path())));
        let doc = zone_api::openapi();
        let mut served = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("item").keys() {
                let uri = path
                    .split('/')
                    .map(|seg| match seg {
                        "{slot}" => "0",
                        s if s.starts_with('{') => "1",
                        s => s,
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let req = axum::http::Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("content-type", "application/json")
                    .body(Body::from("{}"))
                    .expect("request");
                let status = app.clone().oneshot(req).await.expect("infallible").status();
                let expected = if path == "/v1/openapi.json" { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
                assert_eq!(status, expected, "{method} {uri}");
                served += 1;
            }
        }
        assert!(served > 50, "{served}");
        let req = axum::http::Request::builder().uri("/v1/nothing").body(Body::empty()).expect("request");
        let answer = app.oneshot(req).await.expect("infallible");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn an_error_answer_carries_its_class_and_the_classs_status() {
        let answer = ApiError::new(ErrorClass::QueueFull, "later").into_response();
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        let answer = ApiError::from(StoreError::UnknownJob { id: 3 }).into_response();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }
}
