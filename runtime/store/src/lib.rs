//! # zone-store — the embedded zone on disk
//!
//! One directory per zone: a SQLite catalog (WAL), content-addressed object files, owner-only zone keys. This
//! crate owns every byte written there and makes each step atomic: bytes are staged in `tmp/`, fsynced, renamed
//! to their SHA-256 address, and only then does one catalog transaction make them part of the zone. A process
//! killed at any point leaves the zone as it was before or after the step (invariant 6).
//!
//! ```no_run
//! use zone_store::{NoProgress, Principal, PublishRequest, Role, Zone};
//! let mut zone = Zone::init("zone".as_ref(), "data-bureau", None)?;
//! zone.add_principal(
//!     &zone.actor("data-bureau")?,
//!     &Principal { name: "tax-clerk".into(), role: Role::Agency, org: Some("taxation".into()) },
//! )?;
//! let clerk = zone.actor("tax-clerk")?;
//! let outcome = zone.publish(
//!     &clerk,
//!     &PublishRequest { files: vec!["tax_credit.parquet".into()], policy: "tax_credit.toml".into(), name: None },
//!     &mut NoProgress,
//! )?;
//! println!("published {}@{}", outcome.version().dataset, outcome.version().version);
//! # Ok::<(), zone_store::StoreError>(())
//! ```
//!
//! Where to extend: new catalog tables are a migration in `catalog.rs`; new stored kinds of bytes go through
//! `objects.rs`; the zone's public operations are methods of [`Zone`].

mod access;
mod apps;
mod artifacts;
mod budget;
mod catalog;
mod complaints;
mod error;
mod grants;
mod identity;
mod incidents;
mod jobs;
mod keys;
mod lease;
mod objects;
mod products;
mod publish;
mod queue;
mod reconcile;
mod record;
mod reports;
mod server_log;
mod settings;
mod zone;

pub use apps::{
    AppDataset, AppOutput, AppRequest, AppStatus, AppView, Application, Binding, BoundDataset, CheckedModule, Decision,
    KeyDomain, OutputColumn, PreparedApp, PrivacyAsk, RunSettings,
};
pub use artifacts::{ARTIFACTS_DIR, ArtifactDecision, ArtifactReview, HeldArtifact};
pub use budget::{BudgetLine, current_period};
pub use catalog::{ColumnStats, DatasetSummary, DatasetVersion, FormatCheck, StoredFile};
pub use complaints::{Complaint, Resolution};
pub use error::StoreError;
pub use grants::{GrantChange, GrantWatch, NewGrant, WatchStop};
pub use identity::{CertificateRecord, PrincipalRecord, Standing, TrustAnchor};
pub use incidents::{INCIDENTS_DIR, Incident};
pub use jobs::{
    CANCELLED, DpCharge, FAILED, FAILED_DETAIL, JobDataset, JobRecord, JobState, JobTicket, ReleasedTable, RunCounts,
    RunFailure,
};
pub use keys::ZoneKeys;
pub use lease::{INTERRUPTED, RunLease};
pub use products::{
    MANIFEST, Manifest, ManifestDataset, ManifestFile, ManifestRelease, PRODUCT_CSV, PRODUCT_PARQUET, ProductError,
    ProductReport, SignedManifest, encode_product, verify_product,
};
pub use queue::{Cancelled, Claim};
pub use reconcile::NOT_APPLIED;
pub use record::{ArtifactState, ComplaintState, IncidentState, today};
pub use reports::{DatasetUsage, OperatorUsage, UsageReport};
pub use server_log::{ACCESS_LOG, ACCESS_SEAL, AccessLogCheck, AccessLogHash};
pub use settings::{AuditSection, JobsSection, SandboxSection, SandboxSettings};
pub use zone::{
    LogAgreement, NoProgress, Progress, PublishOutcome, PublishRequest, ZONE_FORMAT, Zone, ZoneCheck, ZoneInfo,
};
pub use zone_access::{Action, Grant, GrantScope, GrantState, GrantStatus, Principal, Role};

pub(crate) use zone::fail_point;
