//! Failure classes of a guest run. Every failure is one of these; the detail is fixed host text (limits the zone
//! set, names of calls), never anything the guest chose — not its text, not a name, count or size it returned.
//! What the guest's output looked like when it was refused is kept apart, in [`SandboxError::zone_detail`], for
//! the agency and the inspector only.

use std::fmt;

/// What went wrong, as a stable class that tests assert and the operator is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The guest ran past its CPU deadline (epoch) or fuel.
    Timeout,
    /// The guest asked for more memory than its limit.
    MemoryLimit,
    /// The guest's call stack overflowed.
    StackOverflow,
    /// The guest trapped (a Rust panic, `unreachable`, an out-of-bounds access).
    GuestPanic,
    /// The guest returned an error value.
    GuestError,
    /// The guest's output is not what the contract allows.
    BadOutput,
    /// The component imports something the zone does not grant.
    ImportDenied,
    /// The component does not implement the contract (exports, version, declared output).
    ContractMismatch,
    /// The module is too large or took too long to compile.
    CompileLimit,
    /// The zone stopped the run from outside (a grant suspended or ended while it ran).
    Stopped,
}

impl FailureClass {
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Timeout => "Timeout",
            FailureClass::MemoryLimit => "MemoryLimit",
            FailureClass::StackOverflow => "StackOverflow",
            FailureClass::GuestPanic => "GuestPanic",
            FailureClass::GuestError => "GuestError",
            FailureClass::BadOutput => "BadOutput",
            FailureClass::ImportDenied => "ImportDenied",
            FailureClass::ContractMismatch => "ContractMismatch",
            FailureClass::CompileLimit => "CompileLimit",
            FailureClass::Stopped => "Stopped",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refused or failed guest operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {detail}")]
pub struct SandboxError {
    pub class: FailureClass,
    /// Host-side detail: which limit, which import, which rule the output broke. Never guest text, and never a
    /// name, number or size the guest chose.
    pub detail: String,
    /// What the guest's output was when it was refused (a column name it returned, how many rows it claimed, the
    /// validation error of its bytes): guest-chosen, so never shown with `detail`. Kept in the zone for the agency
    /// and the inspector (`job diagnostics`); in a run without data (`module check`, `job dev` on mock rows) the
    /// operator's tools may show it to the operator, whose own code it describes.
    pub zone_detail: Option<String>,
}

impl SandboxError {
    /// Longest [`SandboxError::zone_detail`] kept, in bytes.
    pub const MAX_ZONE_DETAIL_BYTES: usize = 1024;

    pub fn new(class: FailureClass, detail: impl Into<String>) -> SandboxError {
        SandboxError { class, detail: detail.into(), zone_detail: None }
    }

    /// A failure whose fixed `detail` the operator may read, with what the guest produced kept for the zone
    /// (capped at [`SandboxError::MAX_ZONE_DETAIL_BYTES`]).
    pub fn with_zone_detail(class: FailureClass, detail: impl Into<String>, zone: impl Into<String>) -> SandboxError {
        let mut zone = zone.into();
        if zone.len() > Self::MAX_ZONE_DETAIL_BYTES {
            let mut cut = Self::MAX_ZONE_DETAIL_BYTES;
            while !zone.is_char_boundary(cut) {
                cut -= 1;
            }
            zone.truncate(cut);
            zone.push('…');
        }
        SandboxError { class, detail: detail.into(), zone_detail: Some(zone) }
    }

    /// The detail and, where there is one, what the guest produced: for tools that run without data.
    pub fn full(&self) -> String {
        match &self.zone_detail {
            Some(z) => format!("{}: {} ({z})", self.class, self.detail),
            None => self.to_string(),
        }
    }
}
