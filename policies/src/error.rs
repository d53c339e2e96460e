//! Policy errors: each names a stable rule id, the place in the policy file (line and column) and, where there
//! is a closed list, the valid choices.

use std::fmt;
use std::ops::Range;

/// A stable identifier of the policy rule that was broken, e.g. `column.unclassified`.
///
/// Rule ids appear in errors, in the audit log and in tests; a reworded message never changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub &'static str);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The rule ids this crate reports.
pub mod rules {
    use super::RuleId;
    pub const SYNTAX: RuleId = RuleId("policy.syntax");
    pub const VERSION: RuleId = RuleId("policy.version");
    pub const DATASET_NAME: RuleId = RuleId("dataset.name");
    pub const DATASET_PROVIDER: RuleId = RuleId("dataset.provider");
    pub const DATASET_DOMAIN: RuleId = RuleId("dataset.domain");
    pub const MIN_GROUP_SIZE: RuleId = RuleId("release.min_group_size");
    pub const MAX_OUTPUT_ROWS: RuleId = RuleId("release.max_output_rows");
    pub const MAX_OUTPUT_BYTES: RuleId = RuleId("release.max_output_bytes");
    pub const MAX_GROUPS_PER_SUBJECT: RuleId = RuleId("release.max_groups_per_subject");
    pub const MAX_ROWS_PER_SUBJECT_IN_GROUP: RuleId = RuleId("release.max_rows_per_subject_in_group");
    pub const MAX_ARTIFACT_BYTES: RuleId = RuleId("release.max_artifact_bytes");
    pub const RELEASE_MODE: RuleId = RuleId("release.mode");
    pub const PRIVACY: RuleId = RuleId("privacy.section");
    pub const PRIVACY_EPSILON: RuleId = RuleId("privacy.epsilon");
    pub const PRIVACY_DELTA: RuleId = RuleId("privacy.delta");
    pub const PRIVACY_PERIOD: RuleId = RuleId("privacy.period");
    pub const PRIVACY_BLOCK: RuleId = RuleId("privacy.max_block_subjects");
    pub const COLUMN_UNCLASSIFIED: RuleId = RuleId("column.unclassified");
    pub const COLUMN_UNKNOWN: RuleId = RuleId("column.unknown");
    pub const COLUMN_CLASS: RuleId = RuleId("column.class");
    pub const COLUMN_KEY: RuleId = RuleId("column.key_not_allowed");
    pub const COLUMN_FORMAT: RuleId = RuleId("column.format");
    pub const COLUMN_TYPE: RuleId = RuleId("column.type");
    pub const SUBJECT_COUNT: RuleId = RuleId("column.subject_count");
    pub const PLAIN_IDENTIFIER: RuleId = RuleId("column.plain_identifier");
    pub const MASK: RuleId = RuleId("column.mask");
    pub const MASK_REVEALS: RuleId = RuleId("column.mask_reveals");
    pub const TOKEN: RuleId = RuleId("column.token");
    pub const GENERALIZE: RuleId = RuleId("column.generalize");
    pub const BOUNDS: RuleId = RuleId("column.bounds");
}

/// One broken rule, located in the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub rule: RuleId,
    /// The policy's source name as the caller gave it (usually its path).
    pub file: String,
    /// 1-based line and column (in characters) of the offending key or value.
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The valid choices or a hint, when there is one.
    pub help: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: [{}] {}", self.file, self.line, self.column, self.rule, self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// Every rule a policy broke, in file order. A clerk fixes them all in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// The rule ids broken, in order (for tests and the audit log).
    pub fn rules(&self) -> Vec<RuleId> {
        self.0.iter().map(|e| e.rule).collect()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "the policy is refused ({n} problem{}):", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Turns byte spans of one source text into line/column positions.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based line and character column of a byte offset (clamped to the text).
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn error(
        &self,
        rule: RuleId,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> PolicyError {
        let (line, column) = self.position(span.start);
        PolicyError { rule, file: self.name.to_owned(), line, column, message: message.into(), help }
    }
}

/// `one of: a, b, c` for the valid choices of a closed list.
pub(crate) fn one_of<I, S>(choices: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: fmt::Display,
{
    let list: Vec<String> = choices.into_iter().map(|c| format!("`{c}`")).collect();
    Some(format!("valid: {}", list.join(", ")))
}
