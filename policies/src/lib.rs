//! # policies — what a dataset's columns may become
//!
//! The pure core of the zone's privacy rules: it parses an agency's policy file (TOML, `version = 1`),
//! validates it against the dataset's Arrow schema, and applies it to record batches. No I/O: callers hand in
//! text, schemas and batches; the zone keys come from the caller.
//!
//! ```text
//!  policy.toml ──PolicyFile::parse──▶ PolicyFile ──CompiledPolicy::compile(schema)──▶ CompiledPolicy
//!                     (spans)                         (fail closed: every column          │
//!                                                      classified, one subject, …)        ▼
//!  RecordBatch ────────────────────────────────────────────────▶ Desensitizer::apply ─▶ subject (host only)
//!                                                                   mask / token /    └▶ guest batch
//!                                                                   generalize
//! ```
//!
//! ```
//! use arrow_schema::{DataType, Field, Schema};
//! use policies::CompiledPolicy;
//!
//! let schema = Schema::new(vec![
//!     Field::new("id", DataType::Utf8, false),
//!     Field::new("district", DataType::Utf8, true),
//! ]);
//! let text = r#"
//! version = 1
//! [dataset]
//! name = "demo"
//! provider = "agency"
//! domains = ["finance"]
//! [release]
//! min_group_size = 10
//! max_output_rows = 1000
//! max_output_bytes = 65536
//! max_groups_per_subject = 1
//! modes = ["aggregate"]
//! [columns]
//! id = { class = "subject", format = "resident_id" }
//! district = { class = "plain" }
//! "#;
//! let policy = CompiledPolicy::compile("demo.toml", text, &schema).expect("valid policy");
//! assert_eq!(policy.subject().name, "id");
//! assert_eq!(policy.guest_schema().fields().len(), 1);
//! ```
//!
//! Where to extend: a new column class or generalization is a variant in [`policy`], its validation in
//! `compile.rs` (with a rule id in [`error::rules`]), its kernel in [`kernels`], and a golden case in
//! `tests/golden/`.

mod compile;
pub mod error;
pub mod file;
pub mod formats;
pub mod kernels;
pub mod policy;

pub use error::{PolicyError, PolicyErrors, RuleId};
pub use formats::Format;
pub use kernels::{ColumnKernel, Desensitized, Desensitizer, KernelError, TokenKey, TokenSecret, tokenize};
pub use policy::{
    Bands, Bounds, BudgetPeriod, ColumnPolicy, ColumnRule, CompiledPolicy, DatasetInfo, Domain, Epsilon,
    Generalization, MaskSpec, PrivacyRules, ReleaseMode, ReleaseRules, TokenSpec,
};
