//! The `dp` release: (ε, δ)-differential privacy per subject, whatever the guest does.
//!
//! Neighbouring inputs differ by one subject with all its rows. The guest runs on isolated blocks
//! ([`crate::blocks`]), so one subject can change every output row of its block and nothing else: at most `b`
//! subjects' rows on each side. The host still bounds every subject's rows (at most `L` groups, each partial
//! clamped to `r` rows within the measure's bounds), so what one subject can change is `s·L` subjects' bounded
//! contributions, with `s = 1` for `b = 1` (the subject's own block appears or disappears) and `s = 2b` above
//! (a block of up to `b` subjects becomes another of up to `b`).
//!
//! The run's ε is split evenly over its noisy queries: the selection of the groups the guest made (unless there
//! are no keys), one per count or sum, two per mean (its sum and its count). Each query adds discrete Laplace
//! noise ([`zone_noise`]) of scale `Δ / ε_q` on integers: counts as they are, sums in a fixed-point unit (a power
//! of ten, about a millionth of one subject's largest partial). A group is released when its noisy count of
//! distinct subjects reaches the threshold `τ = max(k, c + t)`, where `c` is the most subjects one block can add
//! to a group (`b`) and `t` the noise level that `s·L` groups (all a block could make on its own) pass together
//! with probability at most δ. Means are post-processing (noisy sum / noisy count, clamped to the bounds).
//!
//! The noise is drawn from a ChaCha20 stream keyed by the zone's noise key and the job, in the order of the sorted
//! groups: the same job run again draws the same noise.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::builder::{Float64Builder, Int64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_cast::{CastOptions, cast::cast_with_options};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::Distribution;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use policies::Epsilon;
use zone_noise::report::{DpReport, MeasureNoise, SelectionNoise};
use zone_noise::{NoiseSource, Scale};
use zone_sandbox::{Aggregate, OutputDecl};

use crate::gate::{GateError, SUBJECTS, checked_column};
use crate::stage::Stage;

/// A public domain of one key, declared in the application: every value is released, empty groups too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDomain {
    pub key: String,
    pub values: Vec<String>,
}

/// What a `dp` run spends and how it cuts its blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct DpSettings {
    /// ε of the whole run.
    pub epsilon: Epsilon,
    pub delta: f64,
    /// b.
    pub block_subjects: u64,
    /// A public bound on the subjects (the pinned versions' row count): it sets the number of blocks.
    pub population: u64,
    /// The zone's noise key; with the job, it keys the noise and the fingerprints.
    pub noise_key: [u8; 32],
    pub job: u64,
    /// Public domains of the keys (every key or none): the product is every combination of their values, with no
    /// partition selection (and no δ) because which groups exist does not depend on the data.
    pub key_domain: Vec<KeyDomain>,
}

/// One measure's noise plan.
#[derive(Debug, Clone)]
pub(crate) struct MeasurePlan {
    pub(crate) name: String,
    pub(crate) aggregate: Aggregate,
    /// Integer measures release Int64 sums.
    pub(crate) integer: bool,
    pub(crate) unit: f64,
    pub(crate) bounds: (f64, f64),
    pub(crate) sum_scale: Option<Scale>,
    pub(crate) count_scale: Option<Scale>,
}

/// The whole noise plan of a run.
#[derive(Debug, Clone)]
pub(crate) struct DpPlan {
    pub(crate) settings: DpSettings,
    pub(crate) measures: Vec<MeasurePlan>,
    /// `None` when there are no keys: the one group exists whatever the data.
    pub(crate) selection: Option<(Scale, u64)>,
    pub(crate) report: DpReport,
}

/// The name of a released interval column.
pub(crate) fn interval_names(measure: &str) -> (String, String) {
    (format!("{measure}_ci95_low"), format!("{measure}_ci95_high"))
}

/// `Δ · queries / ε` as a discrete Laplace scale.
fn scale_for(sensitivity: u128, queries: u64, epsilon: Epsilon) -> Result<Scale> {
    let num = sensitivity.max(1).saturating_mul(u128::from(queries.max(1))).saturating_mul(u128::from(Epsilon::UNIT));
    Scale::new(num, epsilon.0.max(1)).ok_or_else(|| DataFusionError::Plan("a noise scale is not positive".into()))
}

/// Every key has exactly one domain, and every domain names a key.
fn check_domain(declared: &OutputDecl, domain: &[KeyDomain]) -> Result<()> {
    for d in domain {
        if !declared.keys.iter().any(|k| k.name() == &d.key) {
            return Err(DataFusionError::Plan(format!(
                "the key domain names `{}`, which is not a key of the job's output",
                d.key
            )));
        }
        if domain.iter().filter(|o| o.key == d.key).count() > 1 {
            return Err(DataFusionError::Plan(format!("the key domain lists `{}` twice", d.key)));
        }
        if d.values.is_empty() {
            return Err(DataFusionError::Plan(format!("the key domain of `{}` has no values", d.key)));
        }
    }
    let missing: Vec<&str> =
        declared.keys.iter().map(|k| k.name().as_str()).filter(|k| !domain.iter().any(|d| d.key == *k)).collect();
    if !missing.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "a key domain must cover every key of the output; it has none for {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The declared domains as one batch: every combination of their values, in the order of the output's keys, each
/// column of its key's type.
pub(crate) fn domain_batch(declared: &OutputDecl, domain: &[KeyDomain], max_rows: u64) -> Result<RecordBatch> {
    check_domain(declared, domain)?;
    let ordered: Vec<(&Field, &KeyDomain)> =
        declared.keys.iter().filter_map(|k| domain.iter().find(|d| &d.key == k.name()).map(|d| (k, d))).collect();
    let rows = ordered.iter().try_fold(1u64, |n, (_, d)| n.checked_mul(d.values.len() as u64));
    match rows {
        Some(n) if n <= max_rows => {}
        _ => {
            return Err(DataFusionError::Plan(format!(
                "the key domain has more combinations than the {max_rows} rows a product may have"
            )));
        }
    }
    let rows = rows.unwrap_or(0) as usize;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(ordered.len());
    // Row i takes, for each key, value (i / stride) % len: the last key varies fastest.
    let mut stride = rows;
    for (field, d) in &ordered {
        stride /= d.values.len().max(1);
        let text: StringArray =
            (0..rows).map(|i| Some(d.values[(i / stride.max(1)) % d.values.len()].as_str())).collect();
        let options = CastOptions { safe: false, ..Default::default() };
        let typed = cast_with_options(&text, field.data_type(), &options).map_err(|e| {
            DataFusionError::Plan(format!(
                "a value of the key domain of `{}` is not a {}: {e}",
                d.key,
                field.data_type()
            ))
        })?;
        // "1" and "01" are one integer: a value listed twice would release its group twice.
        let shown = cast_with_options(&typed, &DataType::Utf8, &options)?;
        let shown = shown.as_string::<i32>();
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = (0..d.values.len()).map(|i| shown.value(i * stride.max(1))).find(|v| !seen.insert(*v)) {
            return Err(DataFusionError::Plan(format!("the key domain of `{}` lists {twice:?} twice", d.key)));
        }
        columns.push(typed);
    }
    let schema = Schema::new(
        ordered.iter().map(|(f, _)| Field::new(f.name().clone(), f.data_type().clone(), true)).collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// A power of ten near a millionth of `largest` (at least 1 for integer measures).
fn unit_for(largest: f64, integer: bool) -> f64 {
    let unit = if largest > 0.0 && largest.is_finite() {
        10f64.powf((largest / f64::from(1u32 << 20)).log10().ceil())
    } else {
        1.0
    };
    if integer { unit.max(1.0) } else { unit }
}

impl DpPlan {
    /// The plan for a declaration under the release limits.
    pub(crate) fn new(
        declared: &OutputDecl,
        settings: DpSettings,
        blocks: u64,
        min_group_size: u64,
        max_groups_per_subject: u64,
        rows_per_subject_in_group: u64,
    ) -> Result<DpPlan> {
        let b = settings.block_subjects.max(1);
        let s = if b == 1 { 1 } else { 2 * b };
        let l = max_groups_per_subject.max(1);
        let r = rows_per_subject_in_group.max(1);
        if !settings.key_domain.is_empty() {
            check_domain(declared, &settings.key_domain)?;
        }
        let selecting = !declared.keys.is_empty() && settings.key_domain.is_empty();
        let mut queries = u64::from(selecting);
        for m in &declared.measures {
            queries += match m.aggregate {
                Aggregate::Count | Aggregate::Sum => 1,
                Aggregate::Mean => 2,
                Aggregate::Min | Aggregate::Max => {
                    return Err(DataFusionError::Plan(format!(
                        "measure `{}` is a {}, which `dp` mode does not release (count, sum and mean only)",
                        m.field.name(),
                        m.aggregate
                    )));
                }
            };
        }
        let eps = settings.epsilon;
        let eps_q = eps.as_f64() / queries.max(1) as f64;
        let factor = u128::from(s) * u128::from(l);
        let mut measures = Vec::new();
        let mut reports = Vec::new();
        for m in &declared.measures {
            let name = m.field.name().clone();
            let integer =
                matches!(m.field.data_type(), DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64);
            let (lo, hi) = m.bounds.unwrap_or((0.0, 0.0));
            let count_scale = match m.aggregate {
                Aggregate::Count | Aggregate::Mean => Some(scale_for(factor * u128::from(r), queries, eps)?),
                _ => None,
            };
            let (unit, sum_scale, sensitivity) = match m.aggregate {
                Aggregate::Sum | Aggregate::Mean => {
                    let rows = r as f64;
                    let unit = unit_for(lo.abs().max(hi.abs()) * rows, integer);
                    let units = ((lo * rows / unit).round(), (hi * rows / unit).round());
                    let largest = units.0.abs().max(units.1.abs()).max(1.0);
                    let sensitivity = factor.saturating_mul(largest as u128);
                    (unit, Some(scale_for(sensitivity, queries, eps)?), sensitivity as f64 * unit)
                }
                _ => (1.0, None, (factor * u128::from(r)) as f64),
            };
            let scale = sum_scale.or(count_scale).map_or(0.0, |x| x.as_f64() * unit);
            reports.push(MeasureNoise {
                name: name.clone(),
                aggregate: m.aggregate.name().to_owned(),
                epsilon: eps_q * if m.aggregate == Aggregate::Mean { 2.0 } else { 1.0 },
                sensitivity,
                scale,
                count_scale: (m.aggregate == Aggregate::Mean).then(|| count_scale.map_or(0.0, Scale::as_f64)),
                ci95_half_width: match m.aggregate {
                    Aggregate::Mean => None,
                    _ => sum_scale.or(count_scale).map(|x| x.half_width(0.05) as f64 * unit),
                },
                unit,
            });
            measures.push(MeasurePlan {
                name,
                aggregate: m.aggregate,
                integer,
                unit,
                bounds: (lo, hi),
                sum_scale,
                count_scale,
            });
        }
        let selection = if selecting {
            let scale = scale_for(factor, queries, eps)?;
            // At most s·L groups can exist on one side only, each with at most b (or 1) subjects of that block.
            let exclusive = (s * l) as f64;
            let per_group = b;
            let threshold = (per_group + scale.tail_bound(settings.delta / exclusive)).max(min_group_size);
            Some((scale, threshold))
        } else {
            None
        };
        let report = DpReport {
            epsilon: eps.as_f64(),
            delta: if selecting { settings.delta } else { 0.0 },
            block_subjects: b,
            blocks,
            sensitivity_factor: s,
            selection: selection.map(|(scale, threshold)| SelectionNoise {
                epsilon: eps_q,
                scale: scale.as_f64(),
                threshold,
            }),
            measures: reports,
        };
        Ok(DpPlan { settings, measures, selection, report })
    }

    /// The product schema: the keys, then each measure with its 95 % interval.
    pub(crate) fn product_schema(&self, declared: &OutputDecl) -> Result<SchemaRef> {
        let mut fields: Vec<Field> =
            declared.keys.iter().map(|k| Field::new(k.name().clone(), k.data_type().clone(), true)).collect();
        for m in &self.measures {
            let t = match m.aggregate {
                Aggregate::Count => DataType::Int64,
                Aggregate::Sum if m.integer => DataType::Int64,
                _ => DataType::Float64,
            };
            let (low, high) = interval_names(&m.name);
            for name in [&m.name, &low, &high] {
                if fields.iter().any(|f| f.name() == name) {
                    return Err(DataFusionError::Plan(format!(
                        "output column `{name}` is declared by the job and is also the name of a released interval"
                    )));
                }
                fields.push(Field::new(name.clone(), t.clone(), true));
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// Counted for the agencies and the inspector.
#[derive(Debug, Default)]
pub(crate) struct DpCounters {
    pub(crate) groups: AtomicU64,
    pub(crate) released: AtomicU64,
}

/// Selects and noises the groups. Input: the keys, `__subjects`, then per measure its summed partials
/// (`name__n` counts, `name__s` sums in units), sorted by the keys, in one partition.
#[derive(Debug, Clone)]
pub(crate) struct DpRelease {
    pub(crate) plan: Arc<DpPlan>,
    pub(crate) keys: usize,
    pub(crate) schema: SchemaRef,
    pub(crate) max_output_rows: u64,
    pub(crate) counters: Arc<DpCounters>,
}

fn gate_error(e: GateError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("the dp release has no `{name}`")))
}

fn int_values(batch: &RecordBatch, name: &str) -> Result<Vec<i64>> {
    let c = column(batch, name)?;
    let c =
        c.as_primitive_opt::<Int64Type>().ok_or_else(|| DataFusionError::Internal(format!("`{name}` is not Int64")))?;
    Ok(c.iter().map(|v| v.unwrap_or(0)).collect())
}

fn float_values(batch: &RecordBatch, name: &str) -> Result<Vec<f64>> {
    let c = column(batch, name)?;
    let c = c
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| DataFusionError::Internal(format!("`{name}` is not Float64")))?;
    Ok(c.iter().map(|v| v.unwrap_or(0.0)).collect())
}

/// `units` whole units of `unit` (a power of ten), as the nearest double to the decimal number: a unit below one
/// divides by its exact inverse, so that 12,345 hundredths prints as 123.45.
fn in_units(units: f64, unit: f64) -> f64 {
    if unit < 1.0 { units / (1.0 / unit).round() } else { units * unit }
}

/// A column of released values (Int64 or Float64).
enum Values {
    Int(Int64Builder),
    Float(Float64Builder),
}

impl Values {
    fn new(integer: bool, rows: usize) -> Values {
        if integer {
            Values::Int(Int64Builder::with_capacity(rows))
        } else {
            Values::Float(Float64Builder::with_capacity(rows))
        }
    }

    fn push(&mut self, v: f64) {
        match self {
            // `as` saturates; the value is a whole number of units times a whole unit.
            Values::Int(b) => b.append_value(v.round() as i64),
            Values::Float(b) => b.append_value(v),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Values::Int(mut b) => Arc::new(b.finish()),
            Values::Float(mut b) => Arc::new(b.finish()),
        }
    }
}

impl DpRelease {
    fn release(&self, batch: &RecordBatch, noise: &mut NoiseSource) -> Result<RecordBatch> {
        let plan = &self.plan;
        let rows = batch.num_rows();
        self.counters.groups.fetch_add(rows as u64, Ordering::Relaxed);
        let subjects = int_values(batch, SUBJECTS)?;
        // Which groups are released: all of them without keys; otherwise by noisy count.
        let keep: Vec<bool> = match plan.selection {
            None => vec![true; rows],
            Some((scale, threshold)) => subjects
                .iter()
                .map(|&c| {
                    c.saturating_add(noise.discrete_laplace(scale)) >= i64::try_from(threshold).unwrap_or(i64::MAX)
                })
                .collect(),
        };
        let kept = keep.iter().filter(|&&k| k).count();
        let released = self.counters.released.fetch_add(kept as u64, Ordering::Relaxed) + kept as u64;
        if released > self.max_output_rows {
            return Err(gate_error(GateError::TooManyRows { limit: self.max_output_rows }));
        }
        let mask: arrow_array::BooleanArray = keep.iter().map(|&k| Some(k)).collect();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (i, field) in self.schema.fields().iter().take(self.keys).enumerate() {
            let filtered = arrow_select::filter::filter(batch.column(i), &mask)?;
            columns.push(checked_column(&filtered, field.data_type())?);
        }
        for m in &plan.measures {
            let count_of = |suffix: &str| int_values(batch, &format!("{}__{suffix}", m.name));
            let sum_of = |suffix: &str| float_values(batch, &format!("{}__{suffix}", m.name));
            let integer_out = m.aggregate != Aggregate::Mean && (m.aggregate == Aggregate::Count || m.integer);
            let (mut value, mut low, mut high) =
                (Values::new(integer_out, kept), Values::new(integer_out, kept), Values::new(integer_out, kept));
            match m.aggregate {
                Aggregate::Count => {
                    let counts = count_of("n")?;
                    let scale = m.count_scale.ok_or_else(|| DataFusionError::Internal("count without scale".into()))?;
                    let hw = scale.half_width(0.05) as f64;
                    for (c, _) in counts.iter().zip(&keep).filter(|(_, k)| **k) {
                        let v = c.saturating_add(noise.discrete_laplace(scale)) as f64;
                        value.push(v);
                        low.push(v - hw);
                        high.push(v + hw);
                    }
                }
                Aggregate::Sum => {
                    let sums = sum_of("s")?;
                    let scale = m.sum_scale.ok_or_else(|| DataFusionError::Internal("sum without scale".into()))?;
                    let hw = scale.half_width(0.05) as f64;
                    for (s, _) in sums.iter().zip(&keep).filter(|(_, k)| **k) {
                        let v = (s.round() as i64).saturating_add(noise.discrete_laplace(scale)) as f64;
                        value.push(in_units(v, m.unit));
                        low.push(in_units(v - hw, m.unit));
                        high.push(in_units(v + hw, m.unit));
                    }
                }
                Aggregate::Mean => {
                    let sums = sum_of("s")?;
                    let counts = count_of("n")?;
                    let (sum_scale, count_scale) = m
                        .sum_scale
                        .zip(m.count_scale)
                        .ok_or_else(|| DataFusionError::Internal("mean without scales".into()))?;
                    // Each half at 97.5 %: together at least 95 %.
                    let (hs, hc) = (sum_scale.half_width(0.025) as f64, count_scale.half_width(0.025) as f64);
                    let (lo, hi) = m.bounds;
                    // Rounded to the unit: finer digits would only be noise.
                    let mean = |s: f64, c: f64| in_units((s / c.max(1.0)).round(), m.unit).clamp(lo, hi);
                    for ((s, c), _) in sums.iter().zip(&counts).zip(&keep).filter(|(_, k)| **k) {
                        let s = (s.round() as i64).saturating_add(noise.discrete_laplace(sum_scale)) as f64;
                        let c = c.saturating_add(noise.discrete_laplace(count_scale)) as f64;
                        value.push(mean(s, c));
                        let corners =
                            [mean(s - hs, c - hc), mean(s - hs, c + hc), mean(s + hs, c - hc), mean(s + hs, c + hc)];
                        low.push(corners.iter().copied().fold(f64::INFINITY, f64::min));
                        high.push(corners.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                    }
                }
                Aggregate::Min | Aggregate::Max => {
                    return Err(DataFusionError::Internal("min or max in a dp release".into()));
                }
            }
            columns.extend([value.finish(), low.finish(), high.finish()]);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl Stage for DpRelease {
    fn name(&self) -> &'static str {
        "DpReleaseExec"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.plan.report;
        match &r.selection {
            Some(s) => write!(
                f,
                "DpReleaseExec: ε = {}, δ = {:e}; groups whose noisy subject count (scale {:.1}) reaches {}; discrete \
                 Laplace noise on every cell; at most {} rows",
                r.epsilon, r.delta, s.scale, s.threshold, self.max_output_rows
            ),
            None => write!(f, "DpReleaseExec: ε = {}; discrete Laplace noise on every cell", r.epsilon),
        }
    }

    fn input_distribution(&self) -> Distribution {
        Distribution::SinglePartition
    }

    fn execute(&self, _partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let release = self.clone();
        let settings = &self.plan.settings;
        let mut noise = NoiseSource::keyed(&settings.noise_key, settings.job, "zone.dp.release");
        let stream = input.map(move |b| b.and_then(|b| release.release(&b, &mut noise)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zone_sandbox::output::{key, measure};

    fn settings(b: u64) -> DpSettings {
        DpSettings {
            epsilon: Epsilon::from_f64(1.0).expect("ε"),
            delta: 1e-6,
            block_subjects: b,
            population: 10_000,
            noise_key: [5; 32],
            job: 1,
            key_domain: Vec::new(),
        }
    }

    #[test]
    fn noise_grows_with_what_one_subject_can_change() {
        let declared = OutputDecl::from_schema(&Schema::new(vec![
            key("district", DataType::Utf8),
            measure("firms", DataType::Int64, Aggregate::Count, None),
            measure("staff", DataType::Int64, Aggregate::Sum, Some((0.0, 1_000.0))),
        ]))
        .expect("declared");
        let one = DpPlan::new(&declared, settings(1), 10_000, 10, 1, 1).expect("plan");
        let many = DpPlan::new(&declared, settings(64), 512, 10, 1, 1).expect("plan");
        // Three queries at ε/3: count Δ = 1, scale 3; with b = 64, Δ = 128.
        assert_eq!(one.report.measures[0].scale, 3.0);
        assert_eq!(many.report.measures[0].scale, 3.0 * 128.0);
        assert_eq!(one.report.measures[1].sensitivity, 1_000.0);
        let (t1, t64) = (
            one.report.selection.as_ref().expect("sel").threshold,
            many.report.selection.as_ref().expect("sel").threshold,
        );
        assert!(t1 >= 10 && t64 > 64 + t1, "{t1} {t64}");
        // No keys: nothing to select, no δ spent.
        let global =
            OutputDecl::from_schema(&Schema::new(vec![measure("firms", DataType::Int64, Aggregate::Count, None)]))
                .expect("declared");
        let g = DpPlan::new(&global, settings(1), 10_000, 10, 1, 1).expect("plan");
        assert!(g.selection.is_none());
        assert_eq!((g.report.delta, g.report.measures[0].scale), (0.0, 1.0));
    }

    #[test]
    fn min_and_max_are_refused() {
        let declared = OutputDecl::from_schema(&Schema::new(vec![
            key("district", DataType::Utf8),
            measure("top", DataType::Int64, Aggregate::Max, Some((0.0, 9.0))),
        ]))
        .expect("declared");
        let e = DpPlan::new(&declared, settings(1), 1, 10, 1, 1).expect_err("max");
        assert!(e.to_string().contains("does not release"), "{e}");
    }

    #[test]
    fn units_are_powers_of_ten_near_a_millionth_of_the_largest_partial() {
        assert_eq!(unit_for(1_000_000_000.0, true), 1_000.0);
        assert_eq!(unit_for(100.0, true), 1.0);
        assert!((unit_for(200_000.0, false) - 1.0).abs() < 1e-12);
        assert!((unit_for(1.0, false) - 1e-6).abs() < 1e-18);
    }
}
