//! Failure classes of a guest run. Every failure is one of these; the detail is host text (limits, sizes, names
//! the operator already knows), never text the guest produced.

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
    /// Host-side detail: which limit, which import, what was wrong with the output. Never guest text.
    pub detail: String,
}

impl SandboxError {
    pub fn new(class: FailureClass, detail: impl Into<String>) -> SandboxError {
        SandboxError { class, detail: detail.into() }
    }
}
