//! The policy file as written by an agency clerk (TOML, `version = 1`), parsed with spans so that every later
//! error can point at its line and column. Unknown keys are refused.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{PolicyError, PolicyErrors, Source, rules};

/// A parsed, not yet validated, policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub version: Spanned<i64>,
    pub dataset: Spanned<DatasetSection>,
    pub release: Spanned<ReleaseSection>,
    #[serde(default)]
    pub privacy: Option<Spanned<PrivacySection>>,
    pub columns: Spanned<BTreeMap<Spanned<String>, Spanned<ColumnSpec>>>,
}

/// `[dataset]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    pub name: Spanned<String>,
    pub provider: Spanned<String>,
    pub domains: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `[release]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSection {
    pub min_group_size: Spanned<i64>,
    pub max_output_rows: Spanned<i64>,
    pub max_output_bytes: Spanned<i64>,
    pub max_groups_per_subject: Spanned<i64>,
    /// How many of one subject's rows one group counts: the subject's partial in a group (its sum, its count) is
    /// clamped to what this many rows within the measure's bounds can add. Default 1.
    #[serde(default)]
    pub max_rows_per_subject_in_group: Option<Spanned<i64>>,
    pub modes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub max_artifact_bytes: Option<Spanned<i64>>,
}

/// `[privacy]`: the budgets of `dp` mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySection {
    pub epsilon_per_job: Spanned<f64>,
    pub delta_per_job: Spanned<f64>,
    pub epsilon_per_operator: Spanned<f64>,
    pub epsilon_per_dataset: Spanned<f64>,
    pub period: Spanned<String>,
    #[serde(default)]
    pub max_block_subjects: Option<Spanned<i64>>,
}

/// One entry of `[columns]`. Which keys are allowed depends on `class`; that is checked when compiling, so
/// that the error can name the class and list the keys it takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub class: Spanned<String>,
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    // masked
    #[serde(default)]
    pub keep_prefix: Option<Spanned<i64>>,
    #[serde(default)]
    pub keep_suffix: Option<Spanned<i64>>,
    #[serde(default)]
    pub mask_char: Option<Spanned<String>>,
    #[serde(default)]
    pub reveal: Option<Spanned<Vec<Spanned<String>>>>,
    // tokenized
    #[serde(default)]
    pub link_as: Option<Spanned<String>>,
    // generalized
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    #[serde(default)]
    pub width: Option<Spanned<f64>>,
    #[serde(default)]
    pub edges: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    pub digits: Option<Spanned<i64>>,
    #[serde(default)]
    pub as_of: Option<Spanned<toml::value::Datetime>>,
    // compute_only
    #[serde(default)]
    pub bounds: Option<Spanned<Vec<f64>>>,
}

impl ColumnSpec {
    /// The optional keys that are present, with their spans, for "key not allowed for this class" errors.
    pub(crate) fn present_keys(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut keys = Vec::new();
        let mut push = |name: &'static str, span: Option<std::ops::Range<usize>>| {
            if let Some(span) = span {
                keys.push((name, span));
            }
        };
        push("keep_prefix", self.keep_prefix.as_ref().map(Spanned::span));
        push("keep_suffix", self.keep_suffix.as_ref().map(Spanned::span));
        push("mask_char", self.mask_char.as_ref().map(Spanned::span));
        push("reveal", self.reveal.as_ref().map(Spanned::span));
        push("link_as", self.link_as.as_ref().map(Spanned::span));
        push("to", self.to.as_ref().map(Spanned::span));
        push("width", self.width.as_ref().map(Spanned::span));
        push("edges", self.edges.as_ref().map(Spanned::span));
        push("digits", self.digits.as_ref().map(Spanned::span));
        push("as_of", self.as_of.as_ref().map(Spanned::span));
        push("bounds", self.bounds.as_ref().map(Spanned::span));
        keys
    }
}

/// The policy versions this build understands.
pub const SUPPORTED_VERSIONS: [i64; 1] = [1];

impl PolicyFile {
    /// Parses policy text. `source_name` (usually the file's path) is used in error messages.
    pub fn parse(source_name: &str, text: &str) -> Result<PolicyFile, PolicyErrors> {
        let source = Source { name: source_name, text };
        // Look at the version first, so that a file of a future version gets "unsupported version" rather
        // than a list of unknown keys.
        if let Ok(value) = text.parse::<toml::Table>()
            && let Some(v) = value.get("version")
            && v.as_integer().is_none_or(|v| !SUPPORTED_VERSIONS.contains(&v))
        {
            let offset = text.find("version").unwrap_or(0);
            return Err(PolicyErrors(vec![source.error(
                rules::VERSION,
                offset..offset,
                format!("policy version {v} is not supported"),
                crate::error::one_of(SUPPORTED_VERSIONS),
            )]));
        }
        toml::from_str::<PolicyFile>(text).map_err(|e| PolicyErrors(vec![syntax_error(&source, &e)]))
    }
}

fn syntax_error(source: &Source<'_>, e: &toml::de::Error) -> PolicyError {
    let span = e.span().unwrap_or(0..0);
    // toml's message is one line; keep it, without the rendered source excerpt.
    let message = e.message().trim().replace('\n', " ");
    source.error(rules::SYNTAX, span, message, None)
}
