//! Every route: its request (the fields a caller sends), its answer, its method and path. [`visit`] lists them
//! all, for the server's router, the OpenAPI document and the tests.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zone_store::{
    AppView, BudgetLine, CertificateRecord, Complaint, DatasetSummary, DatasetVersion, Grant, GrantStatus,
    HeldArtifact, Incident, JobRecord, PrincipalRecord, PublishOutcome, Role, TrustAnchor, UsageReport, ZoneCheck,
    ZoneInfo,
};

use crate::{Call, FileRef, Method, Outputs};

/// Something that takes every route's type, one at a time.
pub trait Visit {
    fn call<C: Call>(&mut self);
}

macro_rules! calls {
    ($($req:ty => $answer:ty, $method:ident $path:literal, $name:literal, $summary:literal $(, status $status:literal)?;)*) => {
        $(
            impl Call for $req {
                type Answer = $answer;
                const METHOD: Method = Method::$method;
                const PATH: &'static str = $path;
                const NAME: &'static str = $name;
                const SUMMARY: &'static str = $summary;
                $(const STATUS: u16 = $status;)?
            }
        )*

        /// Calls `v.call::<C>()` for every route, in the order of the API description.
        pub fn visit(v: &mut impl Visit) {
            $(v.call::<$req>();)*
        }
    };
}

calls! {
    WhoAmI => WhoAmIAnswer, Get "/v1/whoami", "whoami", "The principal the client certificate names, and the certificate.";
    ZoneAbout => ZoneAboutAnswer, Get "/v1/zone", "zone.about", "The zone's id, its signing key and the server's version.";
    ZoneStatus => ZoneStatusAnswer, Get "/v1/zone/status", "zone.status", "The zone's record, key and published datasets in numbers.";
    ZoneVerify => ZoneVerifyAnswer, Post "/v1/zone/verify", "zone.verify", "Re-hashes every stored object and verifies the audit log and the access log's seals.";
    DatasetPublish => PublishOutcome, Post "/v1/datasets", "dataset.publish", "Publishes a version of a dataset from uploaded files under an uploaded policy.", status 201;
    DatasetList => Vec<DatasetSummary>, Get "/v1/datasets", "dataset.list", "The datasets of the zone (metadata: never a value).";
    DatasetShow => DatasetShowAnswer, Get "/v1/datasets/{dataset}", "dataset.show", "A dataset version: its columns, classes, release limits and files.";
    DatasetRows => DatasetRowsAnswer, Get "/v1/datasets/{dataset}/rows", "dataset.rows", "The first raw rows, for the providing agency only.";
    DatasetMock => DatasetMockAnswer, Post "/v1/datasets/{dataset}/mock", "dataset.mock", "Synthetic rows as a job sees them (no value from the data), as a Parquet file to download.";
    PrincipalAdd => PrincipalAdded, Post "/v1/principals", "principal.add", "Adds a principal; optionally registers its organisation's CA or issues a development certificate.", status 201;
    PrincipalList => Vec<PrincipalRecord>, Get "/v1/principals", "principal.list", "The principals and their standing.";
    PrincipalSuspend => PrincipalRecord, Post "/v1/principals/{name}/suspend", "principal.suspend", "Suspends a principal: every request with any of its certificates is refused.";
    PrincipalResume => PrincipalRecord, Post "/v1/principals/{name}/resume", "principal.resume", "Lifts a principal's suspension.";
    PrincipalRemove => PrincipalRecord, Post "/v1/principals/{name}/remove", "principal.remove", "Removes a principal for good (its records stay).";
    OrgAdd => OrgAdded, Post "/v1/orgs", "org.add", "Registers a CA that may speak for an organisation.", status 201;
    OrgList => Vec<OrgView>, Get "/v1/orgs", "org.list", "The organisations, their CAs and principals.";
    CertList => Vec<CertificateRecord>, Get "/v1/certificates", "cert.list", "The client certificates the zone knows of.";
    CertRevoke => CertificateRecord, Post "/v1/certificates/{fingerprint}/revoke", "cert.revoke", "Revokes a client certificate.";
    GrantCreate => GrantView, Post "/v1/grants", "grant.create", "Grants an operator the use of datasets for purposes (domains), for a period.", status 201;
    GrantList => Vec<GrantView>, Get "/v1/grants", "grant.list", "The grants the caller may see.";
    GrantShow => GrantView, Get "/v1/grants/{id}", "grant.show", "One grant.";
    GrantSuspend => Vec<GrantView>, Post "/v1/grants/{target}/suspend", "grant.suspend", "Suspends a grant (a number) or every active grant of an operator (a name).";
    GrantResume => Vec<GrantView>, Post "/v1/grants/{target}/resume", "grant.resume", "Resumes a suspended grant, or every suspended grant of an operator.";
    GrantTerminate => Vec<GrantView>, Post "/v1/grants/{target}/terminate", "grant.terminate", "Ends a grant, or every grant of an operator, for good.";
    AppSubmit => AppView, Post "/v1/apps", "app.submit", "Submits an application: an uploaded module, the datasets, the purpose and the release mode.", status 201;
    AppList => Vec<AppView>, Get "/v1/apps", "app.list", "The applications the caller may see.";
    AppShow => AppView, Get "/v1/apps/{id}", "app.show", "One application with its approvals.";
    AppApprove => AppView, Post "/v1/apps/{id}/approve", "app.approve", "Approves an application as the caller's party.";
    AppReject => AppView, Post "/v1/apps/{id}/reject", "app.reject", "Rejects an application.";
    ModuleCheck => ModuleCheckAnswer, Post "/v1/modules/check", "module.check", "Checks an uploaded module against the contract and the zone's limits (with a dataset: its declared output).";
    AuditLog => Vec<zone_audit::Entry>, Get "/v1/audit", "audit.log", "Entries of the audit log, filtered.";
    AuditVerify => AuditVerifyAnswer, Post "/v1/audit/verify", "audit.verify", "Verifies the whole audit log against its signed checkpoints.";
    AuditExport => AuditExportAnswer, Post "/v1/audit/export", "audit.export", "An evidence bundle of the log (or a receipt for one entry), to download.";
    AuditCompact => AuditCompacted, Post "/v1/audit/compact", "audit.compact", "Compacts entries older than the retention period into signed checkpoints.";
    JobSubmit => JobRecord, Post "/v1/jobs", "job.run", "Queues a run of an approved application.", status 202;
    JobList => Vec<JobRecord>, Get "/v1/jobs", "job.list", "The jobs the caller may see.";
    JobStatus => JobRecord, Get "/v1/jobs/{id}", "job.status", "One job (the operator's view carries no guest-controlled counter).";
    JobCancel => JobRecord, Post "/v1/jobs/{id}/cancel", "job.cancel", "Cancels a queued or running job.";
    JobDiagnostics => serde_json::Value, Get "/v1/jobs/{id}/diagnostics", "job.diagnostics", "What the guest wrote (providing agencies and the inspector only; others get its size and hash).";
    JobProduct => ProductAnswer, Post "/v1/jobs/{id}/product", "job.output", "Prepares a released product and its signed manifest for download.";
    ArtifactList => Vec<HeldArtifact>, Get "/v1/artifacts", "artifact.list", "Held artifacts (names withheld from the operator until released).";
    ArtifactReview => ArtifactReviewAnswer, Post "/v1/artifacts/{id}/review", "artifact.review", "Reads a held artifact, as a providing agency (recorded).";
    ArtifactRelease => HeldArtifact, Post "/v1/artifacts/{id}/release", "artifact.release", "Releases a held artifact as the caller's agency.";
    ArtifactReject => HeldArtifact, Post "/v1/artifacts/{id}/reject", "artifact.reject", "Rejects a held artifact.";
    ArtifactOutput => ProductAnswer, Post "/v1/artifacts/{id}/output", "artifact.output", "Prepares a released artifact and its signed manifest for download.";
    ComplaintFile => Complaint, Post "/v1/complaints", "complaint.file", "Files a complaint about a subject's rows (Art. 25); the value is kept only as a keyed token.", status 201;
    ComplaintResolve => Complaint, Post "/v1/complaints/{id}/resolve", "complaint.resolve", "Answers a complaint: withdraw, suspend, reprocess or dismiss.";
    ComplaintList => Vec<Complaint>, Get "/v1/complaints", "complaint.list", "The complaints the caller may see.";
    IncidentOpen => IncidentAnswer, Post "/v1/incidents", "incident.open", "Opens an incident against an operator: its grants are suspended and evidence is frozen (Art. 24).", status 201;
    IncidentClose => IncidentAnswer, Post "/v1/incidents/{id}/close", "incident.close", "Closes an incident.";
    IncidentList => Vec<Incident>, Get "/v1/incidents", "incident.list", "The incidents.";
    ReportUsage => UsageAnswer, Get "/v1/reports/usage", "report.usage", "Use of the zone per operator and dataset over a period, from the audit log.";
    BudgetShow => Vec<BudgetLine>, Get "/v1/budgets", "budget.show", "Privacy budgets of dp datasets in the current period: spent, left, when they refresh.";
}

macro_rules! no_fields {
    ($($name:ident),*) => {$(
        /// A request with no fields (an empty JSON object, or no body).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {}
    )*};
}
no_fields!(
    WhoAmI,
    ZoneAbout,
    ZoneStatus,
    ZoneVerify,
    DatasetList,
    PrincipalList,
    OrgList,
    CertList,
    GrantList,
    AppList,
    AuditVerify,
    JobList,
    ComplaintList,
    IncidentList,
    BudgetShow
);

// ---------------------------------------------------------------------------------------------------- identity

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WhoAmIAnswer {
    pub name: String,
    pub role: Role,
    pub org: Option<String>,
    pub certificate: CertificateSeen,
}

/// The client certificate as the server read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateSeen {
    pub subject_cn: String,
    pub subject_o: Option<String>,
    pub sha256: String,
}

// ---------------------------------------------------------------------------------------------------- the zone

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ZoneAboutAnswer {
    pub zone_id: String,
    /// The zone's Ed25519 public key (hex): products and the audit log are signed with it.
    pub public_key: String,
    /// The server's version.
    pub server: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ZoneStatusAnswer {
    pub info: ZoneInfo,
    pub public_key: String,
    pub datasets: u64,
    /// Rows in the latest version of every dataset.
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ZoneVerifyAnswer {
    #[serde(flatten)]
    pub check: ZoneCheck,
    pub audit: AuditSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditSummary {
    pub entries: u64,
    pub checkpoints: u64,
    pub root: String,
}

// ---------------------------------------------------------------------------------------------------- datasets

/// `POST /v1/datasets`: the policy and the data files, uploaded for `dataset.publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetPublish {
    pub policy: FileRef,
    #[schemars(length(min = 1, max = 1024))]
    pub files: Vec<FileRef>,
    /// The dataset's name, when it is not the policy's.
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /v1/datasets/{dataset}`: `NAME` or `NAME@VERSION`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetShow {
    pub dataset: String,
    /// Also the policy's text.
    #[serde(default)]
    pub policy: bool,
}

/// One column as `dataset show` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnView {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub class: String,
    pub rule: String,
    pub format: Option<String>,
    /// The type a job sees the column as; absent for columns a job never sees.
    pub guest_type: Option<String>,
    pub nulls: Option<u64>,
    pub format_valid: Option<u64>,
    pub format_invalid: Option<u64>,
}

/// The release limits of a version's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseView {
    pub min_group_size: u64,
    pub max_groups_per_subject: u64,
    pub max_rows_per_subject_in_group: u64,
    pub max_output_rows: u64,
    pub max_output_bytes: u64,
    pub max_artifact_bytes: u64,
    pub modes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetShowAnswer {
    #[serde(flatten)]
    pub version: DatasetVersion,
    pub description: Option<String>,
    pub domains: Vec<String>,
    /// The subject column: it stays with the host.
    pub subject_column: Option<String>,
    pub release: ReleaseView,
    pub columns: Vec<ColumnView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetRows {
    pub dataset: String,
    #[serde(default = "ten")]
    #[schemars(range(max = 1000))]
    pub limit: u64,
}

fn ten() -> u64 {
    10
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetRowsAnswer {
    pub dataset: String,
    pub version: u64,
    /// The column names, in order.
    pub columns: Vec<String>,
    /// Each row as its values' text (`null` for a null), by column name.
    pub rows: Vec<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetMock {
    pub dataset: String,
    #[serde(default = "ten_thousand")]
    #[schemars(range(max = 1_000_000))]
    pub rows: u64,
    #[serde(default = "one")]
    pub seed: u64,
}

fn ten_thousand() -> u64 {
    10_000
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetMockAnswer {
    pub dataset: String,
    pub version: u64,
    pub rows: u64,
    /// `name type` of every column a job sees.
    pub columns: Vec<String>,
    /// The Parquet file.
    pub output: Outputs,
}

// ---------------------------------------------------------------------------------------------------- principals

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalAdd {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub org: Option<String>,
    /// A CA (PEM, uploaded for `principal.add`) to register for the principal's organisation.
    #[serde(default)]
    pub ca: Option<FileRef>,
    /// Issue a client certificate from the zone's development CA.
    #[serde(default)]
    pub issue_cert: bool,
    #[serde(default = "ninety")]
    #[schemars(range(min = 1, max = 825))]
    pub cert_days: u32,
}

fn ninety() -> u32 {
    90
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrincipalAdded {
    pub name: String,
    pub role: Role,
    pub org: Option<String>,
    pub certificate: Option<IssuedCertificate>,
    pub ca: Option<AnchorView>,
    /// The issued certificate and its key (`NAME.pem`, `NAME.key`), to download once.
    #[serde(default)]
    pub output: Outputs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IssuedCertificate {
    /// File names within the output.
    pub cert: String,
    pub key: String,
    pub sha256: String,
    pub not_after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnchorView {
    pub key_sha256: String,
    pub subject: String,
}

macro_rules! standing_change {
    ($($name:ident),*) => {$(
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub name: String,
            pub reason: String,
        }
    )*};
}
standing_change!(PrincipalSuspend, PrincipalResume, PrincipalRemove);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgAdd {
    pub org: String,
    /// The CA's certificate (PEM), uploaded for `org.add`.
    pub ca: FileRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrgAdded {
    pub org: String,
    pub key_sha256: String,
    pub subject: String,
    /// False when this CA already spoke for the organisation.
    pub added: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrgView {
    pub org: String,
    pub cas: Vec<TrustAnchor>,
    pub principals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertRevoke {
    /// The certificate's SHA-256 (hex).
    pub fingerprint: String,
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------------- grants

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantCreate {
    pub operator: String,
    #[serde(default)]
    pub datasets: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
    pub domains: Vec<String>,
    /// `YYYY-MM-DD`.
    pub from: String,
    /// `YYYY-MM-DD`.
    pub to: String,
    /// The signed terms (uploaded for `grant.create`); the grant keeps their SHA-256.
    #[serde(default)]
    pub terms: Option<FileRef>,
}

/// A grant with its status today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantView {
    #[serde(flatten)]
    pub grant: Grant,
    pub status: GrantStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantShow {
    #[schemars(range(max = crate::MAX_ID))]
    pub id: u64,
}

/// A change of one grant (`target` a number) or of every grant of an operator (`target` its name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantChangeRequest {
    pub target: String,
    pub reason: String,
    /// For a suspension: by when the operator must correct (`YYYY-MM-DD`).
    #[serde(default)]
    pub correct_by: Option<String>,
}

macro_rules! grant_change {
    ($($name:ident),*) => {$(
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub GrantChangeRequest);
    )*};
}
grant_change!(GrantSuspend, GrantResume, GrantTerminate);

// ---------------------------------------------------------------------------------------------------- applications

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppSubmit {
    /// The component (uploaded for `app.submit`).
    pub module: FileRef,
    /// `NAME` or `NAME@VERSION`, one or more.
    pub datasets: Vec<String>,
    pub domain: String,
    pub purpose: String,
    /// `aggregate`, `dp` or `reviewed`.
    pub mode: String,
    /// The operator's security notes (uploaded for `app.submit`).
    #[serde(default)]
    pub security_notes: Option<FileRef>,
    /// `KEY=VALUE` parameters for the module's `init`.
    #[serde(default)]
    pub params: Vec<String>,
    #[serde(default)]
    pub batch_rows: Option<u64>,
    #[serde(default)]
    pub partitions: Option<u64>,
    /// `dp` mode: ε each run spends (default: the policies' `epsilon_per_job`).
    #[serde(default)]
    #[schemars(range(min = 0.000001, max = 1000.0))]
    pub epsilon: Option<f64>,
    /// `dp` mode: b, the most subjects one isolated block of the guest sees (default: `max_block_subjects`).
    #[serde(default)]
    #[schemars(range(min = 1, max = 4096))]
    pub block_subjects: Option<u64>,
    /// `dp` mode: public domains of the output's keys (every key or none); every combination is released.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub key_domain: Vec<zone_store::KeyDomain>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppShow {
    #[schemars(range(max = crate::MAX_ID))]
    pub id: u64,
}

macro_rules! decision {
    ($($name:ident),*) => {$(
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[schemars(range(max = crate::MAX_ID))]
            pub id: u64,
            pub reason: String,
        }
    )*};
}
decision!(AppApprove, AppReject, ArtifactRelease, ArtifactReject);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleCheck {
    /// The component (uploaded for `module.check`).
    pub module: FileRef,
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default)]
    pub params: Vec<String>,
}

/// One column a module declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeclaredColumn {
    pub name: String,
    /// `key` or `measure`.
    pub role: String,
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModuleCheckAnswer {
    /// The module as the caller named it.
    pub module: String,
    pub sha256: String,
    pub imports: Vec<String>,
    pub accepted: bool,
    pub declared_output: Option<Vec<DeclaredColumn>>,
    /// The columns it reads (`*`: all the policy shows).
    pub reads: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------------- audit

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLog {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    #[schemars(range(max = crate::MAX_ID))]
    pub app: Option<u64>,
    /// Entries at or after this time (RFC 3339, or a date).
    #[serde(default)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditVerifyAnswer {
    pub entries: u64,
    pub checkpoints: u64,
    pub root: String,
    /// Entries after the last checkpoint (a crash before signing).
    pub unsigned_tail: u64,
    pub intact: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditExport {
    /// A receipt for this one entry instead of the whole log.
    #[serde(default)]
    #[schemars(range(max = crate::MAX_ID))]
    pub entry: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditExportAnswer {
    pub report: zone_audit::BundleReport,
    pub bytes: u64,
    /// The bundle (one JSON file).
    pub output: Outputs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditCompact {
    /// `YYYY-MM-DD`.
    pub before: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditCompacted {
    pub before: String,
}

// ---------------------------------------------------------------------------------------------------- jobs

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSubmit {
    /// The approved application to run.
    #[schemars(range(max = crate::MAX_ID))]
    pub app: u64,
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub batch_rows: Option<u64>,
}

macro_rules! by_id {
    ($($name:ident),*) => {$(
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[schemars(range(max = crate::MAX_ID))]
            pub id: u64,
        }
    )*};
}
by_id!(JobStatus, JobCancel, JobDiagnostics, JobProduct, ArtifactOutput);

/// A released product (or artifact) ready to download, with the key its manifest must be signed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductAnswer {
    /// The job (for an artifact: the artifact's id).
    #[schemars(range(max = crate::MAX_ID))]
    pub job: u64,
    /// The zone's public key (hex), which the manifest must be signed with.
    pub public_key: String,
    /// The product's files and its signed manifest.
    pub output: Outputs,
}

// ---------------------------------------------------------------------------------------------------- artifacts

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactList {
    #[serde(default)]
    #[schemars(range(max = crate::MAX_ID))]
    pub job: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactReview {
    #[schemars(range(max = crate::MAX_ID))]
    pub id: u64,
    /// At most this many bytes of the content in the answer.
    #[serde(default = "review_bytes")]
    #[schemars(range(max = 16_777_216))]
    pub max_bytes: u64,
    /// Also the whole content as a file to download.
    #[serde(default)]
    pub save: bool,
}

fn review_bytes() -> u64 {
    65_536
}

/// An artifact's content: text when it is UTF-8 without control characters, else hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactContent {
    Text(String),
    Hex(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactReviewAnswer {
    pub artifact: HeldArtifact,
    pub job: JobRecord,
    pub content: ArtifactContent,
    pub shown_bytes: u64,
    pub total_bytes: u64,
    /// With `save`: the whole content.
    #[serde(default)]
    pub output: Outputs,
}

// ---------------------------------------------------------------------------------------------------- oversight

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintFile {
    pub dataset: String,
    /// The subject's value (kept only as a keyed token).
    pub subject: String,
    /// The evidence (uploaded for `complaint.file`).
    pub evidence: FileRef,
}

/// How a complaint is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComplaintAnswer {
    Withdraw,
    Suspend,
    Reprocess,
    Dismiss,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintResolve {
    #[schemars(range(max = crate::MAX_ID))]
    pub id: u64,
    pub answer: ComplaintAnswer,
    /// With `withdraw`: move the applications to the new version with their approvals.
    #[serde(default)]
    pub keep_approvals: bool,
    /// With `suspend`: `YYYY-MM-DD`.
    #[serde(default)]
    pub correct_by: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentOpen {
    pub operator: String,
    pub reason: String,
    /// `YYYY-MM-DD`; 30 days from today when absent.
    #[serde(default)]
    pub correct_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentClose {
    #[schemars(range(max = crate::MAX_ID))]
    pub id: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IncidentAnswer {
    #[serde(flatten)]
    pub incident: Incident,
    /// Where the frozen evidence is, in the zone.
    pub evidence_dir: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportUsage {
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub to: Option<String>,
    /// Also `operators.csv` and `datasets.csv` to download.
    #[serde(default)]
    pub csv: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageAnswer {
    #[serde(flatten)]
    pub report: UsageReport,
    /// With `csv`: the two tables.
    #[serde(default)]
    pub output: Outputs,
}
