//! The compiled policy: what every column of one dataset may become, and the release rules. Only this type
//! crosses crate boundaries; it is built by [`CompiledPolicy::compile`] and cannot be built unchecked.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::formats::{CivilDate, Format};

/// The priority domains of public-data operation (Suzhou measures, Art. 13). A dataset lists the domains
/// that may use it; an application names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Manufacturing,
    Agriculture,
    Commerce,
    Transport,
    Finance,
    Science,
    CultureTourism,
    Health,
    Emergency,
    Weather,
    SmartCity,
    GreenLowCarbon,
}

impl Domain {
    pub const ALL: [Domain; 12] = [
        Domain::Manufacturing,
        Domain::Agriculture,
        Domain::Commerce,
        Domain::Transport,
        Domain::Finance,
        Domain::Science,
        Domain::CultureTourism,
        Domain::Health,
        Domain::Emergency,
        Domain::Weather,
        Domain::SmartCity,
        Domain::GreenLowCarbon,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Domain::Manufacturing => "manufacturing",
            Domain::Agriculture => "agriculture",
            Domain::Commerce => "commerce",
            Domain::Transport => "transport",
            Domain::Finance => "finance",
            Domain::Science => "science",
            Domain::CultureTourism => "culture_tourism",
            Domain::Health => "health",
            Domain::Emergency => "emergency",
            Domain::Weather => "weather",
            Domain::SmartCity => "smart_city",
            Domain::GreenLowCarbon => "green_low_carbon",
        }
    }

    pub fn from_name(name: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a product may leave the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReleaseMode {
    /// Host-computed aggregates that pass the release gate.
    Aggregate,
    /// Guest artifacts held until the providing agency approves them.
    Reviewed,
    /// Differentially private aggregates: the guest runs on subject-isolated blocks, every released cell is
    /// noised, and each run spends privacy budget (`[privacy]`).
    Dp,
}

impl ReleaseMode {
    pub const ALL: [ReleaseMode; 3] = [ReleaseMode::Aggregate, ReleaseMode::Dp, ReleaseMode::Reviewed];

    pub fn name(self) -> &'static str {
        match self {
            ReleaseMode::Aggregate => "aggregate",
            ReleaseMode::Reviewed => "reviewed",
            ReleaseMode::Dp => "dp",
        }
    }

    pub fn from_name(name: &str) -> Option<ReleaseMode> {
        ReleaseMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for ReleaseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who publishes the dataset and who may use it.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    pub name: String,
    pub provider: String,
    pub domains: Vec<Domain>,
    pub description: Option<String>,
}

/// What the release gate enforces for products derived from this dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRules {
    /// k: every released group is backed by at least this many distinct subjects.
    pub min_group_size: u64,
    pub max_output_rows: u64,
    pub max_output_bytes: u64,
    /// L: each subject contributes to at most this many groups.
    pub max_groups_per_subject: u64,
    /// Each subject's partial in one group (a sum, a count) is clamped to what this many of its rows could add
    /// within the measure's bounds, so that no subject dominates a group however many rows it has.
    pub max_rows_per_subject_in_group: u64,
    pub modes: Vec<ReleaseMode>,
    /// Cap on the total size of a reviewed job's artifacts.
    pub max_artifact_bytes: u64,
    /// `[privacy]`: present exactly when `modes` has `dp`.
    pub privacy: Option<PrivacyRules>,
}

/// How often a privacy budget refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    Month,
    Quarter,
    Year,
}

impl BudgetPeriod {
    pub const ALL: [BudgetPeriod; 3] = [BudgetPeriod::Month, BudgetPeriod::Quarter, BudgetPeriod::Year];

    pub fn name(self) -> &'static str {
        match self {
            BudgetPeriod::Month => "month",
            BudgetPeriod::Quarter => "quarter",
            BudgetPeriod::Year => "year",
        }
    }

    pub fn from_name(name: &str) -> Option<BudgetPeriod> {
        BudgetPeriod::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The first month (1-12) of the period that holds `month`, and the period's length in months.
    pub fn months(self, month: u32) -> (u32, u32) {
        let len = match self {
            BudgetPeriod::Month => 1,
            BudgetPeriod::Quarter => 3,
            BudgetPeriod::Year => 12,
        };
        (((month.clamp(1, 12) - 1) / len) * len + 1, len)
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// ε, exactly: in millionths, so that budgets add up without rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Epsilon(pub u64);

impl Epsilon {
    pub const UNIT: u64 = 1_000_000;

    /// ε from a decimal number, to the nearest millionth; `None` when it is not a positive finite number of at
    /// least one millionth.
    pub fn from_f64(value: f64) -> Option<Epsilon> {
        let micros = (value * Self::UNIT as f64).round();
        (value.is_finite() && (1.0..1e15).contains(&micros)).then_some(Epsilon(micros as u64))
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / Self::UNIT as f64
    }

    pub fn saturating_sub(self, other: Epsilon) -> Epsilon {
        Epsilon(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Epsilon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::UNIT;
        let frac = self.0 % Self::UNIT;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// `[privacy]`: what `dp` mode may spend. A run spends its ε (at most `epsilon_per_job`) against two budgets per
/// period: the operator's on this dataset, and the dataset's over all operators (against collusion). δ is the
/// probability, per run, that partition selection lets a group through that a single block could have made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrivacyRules {
    pub epsilon_per_job: Epsilon,
    pub delta_per_job: f64,
    pub epsilon_per_operator: Epsilon,
    pub epsilon_per_dataset: Epsilon,
    pub period: BudgetPeriod,
    /// b: the most subjects one isolated block of the guest may see.
    pub max_block_subjects: u64,
}

// δ is checked finite when compiled.
impl Eq for PrivacyRules {}

impl PrivacyRules {
    pub const DEFAULT_MAX_BLOCK_SUBJECTS: u64 = 64;
    pub const MAX_BLOCK_SUBJECTS: u64 = 4_096;
    pub const MAX_DELTA: f64 = 1e-3;

    /// The stricter of two (for a job over several datasets): each budget is still charged per dataset.
    pub fn stricter(&self, other: &PrivacyRules) -> PrivacyRules {
        PrivacyRules {
            epsilon_per_job: self.epsilon_per_job.min(other.epsilon_per_job),
            delta_per_job: self.delta_per_job.min(other.delta_per_job),
            epsilon_per_operator: self.epsilon_per_operator.min(other.epsilon_per_operator),
            epsilon_per_dataset: self.epsilon_per_dataset.min(other.epsilon_per_dataset),
            period: self.period,
            max_block_subjects: self.max_block_subjects.min(other.max_block_subjects),
        }
    }
}

impl ReleaseRules {
    /// Rows of one subject one group counts when a policy does not say.
    pub const DEFAULT_MAX_ROWS_PER_SUBJECT_IN_GROUP: u64 = 1;

    /// The default artifact cap when a policy allows reviewed mode without naming one: 16 MiB.
    pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 16 * 1024 * 1024;

    /// The stricter of two rule sets, for jobs that join datasets: larger k, smaller limits, only the modes both
    /// allow.
    pub fn stricter(&self, other: &ReleaseRules) -> ReleaseRules {
        ReleaseRules {
            min_group_size: self.min_group_size.max(other.min_group_size),
            max_output_rows: self.max_output_rows.min(other.max_output_rows),
            max_output_bytes: self.max_output_bytes.min(other.max_output_bytes),
            max_groups_per_subject: self.max_groups_per_subject.min(other.max_groups_per_subject),
            max_rows_per_subject_in_group: self.max_rows_per_subject_in_group.min(other.max_rows_per_subject_in_group),
            modes: self.modes.iter().copied().filter(|m| other.modes.contains(m)).collect(),
            max_artifact_bytes: self.max_artifact_bytes.min(other.max_artifact_bytes),
            privacy: match (&self.privacy, &other.privacy) {
                (Some(a), Some(b)) => Some(a.stricter(b)),
                _ => None,
            },
        }
    }
}

/// Mask: keep a prefix and a suffix, replace every character between with `mask_char`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskSpec {
    pub keep_prefix: usize,
    pub keep_suffix: usize,
    pub mask_char: char,
}

/// Tokenize: keyed HMAC-SHA256 under the zone's tokenization key and this scope. Columns that share a scope
/// (`link_as`) get equal tokens for equal values and can be joined; by default a scope is `dataset.column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub scope: String,
}

/// Numeric bands: fixed width from zero, or explicit edges.
#[derive(Debug, Clone, PartialEq)]
pub enum Bands {
    /// `[k*width, (k+1)*width)`.
    Width(f64),
    /// `(-inf, e0)`, `[e0, e1)`, …, `[en, +inf)`; strictly increasing.
    Edges(Vec<f64>),
}

/// Generalization: replace a value by a coarser one.
#[derive(Debug, Clone, PartialEq)]
pub enum Generalization {
    /// Date or timestamp → calendar year (`Int32`).
    Year,
    /// Date or timestamp → `YYYY-MM` (`Utf8`).
    Month,
    /// Number → band label (`Utf8`), e.g. `20-29` or `[0.5, 1)`.
    Band(Bands),
    /// 6-digit division code → its first `digits` digits, zero-padded (`320508` → `320500`).
    Region { digits: usize },
    /// Resident ID → region of registration, `digits` of 2, 4 or 6, zero-padded.
    IdRegion { digits: usize },
    /// Resident ID → birth year (`Int32`).
    IdBirthYear,
    /// Resident ID → age band on a fixed reference date (`Utf8`).
    IdAgeBand { bands: Bands, as_of: CivilDate },
    /// Resident ID → `M` or `F`.
    IdSex,
    /// Mobile number → its first three digits (the carrier segment).
    MobilePrefix,
}

impl Generalization {
    /// The policy-file name of the generalization (`to = "..."`).
    pub fn name(&self) -> &'static str {
        match self {
            Generalization::Year => "year",
            Generalization::Month => "month",
            Generalization::Band(_) => "band",
            Generalization::Region { .. } => "region",
            Generalization::IdRegion { .. } => "id_region",
            Generalization::IdBirthYear => "id_birth_year",
            Generalization::IdAgeBand { .. } => "id_age_band",
            Generalization::IdSex => "id_sex",
            Generalization::MobilePrefix => "mobile_prefix",
        }
    }

    /// The Arrow type the guest sees.
    pub fn output_type(&self) -> DataType {
        match self {
            Generalization::Year | Generalization::IdBirthYear => DataType::Int32,
            _ => DataType::Utf8,
        }
    }
}

/// Clamp bounds of a `compute_only` measure (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub lo: f64,
    pub hi: f64,
}

/// What one column may become.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnRule {
    /// Identifies the data subject; kept by the host, counted, never shown.
    Subject,
    /// Never read.
    Hidden,
    /// Shown as is; may be a group key or a measure.
    Plain,
    Masked(MaskSpec),
    Tokenized(TokenSpec),
    Generalized(Generalization),
    /// Shown raw inside the zone; reaches output only through host aggregation clamped to the bounds.
    ComputeOnly(Bounds),
}

impl ColumnRule {
    /// The class name used in policy files.
    pub fn class_name(&self) -> &'static str {
        match self {
            ColumnRule::Subject => "subject",
            ColumnRule::Hidden => "hidden",
            ColumnRule::Plain => "plain",
            ColumnRule::Masked(_) => "masked",
            ColumnRule::Tokenized(_) => "tokenized",
            ColumnRule::Generalized(_) => "generalized",
            ColumnRule::ComputeOnly(_) => "compute_only",
        }
    }
}

/// The policy of one dataset column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnPolicy {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub format: Option<Format>,
    pub rule: ColumnRule,
    pub description: Option<String>,
}

impl ColumnPolicy {
    /// The field the guest sees, or `None` for the subject and hidden columns.
    pub fn guest_field(&self) -> Option<Field> {
        let data_type = match &self.rule {
            ColumnRule::Subject | ColumnRule::Hidden => return None,
            ColumnRule::Plain | ColumnRule::ComputeOnly(_) => self.data_type.clone(),
            ColumnRule::Masked(_) | ColumnRule::Tokenized(_) => DataType::Utf8,
            ColumnRule::Generalized(g) => g.output_type(),
        };
        // A generalization of a malformed value is null, so generalized columns are always nullable.
        let nullable = self.nullable || matches!(self.rule, ColumnRule::Generalized(_));
        Some(Field::new(self.name.clone(), data_type, nullable))
    }
}

/// A policy that parsed and fits its dataset's Arrow schema.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    pub(crate) dataset: DatasetInfo,
    pub(crate) release: ReleaseRules,
    /// In the order of the dataset schema.
    pub(crate) columns: Vec<ColumnPolicy>,
    pub(crate) subject: usize,
}

impl CompiledPolicy {
    pub fn dataset(&self) -> &DatasetInfo {
        &self.dataset
    }

    pub fn release(&self) -> &ReleaseRules {
        &self.release
    }

    /// Every column, in the order of the dataset schema.
    pub fn columns(&self) -> &[ColumnPolicy] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<&ColumnPolicy> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column that identifies the data subject.
    pub fn subject(&self) -> &ColumnPolicy {
        &self.columns[self.subject]
    }

    /// Index of the subject column in the dataset schema.
    pub fn subject_index(&self) -> usize {
        self.subject
    }

    /// The schema a guest sees: every column but the subject and the hidden ones, transformed, in dataset order.
    pub fn guest_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.columns.iter().filter_map(ColumnPolicy::guest_field).collect::<Vec<_>>()))
    }
}

fn fmt_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

impl fmt::Display for Bands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bands::Width(w) => write!(f, "width {}", fmt_number(*w)),
            Bands::Edges(e) => {
                let edges: Vec<String> = e.iter().map(|x| fmt_number(*x)).collect();
                write!(f, "edges [{}]", edges.join(", "))
            }
        }
    }
}

impl fmt::Display for ColumnRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class_name())?;
        match self {
            ColumnRule::Masked(m) => {
                write!(f, " keep_prefix={} keep_suffix={} mask_char={:?}", m.keep_prefix, m.keep_suffix, m.mask_char)
            }
            ColumnRule::Tokenized(t) => write!(f, " scope={}", t.scope),
            ColumnRule::Generalized(g) => {
                write!(f, " to={}", g.name())?;
                match g {
                    Generalization::Band(b) => write!(f, " {b}"),
                    Generalization::Region { digits } | Generalization::IdRegion { digits } => {
                        write!(f, " digits={digits}")
                    }
                    Generalization::IdAgeBand { bands, as_of } => write!(f, " {bands} as_of={as_of}"),
                    _ => Ok(()),
                }
            }
            ColumnRule::ComputeOnly(b) => write!(f, " bounds=[{}, {}]", fmt_number(b.lo), fmt_number(b.hi)),
            ColumnRule::Subject | ColumnRule::Hidden | ColumnRule::Plain => Ok(()),
        }
    }
}

/// The compiled policy as stable text: what golden tests compare and what `dataset show` prints in full.
impl fmt::Display for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.dataset;
        let r = &self.release;
        let domains: Vec<&str> = d.domains.iter().map(|x| x.name()).collect();
        let modes: Vec<&str> = r.modes.iter().map(|x| x.name()).collect();
        writeln!(f, "dataset {} (provider {})", d.name, d.provider)?;
        writeln!(f, "  domains: {}", domains.join(", "))?;
        writeln!(
            f,
            "  release: k={} L={} rows_per_subject_in_group={} max_rows={} max_bytes={} max_artifact_bytes={} modes={}",
            r.min_group_size,
            r.max_groups_per_subject,
            r.max_rows_per_subject_in_group,
            r.max_output_rows,
            r.max_output_bytes,
            r.max_artifact_bytes,
            modes.join("|")
        )?;
        if let Some(p) = &r.privacy {
            writeln!(
                f,
                "  privacy: epsilon_per_job={} delta_per_job={:e} epsilon_per_operator={} epsilon_per_dataset={} \
                 period={} max_block_subjects={}",
                p.epsilon_per_job,
                p.delta_per_job,
                p.epsilon_per_operator,
                p.epsilon_per_dataset,
                p.period,
                p.max_block_subjects
            )?;
        }
        writeln!(f, "  columns:")?;
        for c in &self.columns {
            let guest = match c.guest_field() {
                Some(field) => format!("{}{}", field.data_type(), if field.is_nullable() { "?" } else { "" }),
                None => "-".to_owned(),
            };
            let format = c.format.map(|x| format!(" format={x}")).unwrap_or_default();
            writeln!(
                f,
                "    {}: {}{} -> {}{} | guest sees: {}",
                c.name,
                c.data_type,
                if c.nullable { "?" } else { "" },
                c.rule,
                format,
                guest
            )?;
        }
        Ok(())
    }
}
