//! Store errors: each says what was wrong and where (path, row group, column), so a clerk can fix it.

use std::path::PathBuf;

use policies::PolicyErrors;

/// Why a zone operation was refused or failed. Nothing in the zone changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Audit(#[from] zone_audit::AuditError),
    #[error(transparent)]
    Denied(zone_access::Denied),
    #[error("audit evidence: {0}")]
    Bundle(zone_audit::BundleError),
    #[error("no principal `{name}` in this zone{}", known_principals(.known))]
    UnknownPrincipal { name: String, known: Vec<String> },
    #[error("principal `{name}` is {standing}: {reason}")]
    PrincipalInactive { name: String, standing: &'static str, reason: String },
    #[error(
        "{}: this content is already published by another provider (`{owner}`, dataset `{dataset}`); a provider \
         publishes only its own data",
        path.display()
    )]
    ForeignContent { path: PathBuf, dataset: String, owner: String },
    #[error("principal `{name}` already exists")]
    PrincipalExists { name: String },
    #[error("{detail}")]
    BadInput { detail: String },
    #[error("the grant is refused:\n  {}", problems.join("\n  "))]
    BadGrant { problems: Vec<String> },
    #[error("no grant {id}")]
    UnknownGrant { id: u64 },
    #[error("grant {id} cannot change: {detail}")]
    GrantState { id: u64, detail: String },
    #[error("operator `{operator}` has no active grant that covers this: {detail} [access.grant]")]
    NoGrant { operator: String, detail: String },
    #[error("the application is refused:\n  {}", problems.join("\n  "))]
    AppRefused { problems: Vec<String> },
    #[error("no application {id}")]
    UnknownApp { id: u64 },
    #[error("application {id}: {detail}")]
    AppDecided { id: u64, detail: String },
    #[error("the run is refused: {detail} [{class}]")]
    JobRefused { class: &'static str, detail: String },
    #[error("no job {id}")]
    UnknownJob { id: u64 },
    #[error("refused (privacy.budget): {detail}")]
    BudgetExhausted { detail: String },
    #[error("no artifact {id}")]
    UnknownArtifact { id: u64 },
    #[error("no complaint {id}")]
    UnknownComplaint { id: u64 },
    #[error("the audit log keeps its entries: {detail} [{class}]")]
    AuditKept { class: &'static str, detail: String },
    #[error("no incident {id}")]
    UnknownIncident { id: u64 },
    #[error("{detail} [{class}]")]
    IncidentRefused { class: &'static str, detail: String },
    #[error("complaint {id}: {detail} [{class}]")]
    ComplaintRefused { id: u64, class: &'static str, detail: String },
    #[error("artifact {id}: {detail} [{class}]")]
    ArtifactRefused { id: u64, class: &'static str, detail: String },
    #[error("{path}: invalid settings:\n  {}", problems.join("\n  "))]
    BadSettings { path: PathBuf, problems: Vec<String> },
    #[error("{path} is not an initialized zone (no zone.toml); run `cleanroom --zone {path} zone init` first")]
    NotInitialized { path: PathBuf },
    #[error("{path} is already a zone (created {created_at}); refusing to initialize it again")]
    AlreadyInitialized { path: PathBuf, created_at: String },
    #[error("{path} is not empty and is not a zone; choose an empty or new folder")]
    NotEmpty { path: PathBuf },
    #[error("zone format {found} in {path} is not supported by this build (supported: {supported})")]
    UnsupportedZoneFormat { path: PathBuf, found: i64, supported: i64 },
    #[error("{path}: no such file")]
    MissingFile { path: PathBuf },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("catalog: {context}: {source}")]
    Catalog { context: String, source: rusqlite::Error },
    #[error("{path} is not UTF-8 text (byte {offset})")]
    NotText { path: PathBuf, offset: usize },
    #[error("{path} is not a readable Parquet file: {detail}")]
    BadParquet { path: PathBuf, detail: String },
    #[error("{path}: row group {row_group} (rows {first_row}..{end_row}) cannot be decoded: {detail}")]
    CorruptRowGroup { path: PathBuf, row_group: usize, first_row: u64, end_row: u64, detail: String },
    #[error("{path} has no rows")]
    EmptyDataset { path: PathBuf },
    #[error("{path}: schema differs from {first}: {detail}")]
    SchemaMismatch { path: PathBuf, first: PathBuf, detail: String },
    #[error("{0}")]
    PolicyRefused(PolicyErrors),
    #[error(
        "{path}: column `{column}` is `{class}` but {matched} of {sampled} sampled values are valid {format} values; \
         an identifier cannot be {class} [column.plain_identifier]"
    )]
    IdentifierInClearColumn {
        path: PathBuf,
        column: String,
        class: &'static str,
        format: policies::Format,
        matched: usize,
        sampled: usize,
    },
    #[error("the policy is for dataset `{policy}`, but --name says `{given}`")]
    NameMismatch { given: String, policy: String },
    #[error("dataset `{name}` belongs to provider `{existing}`; the policy names `{policy}`")]
    ProviderMismatch { name: String, existing: String, policy: String },
    #[error("no dataset `{name}`{}", known_list(.known))]
    UnknownDataset { name: String, known: Vec<String> },
    #[error("dataset `{name}` has no version {version} (latest is {latest})")]
    UnknownVersion { name: String, version: u32, latest: u32 },
    #[error("`{spec}` is not NAME or NAME@VERSION")]
    BadDatasetRef { spec: String },
    #[error("zone key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("stored object {sha256} is missing or damaged ({detail})")]
    DamagedObject { sha256: String, detail: String },
}

fn known_principals(known: &[String]) -> String {
    if known.is_empty() { String::new() } else { format!(" (known: {})", known.join(", ")) }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (the zone has no datasets yet)".to_owned()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn catalog(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Catalog { context, source }
    }

    /// A stable class for scripts and, later, the audit log.
    pub fn class(&self) -> &'static str {
        match self {
            StoreError::Denied(d) => d.class,
            StoreError::Bundle(_) => "audit.bundle",
            StoreError::UnknownPrincipal { .. } => "access.unknown_principal",
            StoreError::PrincipalExists { .. } => "principal.exists",
            StoreError::ForeignContent { .. } => "dataset.foreign_content",
            StoreError::PrincipalInactive { standing: "removed", .. } => "access.removed",
            StoreError::PrincipalInactive { .. } => "access.suspended",
            StoreError::BadInput { .. } => "input.invalid",
            StoreError::BadGrant { .. } => "grant.invalid",
            StoreError::UnknownGrant { .. } => "grant.unknown",
            StoreError::GrantState { .. } => "grant.state",
            StoreError::NoGrant { .. } => "access.grant",
            StoreError::AppRefused { .. } => "app.refused",
            StoreError::UnknownApp { .. } => "app.unknown",
            StoreError::AppDecided { .. } => "app.decided",
            StoreError::JobRefused { class, .. } => class,
            StoreError::UnknownJob { .. } => "job.unknown",
            StoreError::BudgetExhausted { .. } => "privacy.budget",
            StoreError::UnknownArtifact { .. } => "artifact.unknown",
            StoreError::UnknownComplaint { .. } => "complaint.unknown",
            StoreError::UnknownIncident { .. } => "incident.unknown",
            StoreError::AuditKept { class, .. } => class,
            StoreError::IncidentRefused { class, .. } => class,
            StoreError::ComplaintRefused { class, .. } => class,
            StoreError::ArtifactRefused { class, .. } => class,
            StoreError::NotInitialized { .. } => "zone.not_initialized",
            StoreError::BadSettings { .. } => "zone.settings",
            StoreError::Audit(_) => "zone.audit",
            StoreError::AlreadyInitialized { .. } | StoreError::NotEmpty { .. } => "zone.exists",
            StoreError::UnsupportedZoneFormat { .. } => "zone.format",
            StoreError::MissingFile { .. } => "input.missing",
            StoreError::Io { .. } => "io",
            StoreError::Catalog { .. } => "catalog",
            StoreError::NotText { .. } => "input.not_text",
            StoreError::BadParquet { .. } | StoreError::CorruptRowGroup { .. } | StoreError::EmptyDataset { .. } => {
                "input.parquet"
            }
            StoreError::SchemaMismatch { .. } => "input.schema",
            StoreError::PolicyRefused(_) => "policy.refused",
            StoreError::IdentifierInClearColumn { .. } => "column.plain_identifier",
            StoreError::NameMismatch { .. } | StoreError::ProviderMismatch { .. } => "dataset.identity",
            StoreError::UnknownDataset { .. }
            | StoreError::UnknownVersion { .. }
            | StoreError::BadDatasetRef { .. } => "dataset.unknown",
            StoreError::Key { .. } => "zone.key",
            StoreError::DamagedObject { .. } => "zone.damaged",
        }
    }
}
