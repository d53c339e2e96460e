//! Validation of a parsed policy file against the dataset's Arrow schema, producing a [`CompiledPolicy`].
//! Fail closed: every column classified, exactly one subject, every option fitting the column's type.

use std::collections::BTreeSet;
use std::ops::Range;

use arrow_schema::{DataType, Schema};
use toml::Spanned;

use crate::error::{PolicyError, PolicyErrors, RuleId, Source, one_of, rules};
use crate::file::{ColumnSpec, PolicyFile};
use crate::formats::{CivilDate, Format};
use crate::kernels::timezone_offset_seconds;
use crate::policy::{
    Bands, Bounds, BudgetPeriod, ColumnPolicy, ColumnRule, CompiledPolicy, DatasetInfo, Domain, Epsilon,
    Generalization, MaskSpec, PrivacyRules, ReleaseMode, ReleaseRules, TokenSpec,
};

const CLASSES: [&str; 7] = ["subject", "hidden", "plain", "masked", "tokenized", "generalized", "compute_only"];
const GENERALIZATIONS: [&str; 9] =
    ["year", "month", "band", "region", "id_region", "id_birth_year", "id_age_band", "id_sex", "mobile_prefix"];
const REVEALABLE: [&str; 2] = ["birth_date", "sex"];

impl CompiledPolicy {
    /// Parses `text` and validates it against `schema`. `source_name` (the file's path) is used in errors.
    pub fn compile(source_name: &str, text: &str, schema: &Schema) -> Result<CompiledPolicy, PolicyErrors> {
        let file = PolicyFile::parse(source_name, text)?;
        let source = Source { name: source_name, text };
        Compiler { source, errors: Vec::new() }.compile(&file, schema)
    }
}

struct Compiler<'a> {
    source: Source<'a>,
    errors: Vec<PolicyError>,
}

/// A value that was refused; the error is already recorded.
struct Refused;

type Checked<T> = Result<T, Refused>;

impl Compiler<'_> {
    fn fail<T>(&mut self, rule: RuleId, span: Range<usize>, message: impl Into<String>) -> Checked<T> {
        self.fail_help(rule, span, message, None)
    }

    fn fail_help<T>(
        &mut self,
        rule: RuleId,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Checked<T> {
        self.errors.push(self.source.error(rule, span, message, help));
        Err(Refused)
    }

    fn compile(mut self, file: &PolicyFile, schema: &Schema) -> Result<CompiledPolicy, PolicyErrors> {
        let dataset = self.dataset(file);
        let release = self.release(file);
        let columns = self.columns(file, schema);
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|e| (e.line, e.column, e.rule));
        match (dataset, release, columns) {
            (Ok(dataset), Ok(release), Ok((columns, subject))) if errors.is_empty() => {
                Ok(CompiledPolicy { dataset, release, columns, subject })
            }
            _ => Err(PolicyErrors(errors)),
        }
    }

    fn dataset(&mut self, file: &PolicyFile) -> Checked<DatasetInfo> {
        let d = file.dataset.get_ref();
        let name = d.name.get_ref();
        let name_ok = is_identifier(name) && name.len() <= 64;
        if !name_ok {
            self.fail_help(
                rules::DATASET_NAME,
                d.name.span(),
                format!("dataset name `{name}` is not allowed"),
                Some("use lower-case letters, digits and `_`, starting with a letter, at most 64".into()),
            )?;
        }
        let provider = d.provider.get_ref();
        let provider_ok = !provider.is_empty()
            && provider.len() <= 64
            && provider.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !provider_ok {
            self.fail_help(
                rules::DATASET_PROVIDER,
                d.provider.span(),
                format!("provider `{provider}` is not allowed"),
                Some("use the agency's short id: lower-case letters, digits, `-` and `_`".into()),
            )?;
        }
        let mut domains = Vec::new();
        if d.domains.get_ref().is_empty() {
            self.fail_help(
                rules::DATASET_DOMAIN,
                d.domains.span(),
                "a dataset must allow at least one domain",
                one_of(Domain::ALL),
            )?;
        }
        let mut bad = false;
        for item in d.domains.get_ref() {
            match Domain::from_name(item.get_ref()) {
                Some(domain) if domains.contains(&domain) => {
                    bad = true;
                    let _ = self.fail::<()>(
                        rules::DATASET_DOMAIN,
                        item.span(),
                        format!("domain `{domain}` is listed twice"),
                    );
                }
                Some(domain) => domains.push(domain),
                None => {
                    bad = true;
                    let _ = self.fail_help::<()>(
                        rules::DATASET_DOMAIN,
                        item.span(),
                        format!("unknown domain `{}`", item.get_ref()),
                        one_of(Domain::ALL),
                    );
                }
            }
        }
        if bad {
            return Err(Refused);
        }
        Ok(DatasetInfo { name: name.clone(), provider: provider.clone(), domains, description: d.description.clone() })
    }

    fn bounded(&mut self, rule: RuleId, value: &Spanned<i64>, range: Range<i64>, what: &str) -> Checked<u64> {
        let v = *value.get_ref();
        if !range.contains(&v) {
            return self.fail_help(
                rule,
                value.span(),
                format!("{what} is {v}"),
                Some(format!("must be from {} to {}", range.start, range.end - 1)),
            );
        }
        // In range, and the range starts at 1 or more.
        Ok(v.unsigned_abs())
    }

    fn release(&mut self, file: &PolicyFile) -> Checked<ReleaseRules> {
        let r = file.release.get_ref();
        let k = self.bounded(rules::MIN_GROUP_SIZE, &r.min_group_size, 2..1_000_001, "min_group_size (k)");
        let rows = self.bounded(rules::MAX_OUTPUT_ROWS, &r.max_output_rows, 1..1_000_000_001, "max_output_rows");
        let bytes = self.bounded(rules::MAX_OUTPUT_BYTES, &r.max_output_bytes, 1..(1 << 40) + 1, "max_output_bytes");
        let per_subject = self.bounded(
            rules::MAX_GROUPS_PER_SUBJECT,
            &r.max_groups_per_subject,
            1..1001,
            "max_groups_per_subject (L)",
        );
        let rows_per_subject = match &r.max_rows_per_subject_in_group {
            Some(v) => {
                self.bounded(rules::MAX_ROWS_PER_SUBJECT_IN_GROUP, v, 1..1_000_001, "max_rows_per_subject_in_group")
            }
            None => Ok(ReleaseRules::DEFAULT_MAX_ROWS_PER_SUBJECT_IN_GROUP),
        };
        let artifact = match &r.max_artifact_bytes {
            Some(v) => self.bounded(rules::MAX_ARTIFACT_BYTES, v, 1..(1 << 40) + 1, "max_artifact_bytes"),
            None => Ok(ReleaseRules::DEFAULT_MAX_ARTIFACT_BYTES),
        };
        let mut modes = Vec::new();
        let mut modes_ok = true;
        if r.modes.get_ref().is_empty() {
            modes_ok = false;
            let _ = self.fail_help::<()>(
                rules::RELEASE_MODE,
                r.modes.span(),
                "at least one release mode is needed",
                one_of(ReleaseMode::ALL),
            );
        }
        for item in r.modes.get_ref() {
            match ReleaseMode::from_name(item.get_ref()) {
                Some(m) if modes.contains(&m) => {
                    modes_ok = false;
                    let _ = self.fail::<()>(rules::RELEASE_MODE, item.span(), format!("mode `{m}` is listed twice"));
                }
                Some(m) => modes.push(m),
                None => {
                    modes_ok = false;
                    let _ = self.fail_help::<()>(
                        rules::RELEASE_MODE,
                        item.span(),
                        format!("unknown release mode `{}`", item.get_ref()),
                        one_of(ReleaseMode::ALL),
                    );
                }
            }
        }
        if !modes_ok {
            return Err(Refused);
        }
        let privacy = self.privacy(file, modes.contains(&ReleaseMode::Dp));
        Ok(ReleaseRules {
            privacy: privacy?,
            min_group_size: k?,
            max_output_rows: rows?,
            max_output_bytes: bytes?,
            max_groups_per_subject: per_subject?,
            max_rows_per_subject_in_group: rows_per_subject?,
            modes,
            max_artifact_bytes: artifact?,
        })
    }

    /// `[privacy]`: needed exactly when `dp` is a mode.
    fn privacy(&mut self, file: &PolicyFile, dp: bool) -> Checked<Option<PrivacyRules>> {
        let Some(section) = &file.privacy else {
            if dp {
                let span = file.release.get_ref().modes.span();
                return self.fail_help(
                    rules::PRIVACY,
                    span,
                    "mode `dp` needs a `[privacy]` section",
                    Some(
                        "add `[privacy]` with epsilon_per_job, delta_per_job, epsilon_per_operator, \
                         epsilon_per_dataset and period"
                            .into(),
                    ),
                );
            }
            return Ok(None);
        };
        if !dp {
            return self.fail_help(
                rules::PRIVACY,
                section.span(),
                "`[privacy]` is only for mode `dp`, which `modes` does not list",
                Some("add \"dp\" to modes, or remove the section".into()),
            );
        }
        let p = section.get_ref();
        let epsilon = |this: &mut Self, value: &Spanned<f64>, what: &str| -> Checked<Epsilon> {
            let v = *value.get_ref();
            match Epsilon::from_f64(v) {
                Some(e) if v <= 1_000.0 => Ok(e),
                _ => this.fail_help(
                    rules::PRIVACY_EPSILON,
                    value.span(),
                    format!("{what} is {v}"),
                    Some("must be a number from 0.000001 to 1000".into()),
                ),
            }
        };
        let per_job = epsilon(self, &p.epsilon_per_job, "epsilon_per_job");
        let per_operator = epsilon(self, &p.epsilon_per_operator, "epsilon_per_operator");
        let per_dataset = epsilon(self, &p.epsilon_per_dataset, "epsilon_per_dataset");
        let delta = *p.delta_per_job.get_ref();
        let delta_ok = delta.is_finite() && delta > 0.0 && delta <= PrivacyRules::MAX_DELTA;
        if !delta_ok {
            let _ = self.fail_help::<()>(
                rules::PRIVACY_DELTA,
                p.delta_per_job.span(),
                format!("delta_per_job is {delta}"),
                Some(format!("must be above 0 and at most {:e}", PrivacyRules::MAX_DELTA)),
            );
        }
        let period = BudgetPeriod::from_name(p.period.get_ref());
        if period.is_none() {
            let _ = self.fail_help::<()>(
                rules::PRIVACY_PERIOD,
                p.period.span(),
                format!("unknown budget period `{}`", p.period.get_ref()),
                one_of(BudgetPeriod::ALL.map(BudgetPeriod::name)),
            );
        }
        let block = match &p.max_block_subjects {
            Some(v) => self.bounded(
                rules::PRIVACY_BLOCK,
                v,
                1..PrivacyRules::MAX_BLOCK_SUBJECTS as i64 + 1,
                "max_block_subjects (b)",
            ),
            None => Ok(PrivacyRules::DEFAULT_MAX_BLOCK_SUBJECTS),
        };
        let (per_job, per_operator, per_dataset, block) = (per_job?, per_operator?, per_dataset?, block?);
        let (Some(period), true) = (period, delta_ok) else { return Err(Refused) };
        if per_operator < per_job {
            return self.fail(
                rules::PRIVACY_EPSILON,
                p.epsilon_per_operator.span(),
                format!(
                    "epsilon_per_operator ({per_operator}) is less than epsilon_per_job ({per_job}): no job could run"
                ),
            );
        }
        if per_dataset < per_operator {
            return self.fail(
                rules::PRIVACY_EPSILON,
                p.epsilon_per_dataset.span(),
                format!(
                    "epsilon_per_dataset ({per_dataset}) is less than epsilon_per_operator ({per_operator}); the \
                     dataset's cap is over all operators together"
                ),
            );
        }
        Ok(Some(PrivacyRules {
            epsilon_per_job: per_job,
            delta_per_job: delta,
            epsilon_per_operator: per_operator,
            epsilon_per_dataset: per_dataset,
            period,
            max_block_subjects: block,
        }))
    }

    fn columns(&mut self, file: &PolicyFile, schema: &Schema) -> Checked<(Vec<ColumnPolicy>, usize)> {
        let specs = file.columns.get_ref();
        let table_span = file.columns.span();
        let schema_names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut ok = true;
        for name in specs.keys() {
            if !schema_names.contains(&name.get_ref().as_str()) {
                ok = false;
                let _ = self.fail_help::<()>(
                    rules::COLUMN_UNKNOWN,
                    name.span(),
                    format!("column `{}` is not in the dataset", name.get_ref()),
                    one_of(&schema_names),
                );
            }
        }
        let dataset_name = file.dataset.get_ref().name.get_ref().as_str();
        let mut columns = Vec::with_capacity(schema.fields().len());
        let mut subjects = Vec::new();
        for field in schema.fields() {
            let Some((key, spec)) = specs.iter().find(|(k, _)| k.get_ref() == field.name()) else {
                ok = false;
                let _ = self.fail_help::<()>(
                    rules::COLUMN_UNCLASSIFIED,
                    table_span.start..table_span.start,
                    format!(
                        "dataset column `{}` ({}) has no class; an unclassified column is not readable",
                        field.name(),
                        field.data_type()
                    ),
                    Some(format!("add `{} = {{ class = \"...\" }}`; {}", field.name(), class_help())),
                );
                continue;
            };
            match self.column(dataset_name, field.name(), field.data_type(), field.is_nullable(), spec) {
                Ok(column) => {
                    if column.rule == ColumnRule::Subject {
                        subjects.push((columns.len(), key.span()));
                    }
                    columns.push(column);
                }
                Err(Refused) => ok = false,
            }
        }
        if !ok {
            return Err(Refused);
        }
        match subjects.as_slice() {
            [(index, _)] => Ok((columns, *index)),
            [] => self.fail_help(
                rules::SUBJECT_COUNT,
                table_span.start..table_span.start,
                "no column has class `subject`; the host must know whose record each row is",
                Some("mark exactly one column (a resident ID, a USCC) `class = \"subject\"`".into()),
            ),
            [_, rest @ ..] => {
                for (_, span) in rest {
                    let _ = self.fail::<()>(
                        rules::SUBJECT_COUNT,
                        span.clone(),
                        "a second `subject` column; a dataset has exactly one",
                    );
                }
                Err(Refused)
            }
        }
    }

    fn column(
        &mut self,
        dataset: &str,
        name: &str,
        data_type: &DataType,
        nullable: bool,
        spec: &Spanned<ColumnSpec>,
    ) -> Checked<ColumnPolicy> {
        let s = spec.get_ref();
        let class = s.class.get_ref().as_str();
        let allowed: &[&str] = match class {
            "subject" | "hidden" | "plain" => &[],
            "masked" => &["keep_prefix", "keep_suffix", "mask_char", "reveal"],
            "tokenized" => &["link_as"],
            "generalized" => &["to", "width", "edges", "digits", "as_of"],
            "compute_only" => &["bounds"],
            other => {
                return self.fail_help(
                    rules::COLUMN_CLASS,
                    s.class.span(),
                    format!("column `{name}`: unknown class `{other}`"),
                    one_of(CLASSES),
                );
            }
        };
        let mut keys_ok = true;
        for (key, span) in s.present_keys() {
            if !allowed.contains(&key) {
                keys_ok = false;
                let help = if allowed.is_empty() {
                    Some(format!("class `{class}` takes only `format` and `description`"))
                } else {
                    Some(format!("class `{class}` takes {}", allowed.join(", ")))
                };
                let _ = self.fail_help::<()>(
                    rules::COLUMN_KEY,
                    span,
                    format!("column `{name}`: `{key}` does not apply to class `{class}`"),
                    help,
                );
            }
        }
        let format = match &s.format {
            Some(f) => Some(self.format(name, data_type, f)?),
            None => None,
        };
        if !keys_ok {
            return Err(Refused);
        }
        let type_error = |what: &str| format!("column `{name}` is {data_type}; {what}");
        let rule = match class {
            "subject" => {
                if !(is_string(data_type) || is_integer(data_type)) {
                    return self.fail(
                        rules::COLUMN_TYPE,
                        s.class.span(),
                        type_error("a subject must be a string or an integer"),
                    );
                }
                ColumnRule::Subject
            }
            "hidden" => ColumnRule::Hidden,
            "plain" => {
                if let Some(f) = format.filter(|f| f.is_identifier()) {
                    return self.fail_help(
                        rules::PLAIN_IDENTIFIER,
                        s.class.span(),
                        format!(
                            "column `{name}` holds {f} values, which identify a person or firm; it cannot be plain"
                        ),
                        Some("use `subject`, `hidden`, `masked`, `tokenized` or `generalized`".into()),
                    );
                }
                if !is_plain_type(data_type) {
                    return self.fail(
                        rules::COLUMN_TYPE,
                        s.class.span(),
                        type_error("plain columns must be strings, numbers, booleans, dates or timestamps"),
                    );
                }
                ColumnRule::Plain
            }
            "masked" => ColumnRule::Masked(self.mask(name, data_type, format, s)?),
            "tokenized" => {
                if !(is_string(data_type) || is_integer(data_type)) {
                    return self.fail(
                        rules::COLUMN_TYPE,
                        s.class.span(),
                        type_error("only strings and integers can be tokenized"),
                    );
                }
                let scope = match &s.link_as {
                    Some(l) if is_identifier(l.get_ref()) => format!("link:{}", l.get_ref()),
                    Some(l) => {
                        return self.fail_help(
                            rules::TOKEN,
                            l.span(),
                            format!("column `{name}`: link_as `{}` is not a plain name", l.get_ref()),
                            Some("lower-case letters, digits and `_`".into()),
                        );
                    }
                    None => format!("column:{dataset}.{name}"),
                };
                ColumnRule::Tokenized(TokenSpec { scope })
            }
            "generalized" => {
                let (generalization, implied) = self.generalize(name, data_type, format, s)?;
                return Ok(ColumnPolicy {
                    name: name.to_owned(),
                    data_type: data_type.clone(),
                    nullable,
                    format: format.or(implied),
                    rule: ColumnRule::Generalized(generalization),
                    description: s.description.as_ref().map(|d| d.get_ref().clone()),
                });
            }
            "compute_only" => ColumnRule::ComputeOnly(self.bounds(name, data_type, s)?),
            _ => return self.fail(rules::COLUMN_CLASS, s.class.span(), format!("column `{name}`: unknown class")),
        };
        Ok(ColumnPolicy {
            name: name.to_owned(),
            data_type: data_type.clone(),
            nullable,
            format,
            rule,
            description: s.description.as_ref().map(|d| d.get_ref().clone()),
        })
    }

    fn format(&mut self, name: &str, data_type: &DataType, f: &Spanned<String>) -> Checked<Format> {
        let Some(format) = Format::from_name(f.get_ref()) else {
            return self.fail_help(
                rules::COLUMN_FORMAT,
                f.span(),
                format!("column `{name}`: unknown format `{}`", f.get_ref()),
                one_of(Format::ALL),
            );
        };
        let fits = is_string(data_type) || (format == Format::RegionCode && is_integer(data_type));
        if !fits {
            return self.fail(
                rules::COLUMN_FORMAT,
                f.span(),
                format!("column `{name}` is {data_type}; format `{format}` needs a string column"),
            );
        }
        Ok(format)
    }

    fn small_count(&mut self, name: &str, key: &str, v: &Option<Spanned<i64>>) -> Checked<usize> {
        match v {
            None => Ok(0),
            Some(v) if (0..=64).contains(v.get_ref()) => Ok(v.get_ref().unsigned_abs() as usize),
            Some(v) => self.fail_help(
                rules::MASK,
                v.span(),
                format!("column `{name}`: {key} is {}", v.get_ref()),
                Some("must be from 0 to 64".into()),
            ),
        }
    }

    fn mask(&mut self, name: &str, data_type: &DataType, format: Option<Format>, s: &ColumnSpec) -> Checked<MaskSpec> {
        if !is_string(data_type) {
            return self.fail(
                rules::COLUMN_TYPE,
                s.class.span(),
                format!("column `{name}` is {data_type}; only string columns can be masked"),
            );
        }
        let keep_prefix = self.small_count(name, "keep_prefix", &s.keep_prefix)?;
        let keep_suffix = self.small_count(name, "keep_suffix", &s.keep_suffix)?;
        let mask_char = match &s.mask_char {
            None => '*',
            Some(m) => {
                let mut chars = m.get_ref().chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_control() && !c.is_whitespace() => c,
                    _ => {
                        return self.fail_help(
                            rules::MASK,
                            m.span(),
                            format!("column `{name}`: mask_char must be one visible character"),
                            Some("e.g. \"*\" or \"＊\"".into()),
                        );
                    }
                }
            }
        };
        let mut reveal = BTreeSet::new();
        if let Some(r) = &s.reveal {
            if format != Some(Format::ResidentId) {
                return self.fail_help(
                    rules::MASK,
                    r.span(),
                    format!("column `{name}`: `reveal` applies only to `format = \"resident_id\"`"),
                    None,
                );
            }
            for item in r.get_ref() {
                if !REVEALABLE.contains(&item.get_ref().as_str()) {
                    return self.fail_help(
                        rules::MASK,
                        item.span(),
                        format!("column `{name}`: cannot reveal `{}`", item.get_ref()),
                        one_of(REVEALABLE),
                    );
                }
                reveal.insert(item.get_ref().as_str());
            }
        }
        if format == Some(Format::ResidentId) {
            // GB 11643 layout: region 0..6, birth date 6..14, sequence 14..17 (16 = sex), check 17.
            let shown = |pos: usize| pos < keep_prefix || pos >= 18usize.saturating_sub(keep_suffix);
            let span = s.keep_prefix.as_ref().or(s.keep_suffix.as_ref()).map_or(s.class.span(), Spanned::span);
            if (6..14).any(shown) && !reveal.contains("birth_date") {
                return self.fail_help(
                    rules::MASK_REVEALS,
                    span,
                    format!(
                        "column `{name}`: keep_prefix={keep_prefix} keep_suffix={keep_suffix} shows digits of the birth date (positions 7-14)"
                    ),
                    Some("keep at most 6 leading characters, or add `reveal = [\"birth_date\"]` if that is intended".into()),
                );
            }
            if shown(16) && !reveal.contains("sex") {
                return self.fail_help(
                    rules::MASK_REVEALS,
                    span,
                    format!(
                        "column `{name}`: keep_prefix={keep_prefix} keep_suffix={keep_suffix} shows the sex digit (position 17)"
                    ),
                    Some("keep at most 1 trailing character, or add `reveal = [\"sex\"]` if that is intended".into()),
                );
            }
        }
        Ok(MaskSpec { keep_prefix, keep_suffix, mask_char })
    }

    fn bands(&mut self, name: &str, s: &ColumnSpec, integer: bool) -> Checked<Bands> {
        match (&s.width, &s.edges) {
            (Some(w), None) => {
                let width = *w.get_ref();
                let integral_ok = !integer || width.fract() == 0.0;
                if !(width.is_finite() && width > 0.0 && integral_ok) {
                    return self.fail_help(
                        rules::GENERALIZE,
                        w.span(),
                        format!("column `{name}`: band width {width} is not allowed"),
                        Some(if integer { "a positive whole number" } else { "a positive number" }.into()),
                    );
                }
                Ok(Bands::Width(width))
            }
            (None, Some(e)) => {
                let edges = e.get_ref();
                let increasing = edges.windows(2).all(|p| p[0] < p[1]);
                if edges.is_empty() || edges.len() > 256 || !increasing || edges.iter().any(|x| !x.is_finite()) {
                    return self.fail_help(
                        rules::GENERALIZE,
                        e.span(),
                        format!("column `{name}`: band edges must be 1 to 256 finite, strictly increasing numbers"),
                        Some("e.g. edges = [18, 35, 60]".into()),
                    );
                }
                Ok(Bands::Edges(edges.clone()))
            }
            (Some(_), Some(e)) => self.fail(
                rules::GENERALIZE,
                e.span(),
                format!("column `{name}`: give either `width` or `edges`, not both"),
            ),
            (None, None) => self.fail_help(
                rules::GENERALIZE,
                s.to.as_ref().map_or(s.class.span(), Spanned::span),
                format!("column `{name}`: bands need `width` or `edges`"),
                Some("e.g. width = 10, or edges = [18, 35, 60]".into()),
            ),
        }
    }

    fn digits(&mut self, name: &str, s: &ColumnSpec, allowed: &[i64], default: i64) -> Checked<usize> {
        let v = s.digits.as_ref().map_or(default, |d| *d.get_ref());
        if !allowed.contains(&v) {
            let span = s.digits.as_ref().map_or(s.class.span(), Spanned::span);
            return self.fail_help(rules::GENERALIZE, span, format!("column `{name}`: digits = {v}"), one_of(allowed));
        }
        Ok(v.unsigned_abs() as usize)
    }

    fn generalize(
        &mut self,
        name: &str,
        data_type: &DataType,
        format: Option<Format>,
        s: &ColumnSpec,
    ) -> Checked<(Generalization, Option<Format>)> {
        let Some(to) = &s.to else {
            return self.fail_help(
                rules::GENERALIZE,
                s.class.span(),
                format!("column `{name}`: a generalized column needs `to`"),
                one_of(GENERALIZATIONS),
            );
        };
        let to_name = to.get_ref().as_str();
        let keys: &[&str] = match to_name {
            "year" | "month" | "id_birth_year" | "id_sex" | "mobile_prefix" => &[],
            "band" => &["width", "edges"],
            "region" | "id_region" => &["digits"],
            "id_age_band" => &["width", "edges", "as_of"],
            other => {
                return self.fail_help(
                    rules::GENERALIZE,
                    to.span(),
                    format!("column `{name}`: unknown generalization `{other}`"),
                    one_of(GENERALIZATIONS),
                );
            }
        };
        let mut keys_ok = true;
        for (key, span) in s.present_keys() {
            if key != "to" && !keys.contains(&key) {
                keys_ok = false;
                let _ = self.fail_help::<()>(
                    rules::COLUMN_KEY,
                    span,
                    format!("column `{name}`: `{key}` does not apply to `to = \"{to_name}\"`"),
                    Some(if keys.is_empty() {
                        format!("`{to_name}` takes no options")
                    } else {
                        format!("`{to_name}` takes {}", keys.join(", "))
                    }),
                );
            }
        }
        if !keys_ok {
            return Err(Refused);
        }
        let type_fail = |this: &mut Self, needs: &str| -> Checked<(Generalization, Option<Format>)> {
            this.fail(
                rules::COLUMN_TYPE,
                to.span(),
                format!("column `{name}` is {data_type}; `to = \"{to_name}\"` needs {needs}"),
            )
        };
        let needs_format = |this: &mut Self, wanted: Format| -> Checked<Option<Format>> {
            match format {
                Some(f) if f != wanted => this.fail(
                    rules::COLUMN_FORMAT,
                    to.span(),
                    format!("column `{name}` has format `{f}`; `to = \"{to_name}\"` reads `{wanted}` values"),
                ),
                _ => Ok(Some(wanted)),
            }
        };
        match to_name {
            "year" | "month" => {
                if !is_temporal(data_type) {
                    return type_fail(self, "a date or timestamp column");
                }
                if let DataType::Timestamp(_, Some(tz)) = data_type
                    && timezone_offset_seconds(tz).is_none()
                {
                    return self.fail_help(
                        rules::COLUMN_TYPE,
                        to.span(),
                        format!("column `{name}` has time zone `{tz}`, which this zone cannot convert"),
                        Some("supported: UTC, Asia/Shanghai (PRC), or a fixed offset like +08:00".into()),
                    );
                }
                let g = if to_name == "year" { Generalization::Year } else { Generalization::Month };
                Ok((g, None))
            }
            "band" => {
                if !is_numeric(data_type) {
                    return type_fail(self, "a numeric column");
                }
                Ok((Generalization::Band(self.bands(name, s, is_integer(data_type))?), None))
            }
            "region" => {
                if !(is_string(data_type) || is_integer(data_type)) {
                    return type_fail(self, "a 6-digit division code as string or integer");
                }
                let f = needs_format(self, Format::RegionCode)?;
                let digits = self.digits(name, s, &[2, 4], 4)?;
                Ok((Generalization::Region { digits }, f))
            }
            "mobile_prefix" => {
                if !is_string(data_type) {
                    return type_fail(self, "a string column");
                }
                let f = needs_format(self, Format::Mobile)?;
                Ok((Generalization::MobilePrefix, f))
            }
            _ => {
                // id_region, id_birth_year, id_age_band, id_sex
                if !is_string(data_type) {
                    return type_fail(self, "a string column of resident IDs");
                }
                let f = needs_format(self, Format::ResidentId)?;
                let g = match to_name {
                    "id_region" => Generalization::IdRegion { digits: self.digits(name, s, &[2, 4, 6], 6)? },
                    "id_birth_year" => Generalization::IdBirthYear,
                    "id_sex" => Generalization::IdSex,
                    _ => {
                        let bands = self.bands(name, s, true)?;
                        let Some(as_of) = &s.as_of else {
                            return self.fail_help(
                                rules::GENERALIZE,
                                to.span(),
                                format!("column `{name}`: an age band needs `as_of`, the date ages are computed on"),
                                Some("e.g. as_of = 2026-01-01, so that results do not change with the run date".into()),
                            );
                        };
                        let date = as_of
                            .get_ref()
                            .date
                            .and_then(|d| CivilDate::new(i32::from(d.year), u32::from(d.month), u32::from(d.day)));
                        let Some(date) = date.filter(|_| as_of.get_ref().time.is_none()) else {
                            return self.fail_help(
                                rules::GENERALIZE,
                                as_of.span(),
                                format!("column `{name}`: as_of must be a date"),
                                Some("e.g. as_of = 2026-01-01".into()),
                            );
                        };
                        Generalization::IdAgeBand { bands, as_of: date }
                    }
                };
                Ok((g, f))
            }
        }
    }

    fn bounds(&mut self, name: &str, data_type: &DataType, s: &ColumnSpec) -> Checked<Bounds> {
        if !is_numeric(data_type) {
            return self.fail(
                rules::COLUMN_TYPE,
                s.class.span(),
                format!("column `{name}` is {data_type}; compute_only needs a numeric column (it is aggregated)"),
            );
        }
        let Some(b) = &s.bounds else {
            return self.fail_help(
                rules::BOUNDS,
                s.class.span(),
                format!("column `{name}`: compute_only needs `bounds = [low, high]`"),
                Some("values are clamped to these bounds before aggregation".into()),
            );
        };
        match b.get_ref().as_slice() {
            [lo, hi] if lo.is_finite() && hi.is_finite() && lo <= hi => Ok(Bounds { lo: *lo, hi: *hi }),
            _ => self.fail_help(
                rules::BOUNDS,
                b.span(),
                format!("column `{name}`: bounds must be two finite numbers, low <= high"),
                Some("e.g. bounds = [0, 1_000_000]".into()),
            ),
        }
    }
}

fn class_help() -> String {
    one_of(CLASSES).unwrap_or_default()
}

/// Lower-case ASCII letters, digits and `_`, starting with a letter.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

pub(crate) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

pub(crate) fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

pub(crate) fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Float32 | DataType::Float64)
}

pub(crate) fn is_temporal(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _))
}

fn is_plain_type(t: &DataType) -> bool {
    is_string(t) || is_numeric(t) || is_temporal(t) || matches!(t, DataType::Boolean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("enterprise_registry"));
        assert!(!is_identifier("Enterprise"));
        assert!(!is_identifier("_x"));
        assert!(!is_identifier(""));
    }
}
