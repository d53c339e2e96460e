//! What can go wrong in the application layer, with the zone's error class.

use std::path::PathBuf;

use zone_sandbox::SandboxError;
use zone_store::StoreError;

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
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OpsError {
    /// The zone's error class (`access.role`, `GuestPanic`, `input.missing`, …).
    pub fn class(&self) -> &str {
        match self {
            OpsError::Store(e) => e.class(),
            OpsError::Sandbox { source, .. } => source.class.name(),
            OpsError::Refused { class, .. } => class,
            OpsError::Param(_) => "input.invalid",
            OpsError::Read { .. } => "input.missing",
        }
    }
}

impl From<SandboxError> for OpsError {
    fn from(source: SandboxError) -> OpsError {
        OpsError::Sandbox { what: source.to_string(), source }
    }
}
