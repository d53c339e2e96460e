//! Jobs as records (the run itself is [`crate::run_ticket`]), released products and artifacts to take out, and the
//! review of held artifacts.

use zone_api::routes::{
    ArtifactContent, ArtifactList, ArtifactOutput, ArtifactReject, ArtifactRelease, ArtifactReview,
    ArtifactReviewAnswer, JobCancel, JobDiagnostics, JobList, JobProduct, JobStatus, ProductAnswer,
};
use zone_store::{Cancelled, HeldArtifact, JobRecord};

use super::{Handle, Session};
use crate::error::OpsError;

/// The most bytes of an artifact's content a review answer carries.
pub const MAX_REVIEW_BYTES: u64 = 16 * 1024 * 1024;

impl Handle for JobList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<JobRecord>, OpsError> {
        Ok(s.zone.jobs(&s.who)?)
    }
}

impl Handle for JobStatus {
    fn handle(self, s: &mut Session<'_>) -> Result<JobRecord, OpsError> {
        Ok(s.zone.job(&s.who, self.id)?)
    }
}

impl Handle for JobCancel {
    fn handle(self, s: &mut Session<'_>) -> Result<JobRecord, OpsError> {
        // A running job's watch sees the request within 100 ms and stops its sandbox.
        Ok(match s.zone.cancel_job(&s.who, self.id)? {
            Cancelled::BeforeRun(r) | Cancelled::WhileRunning(r) => r,
        })
    }
}

impl Handle for JobDiagnostics {
    fn handle(self, s: &mut Session<'_>) -> Result<serde_json::Value, OpsError> {
        Ok(s.zone.job_guest_text(&s.who, self.id)?)
    }
}

impl Handle for JobProduct {
    fn handle(self, s: &mut Session<'_>) -> Result<ProductAnswer, OpsError> {
        let dir = s.files.output_dir()?;
        s.zone.job_output(&s.who, self.id, &dir)?;
        Ok(ProductAnswer { job: self.id, public_key: s.zone.keys()?.public_key_hex(), output: s.files.outputs(&dir)? })
    }
}

impl Handle for ArtifactOutput {
    fn handle(self, s: &mut Session<'_>) -> Result<ProductAnswer, OpsError> {
        let dir = s.files.output_dir()?;
        s.zone.artifact_output(&s.who, self.id, &dir)?;
        Ok(ProductAnswer { job: self.id, public_key: s.zone.keys()?.public_key_hex(), output: s.files.outputs(&dir)? })
    }
}

impl Handle for ArtifactList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<HeldArtifact>, OpsError> {
        Ok(s.zone.artifacts(&s.who, self.job)?)
    }
}

/// The content as text when it is UTF-8 without control characters other than newline, tab and carriage return.
pub fn printable_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r')).then_some(text)
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn cut_text(text: &str, max: usize) -> &str {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

impl Handle for ArtifactReview {
    fn handle(self, s: &mut Session<'_>) -> Result<ArtifactReviewAnswer, OpsError> {
        if self.max_bytes > MAX_REVIEW_BYTES {
            return Err(OpsError::Invalid(format!("max_bytes {} is more than {MAX_REVIEW_BYTES}", self.max_bytes)));
        }
        let review = s.zone.review_artifact(&s.who, self.id)?;
        let max = self.max_bytes as usize;
        let (content, shown_bytes) = match printable_text(&review.content) {
            Some(t) => {
                let shown = cut_text(t, max);
                (ArtifactContent::Text(shown.to_owned()), shown.len())
            }
            None => {
                let shown = &review.content[..review.content.len().min(max)];
                (ArtifactContent::Hex(hex::encode(shown)), shown.len())
            }
        };
        let output = if self.save {
            let dir = s.files.output_dir()?;
            // The stored name passed the sandbox's check (a plain file name); the file is named by its id here so
            // that nothing the guest chose becomes a path.
            let path = dir.join(format!("artifact-{}", self.id));
            std::fs::write(&path, &review.content).map_err(|source| OpsError::Write { path: path.clone(), source })?;
            s.files.outputs(&dir)?
        } else {
            zone_api::Outputs::default()
        };
        Ok(ArtifactReviewAnswer {
            artifact: review.artifact,
            job: review.job,
            content,
            shown_bytes: shown_bytes as u64,
            total_bytes: review.content.len() as u64,
            output,
        })
    }
}

impl Handle for ArtifactRelease {
    fn handle(self, s: &mut Session<'_>) -> Result<HeldArtifact, OpsError> {
        Ok(s.zone.decide_artifact(&s.who, self.id, true, &self.reason)?)
    }
}

impl Handle for ArtifactReject {
    fn handle(self, s: &mut Session<'_>) -> Result<HeldArtifact, OpsError> {
        Ok(s.zone.decide_artifact(&s.who, self.id, false, &self.reason)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_never_printed_as_text() {
        assert_eq!(printable_text(b"model: 0.42\n\tok"), Some("model: 0.42\n\tok"));
        assert_eq!(printable_text(b"\x1b[2Jall clear"), None);
        assert_eq!(printable_text(b"\xff\xfe"), None);
        assert_eq!(printable_text("报告\n".as_bytes()), Some("报告\n"));
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut_text("报告", 4), "报");
        assert_eq!(cut_text("abc", 10), "abc");
    }
}
