//! The error a job returns: a message for the zone's diagnostics (the operator sees only its class).

use std::fmt;

/// A job's error. Any `std::error::Error` converts into it with `?`; [`JobError::msg`] makes one from text.
pub struct JobError(String);

/// `Result` with [`JobError`] as the default error.
pub type Result<T, E = JobError> = std::result::Result<T, E>;

impl JobError {
    pub fn msg(message: impl fmt::Display) -> JobError {
        JobError(message.to_string())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(error: E) -> JobError {
        JobError(error.to_string())
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
