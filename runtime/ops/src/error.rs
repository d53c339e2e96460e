//! What can go wrong in the application layer, with the zone's error class.

use std::path::PathBuf;

use zone_api::ErrorClass;
use zone_sandbox::SandboxError;
use zone_store::StoreError;

use crate::pki::PkiError;

/// Why an operation of the application layer did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sandbox refused a module: what was refused (`m.wasm is refused`, with what the module returned when the
    /// caller may read it), and the sandbox's own error.
    #[error("{what}")]
    Sandbox {
        what: String,
        #[source]
        source: SandboxError,
    },
    /// Refused before anything was recorded as done (the refusal itself is recorded).
    #[error("{detail}")]
    Refused { class: &'static str, detail: String },
    #[error("--param `{0}` is not KEY=VALUE")]
    Param(String),
    /// A request field that is not valid (a date that is not one, a number out of range), named.
    #[error("{0}")]
    Invalid(String),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A certificate or CA file, or the development CA.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A file the zone made could not be encoded (Parquet, JSON).
    #[error("encoding {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    /// The operation is not one this side of the API runs (a queue run on a zone without a server).
    #[error("{0}")]
    Unsupported(String),
    /// A job's plan or run failed (a developer's run on mock rows).
    #[error(transparent)]
    Job(#[from] zone_jobs::JobError),
    /// A request that failed in the transport or the server, as the client received it.
    #[error("{message}")]
    Remote { class: ErrorClass, message: String, causes: Vec<String>, rules: Vec<String> },
}

impl OpsError {
    /// The zone's error class (`access.role`, `GuestPanic`, `input.missing`, …).
    pub fn class(&self) -> ErrorClass {
        match self {
            OpsError::Store(e) => ErrorClass::of(e.class()),
            OpsError::Sandbox { source, .. } => ErrorClass::of(source.class.name()),
            OpsError::Refused { class, .. } => ErrorClass::of(class),
            OpsError::Param(_) | OpsError::Invalid(_) | OpsError::Pki(_) => ErrorClass::InputInvalid,
            OpsError::Read { .. } => ErrorClass::InputMissing,
            OpsError::Write { .. } | OpsError::Encode { .. } => ErrorClass::Io,
            OpsError::Unsupported(_) => ErrorClass::RequestInvalid,
            OpsError::Remote { class, .. } => *class,
            OpsError::Job(e) => ErrorClass::of(e.class()),
        }
    }

    /// The rules a refused policy broke (empty for every other error).
    pub fn rules(&self) -> Vec<String> {
        match self {
            OpsError::Store(StoreError::PolicyRefused(e)) => e.rules().iter().map(|r| r.to_string()).collect(),
            OpsError::Remote { rules, .. } => rules.clone(),
            _ => Vec::new(),
        }
    }
}

impl From<SandboxError> for OpsError {
    fn from(source: SandboxError) -> OpsError {
        OpsError::Sandbox { what: source.to_string(), source }
    }
}
