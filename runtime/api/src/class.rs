//! The one vocabulary of failure: every class the zone reports (in the CLI's `--json`, the API's error bodies and
//! the audit log), each with its stable id string and its HTTP status.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! classes {
    ($($(#[doc = $doc:literal])* $variant:ident = $id:literal, $status:literal;)*) => {
        /// Why something was refused or failed. Serialized as its id (`access.role`, `Timeout`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorClass {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorClass {
            /// Every class, in declaration order.
            pub const ALL: &'static [ErrorClass] = &[$(ErrorClass::$variant,)*];

            /// The stable id: what scripts match on.
            pub fn id(self) -> &'static str {
                match self {
                    $(ErrorClass::$variant => $id,)*
                }
            }

            /// The HTTP status an API answer with this class carries.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorClass::$variant => $status,)*
                }
            }

            /// The class with this id, if there is one.
            pub fn from_id(id: &str) -> Option<ErrorClass> {
                match id {
                    $($id => Some(ErrorClass::$variant),)*
                    _ => None,
                }
            }

            /// What the class means, for the API description.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorClass::$variant => concat!($($doc),*).trim_ascii(),)*
                }
            }
        }
    };
}

classes! {
    // --- who may act
    /// The client certificate is missing, from a CA that does not speak for the principal's organisation, or does not name the principal's organisation.
    AccessCertificate = "access.certificate", 403;
    /// The operator's grant does not cover the action (absent, suspended, expired, out of scope).
    AccessGrant = "access.grant", 403;
    /// The acting principal was removed.
    AccessRemoved = "access.removed", 403;
    /// The client certificate was revoked.
    AccessRevoked = "access.revoked", 403;
    /// The principal's role may not take this action.
    AccessRole = "access.role", 403;
    /// The action is outside what the principal's organisation may reach (another agency's dataset, another operator's job).
    AccessScope = "access.scope", 403;
    /// A principal may not decide its own request.
    AccessSelf = "access.self", 403;
    /// The acting principal is suspended.
    AccessSuspended = "access.suspended", 403;
    /// No principal of that name in the zone.
    AccessUnknownPrincipal = "access.unknown_principal", 403;
    // --- applications
    /// The application was decided already.
    AppDecided = "app.decided", 409;
    /// The application was refused at submission (its module, its declared output or its datasets).
    AppRefused = "app.refused", 409;
    /// No such application.
    AppUnknown = "app.unknown", 404;
    // --- held artifacts
    /// The artifact was released or rejected already.
    ArtifactDecided = "artifact.decided", 409;
    /// The artifact was not released.
    ArtifactNotReleased = "artifact.not_released", 409;
    /// No such artifact.
    ArtifactUnknown = "artifact.unknown", 404;
    // --- the audit log
    /// The audit log is append-only: the change would rewrite it.
    AuditAppendOnly = "audit.append_only", 409;
    /// The audit log could not be appended to, so nothing happened.
    AuditAppend = "audit.append", 500;
    /// An evidence bundle does not verify.
    AuditBundle = "audit.bundle", 400;
    /// Compaction would drop entries still within the retention period.
    AuditRetention = "audit.retention", 409;
    // --- columns and policies
    /// A plain or compute-only column holds values that look like identifiers.
    ColumnPlainIdentifier = "column.plain_identifier", 400;
    /// The policy does not compile.
    PolicyRefused = "policy.refused", 400;
    // --- complaints
    /// The complaint names no row of the dataset.
    ComplaintNoRows = "complaint.no_rows", 409;
    /// The complaint was resolved already.
    ComplaintResolved = "complaint.resolved", 409;
    /// No such complaint.
    ComplaintUnknown = "complaint.unknown", 404;
    /// A file to publish holds a subject that a resolved complaint withdrew from the dataset.
    ComplaintWithdrawnSubject = "complaint.withdrawn_subject", 409;
    // --- datasets
    /// The file is already a file of another provider's dataset.
    DatasetForeignContent = "dataset.foreign_content", 409;
    /// The policy names another dataset or provider than the one published.
    DatasetIdentity = "dataset.identity", 409;
    /// No such dataset or version.
    DatasetUnknown = "dataset.unknown", 404;
    /// The dataset (or enterprise) was withdrawn.
    DatasetWithdrawn = "dataset.withdrawn", 409;
    // --- downloads and uploads
    /// No such download of the caller's.
    DownloadUnknown = "download.unknown", 404;
    /// The upload was made for another command.
    UploadCommand = "upload.command", 409;
    /// The caller holds too many unused uploads, or too many bytes of them.
    UploadQuota = "upload.quota", 429;
    /// No such upload of the caller's.
    UploadUnknown = "upload.unknown", 404;
    // --- grants
    /// The grant's terms are not valid.
    GrantInvalid = "grant.invalid", 400;
    /// The grant is not in a state that allows the change.
    GrantState = "grant.state", 409;
    /// No such grant.
    GrantUnknown = "grant.unknown", 404;
    // --- incidents
    /// The incident was closed already.
    IncidentClosed = "incident.closed", 409;
    /// The operator is frozen by an open incident.
    IncidentFrozen = "incident.frozen", 409;
    /// An incident is open on this operator already.
    IncidentOpen = "incident.open", 409;
    /// The incident names no operator of the zone.
    IncidentOperator = "incident.operator", 400;
    /// No such incident.
    IncidentUnknown = "incident.unknown", 404;
    // --- input
    /// A correction date is not valid.
    InputCorrectBy = "input.correct_by", 400;
    /// An argument or field is not valid.
    InputInvalid = "input.invalid", 400;
    /// A file named does not exist.
    InputMissing = "input.missing", 404;
    /// A text file is not UTF-8.
    InputNotText = "input.not_text", 400;
    /// A data file is not readable Parquet (or CSV), or is empty.
    InputParquet = "input.parquet", 400;
    /// A reason is required and was not given (or is too long).
    InputReason = "input.reason", 400;
    /// The data does not have the columns the policy declares.
    InputSchema = "input.schema", 400;
    // --- jobs
    /// The job was cancelled.
    JobCancelled = "job.cancelled", 409;
    /// The application's datasets or module changed since approval.
    JobDrift = "job.drift", 409;
    /// The query engine failed.
    JobEngine = "job.engine", 500;
    /// The run ended without a product (the operator's one class for every failure inside the sandbox).
    JobFailed = "job.failed", 409;
    /// The run was interrupted (the process ended while it ran).
    JobInterrupted = "job.interrupted", 409;
    /// The release mode asked is not one the policies allow.
    JobMode = "job.mode", 409;
    /// The stored module does not have the approved hash.
    JobModuleHash = "job.module_hash", 409;
    /// The job released no product (it failed, or holds artifacts).
    JobNoProduct = "job.no_product", 409;
    /// The application is not approved by every party.
    JobNotApproved = "job.not_approved", 409;
    /// The job cannot be planned.
    JobPlan = "job.plan", 409;
    /// The job is not in a state that allows the change.
    JobState = "job.state", 409;
    /// No such job.
    JobUnknown = "job.unknown", 404;
    /// The server's queue is full; try again later.
    QueueFull = "queue.full", 429;
    // --- privacy budgets
    /// A dp run would spend more privacy budget than is left (the detail says what is left and when it refreshes).
    PrivacyBudget = "privacy.budget", 429;
    // --- the release gate
    /// A group key holds text the gate does not release.
    ReleaseKeyText = "release.key_text", 409;
    /// Artifacts are larger than the policies allow.
    ReleaseMaxArtifactBytes = "release.max_artifact_bytes", 409;
    /// The product is larger than the policies allow.
    ReleaseMaxOutputBytes = "release.max_output_bytes", 409;
    /// The product has more rows than the policies allow.
    ReleaseMaxOutputRows = "release.max_output_rows", 409;
    /// A release mode the policies do not allow.
    ReleaseMode = "release.mode", 409;
    /// An aggregate overflowed.
    ReleaseOverflow = "release.overflow", 409;
    /// The product's schema is not the declared one.
    ReleaseSchema = "release.schema", 409;
    // --- products
    /// A product does not verify against its signed manifest.
    ProductVerify = "product.verify", 400;
    // --- requests
    /// The request body could not be read.
    RequestBody = "request.body", 400;
    /// The request is not one the API takes (a malformed body, a parameter of the wrong type).
    RequestInvalid = "request.invalid", 400;
    /// The request is larger than the server takes.
    RequestTooLarge = "request.too_large", 413;
    /// No such route.
    RequestRoute = "request.route", 404;
    /// The request came without a client certificate (the server's own connections always have one).
    RequestUnauthenticated = "request.unauthenticated", 401;
    /// The principal exists already.
    PrincipalExists = "principal.exists", 409;
    // --- the sandbox (a guest's failure; shown to the operator only as `job.failed`)
    /// The guest ran past its CPU deadline.
    Timeout = "Timeout", 409;
    /// The guest asked for more memory than its limit.
    MemoryLimit = "MemoryLimit", 409;
    /// The guest's call stack overflowed.
    StackOverflow = "StackOverflow", 409;
    /// The guest trapped.
    GuestPanic = "GuestPanic", 409;
    /// The guest returned an error.
    GuestError = "GuestError", 409;
    /// The guest's output is not what the contract allows.
    BadOutput = "BadOutput", 409;
    /// The module imports something the zone does not grant.
    ImportDenied = "ImportDenied", 409;
    /// The module does not implement the contract.
    ContractMismatch = "ContractMismatch", 409;
    /// The module is too large or took too long to compile.
    CompileLimit = "CompileLimit", 409;
    /// The zone stopped the run (a grant suspended or ended while it ran).
    Stopped = "Stopped", 409;
    /// The module's declared output does not fit the contract.
    Contract = "contract", 409;
    // --- the zone itself
    /// The zone's files could not be read or written.
    Io = "io", 500;
    /// The catalog could not be read or written.
    Catalog = "catalog", 500;
    /// The zone's audit log is damaged.
    ZoneAudit = "zone.audit", 500;
    /// A stored object is damaged.
    ZoneDamaged = "zone.damaged", 500;
    /// A zone is there already.
    ZoneExists = "zone.exists", 409;
    /// The zone's format is not one this build reads.
    ZoneFormat = "zone.format", 500;
    /// The zone's signing key could not be read.
    ZoneKey = "zone.key", 500;
    /// No zone at that path.
    ZoneNotInitialized = "zone.not_initialized", 500;
    /// A request failed inside the server.
    ZonePanic = "zone.panic", 500;
    /// The system gave no randomness.
    ZoneRandom = "zone.random", 500;
    /// `zone.toml` is not valid.
    ZoneSettings = "zone.settings", 500;
    /// A worker thread could not be started.
    ZoneThread = "zone.thread", 500;
    /// The server answered something that is not the API (seen by a client).
    Http = "http", 502;
    /// Anything else: a failure this build does not classify.
    Internal = "internal", 500;
}

impl ErrorClass {
    /// The class of an id, with unclassified ids as [`ErrorClass::Internal`].
    pub fn of(id: &str) -> ErrorClass {
        ErrorClass::from_id(id).unwrap_or(ErrorClass::Internal)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for ErrorClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> Deserialize<'de> for ErrorClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ErrorClass, D::Error> {
        let id = String::deserialize(d)?;
        ErrorClass::from_id(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown error class `{id}`")))
    }
}

impl schemars::JsonSchema for ErrorClass {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ErrorClass".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let ids: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.id()).collect();
        schemars::json_schema!({
            "type": "string",
            "enum": ids,
            "description": "Why a request was refused or failed: a stable id scripts match on.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ErrorClass::ALL {
            assert!(seen.insert(c.id()), "{} twice", c.id());
            assert_eq!(ErrorClass::from_id(c.id()), Some(*c));
            let json = serde_json::to_string(c).expect("serialize");
            assert_eq!(serde_json::from_str::<ErrorClass>(&json).expect("deserialize"), *c);
            assert!((400..600).contains(&c.status()), "{c}");
            assert!(!c.meaning().is_empty(), "{c} has no meaning");
        }
        assert!(serde_json::from_str::<ErrorClass>("\"no.such\"").is_err());
        assert_eq!(ErrorClass::of("no.such"), ErrorClass::Internal);
    }

    #[test]
    fn statuses_follow_the_families() {
        for c in ErrorClass::ALL {
            let id = c.id();
            if id.starts_with("access.") {
                assert_eq!(c.status(), 403, "{id}");
            }
            if id.ends_with(".unknown") {
                assert_eq!(c.status(), 404, "{id}");
            }
        }
        assert_eq!(ErrorClass::QueueFull.status(), 429);
        assert_eq!(ErrorClass::PolicyRefused.status(), 400);
        assert_eq!(ErrorClass::JobDrift.status(), 409);
        assert_eq!(ErrorClass::Catalog.status(), 500);
    }
}
