//! The attacks of a hostile guest (`examples/hostile-dp`) on `enterprise_registry`, run as plans: in `aggregate`
//! mode they carry a firm's value out (the reason `dp` exists); in `dp` mode each result is within the noise and
//! does not depend on the target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use policies::{CompiledPolicy, Epsilon, TokenSecret};
use zone_jobs::{DatasetSource, DpSettings, JobMap, JobPlan, JobRun, JobSource, JobSpec, KeyDomain, ReleaseLimits};
use zone_sandbox::{GuestModule, Sandbox, SandboxLimits};

struct Guest {
    sandbox: Arc<Sandbox>,
    module: Arc<GuestModule>,
}

fn guest() -> Guest {
    let sandbox = Sandbox::new(SandboxLimits::default()).expect("sandbox");
    let bytes = example_guests::HOSTILE_DP.bytes().expect("hostile-dp is built");
    let checked = sandbox.check(&bytes).expect("check");
    let module = sandbox.load(&checked.serialized).expect("load");
    Guest { sandbox: Arc::new(sandbox), module: Arc::new(module) }
}

fn fixture_rows() -> RecordBatch {
    let file = datasets_fixtures::committed_parquet("enterprise_registry");
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("open"))
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).expect("concat")
}

fn write(dir: &Path, name: &str, batch: &RecordBatch) -> PathBuf {
    let path = dir.join(name);
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).expect("create"), batch.schema(), None).expect("w");
    w.write(batch).expect("write");
    w.close().expect("close");
    path
}

/// The first firm (in file order) with employees in [100, 1000] and a registered capital no other firm has.
fn target(rows: &RecordBatch) -> (usize, i64, i64) {
    let capital = rows.column_by_name("reg_capital").expect("capital").as_primitive::<Int64Type>();
    let employees = rows.column_by_name("employees").expect("employees").as_primitive::<Int32Type>();
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for i in 0..rows.num_rows() {
        *seen.entry(capital.value(i)).or_default() += 1;
    }
    (0..rows.num_rows())
        .find(|&i| employees.is_valid(i) && (100..=1000).contains(&employees.value(i)) && seen[&capital.value(i)] == 1)
        .map(|i| (i, capital.value(i), i64::from(employees.value(i))))
        .expect("a target")
}

struct Run<'a> {
    guest: &'a Guest,
    file: &'a Path,
    attack: &'a str,
    target: i64,
    dp: Option<(u64, u64)>,
    batch_rows: usize,
}

impl Run<'_> {
    fn go(&self) -> JobRun {
        self.go_in(Vec::new())
    }

    /// A run whose keys have public domains (dp only).
    fn go_in(&self, key_domain: Vec<KeyDomain>) -> JobRun {
        self.plan_in(key_domain).expect("plan").execute()
    }

    fn plan_in(&self, key_domain: Vec<KeyDomain>) -> Result<JobPlan, zone_jobs::JobError> {
        let policy = CompiledPolicy::compile(
            "enterprise_registry",
            datasets_fixtures::policy_text("enterprise_registry").expect("policy"),
            &fixture_rows().schema(),
        )
        .expect("policy");
        let rows = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(self.file).expect("open"))
            .expect("parquet")
            .metadata()
            .file_metadata()
            .num_rows() as u64;
        let spec = JobSpec {
            source: JobSource::Datasets {
                datasets: vec![DatasetSource {
                    name: "enterprise_registry".into(),
                    files: vec![self.file.to_path_buf()],
                    policy,
                }],
                secret: TokenSecret::from_bytes([8; 32]),
            },
            map: JobMap::Guest {
                sandbox: self.guest.sandbox.clone(),
                module: self.guest.module.clone(),
                params: vec![("attack".into(), self.attack.into()), ("target".into(), self.target.to_string())],
            },
            limits: ReleaseLimits {
                min_group_size: 10,
                max_groups_per_subject: 1,
                max_rows_per_subject_in_group: 1,
                max_output_rows: 100_000,
                max_artifact_bytes: None,
                dp: self.dp.map(|(b, job)| DpSettings {
                    epsilon: Epsilon::from_f64(1.0).expect("ε"),
                    delta: 1e-6,
                    block_subjects: b,
                    population: rows,
                    noise_key: [42; 32],
                    job,
                    key_domain: key_domain.clone(),
                }),
            },
            partitions: 2,
            batch_size: self.batch_rows,
        };
        JobPlan::build(&spec)
    }

    /// Released groups: key → (firms, employees).
    fn groups(&self) -> BTreeMap<String, (i64, i64)> {
        self.groups_in(Vec::new())
    }

    fn groups_in(&self, key_domain: Vec<KeyDomain>) -> BTreeMap<String, (i64, i64)> {
        let outcome = self.go_in(key_domain).result.expect("the run releases");
        let mut out = BTreeMap::new();
        for b in &outcome.batches {
            let key = b.column(0).as_string::<i32>();
            let firms = b.column(1).as_primitive::<Int64Type>();
            let col = if outcome.dp.is_some() { 4 } else { 2 };
            let employees = b.column(col).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.insert(key.value(i).to_owned(), (firms.value(i), employees.value(i)));
            }
        }
        out
    }
}

#[test]
fn the_one_subject_sum_gives_the_target_exactly_in_aggregate_mode_and_only_noise_in_dp() {
    let guest = guest();
    let dir = tempfile::tempdir().expect("dir");
    let all = fixture_rows();
    let (index, capital, employees) = target(&all);
    // 200 firms with the target, the same 199 without it.
    let start = index.saturating_sub(100);
    let with = all.slice(start, 200);
    let without = {
        let keep: arrow_array::BooleanArray = (0..200).map(|i| Some(start + i != index)).collect();
        arrow_select::filter::filter_record_batch(&with, &keep).expect("filter")
    };
    let with = write(dir.path(), "with.parquet", &with);
    let without = write(dir.path(), "without.parquet", &without);
    let run = |file: &Path, dp| {
        Run { guest: &guest, file, attack: "target", target: capital, dp, batch_rows: 4_096 }.groups()["all"].1
    };
    // Aggregate mode: the group has 200 firms, passes k, and its sum is the target's employees.
    assert_eq!(run(&with, None), employees);
    // Differencing in dp, 200 seeds: each pair of jobs (their own job ids, so their own noise) differs by the
    // target's value plus the difference of two noises of scale λ (b = 1: Δ = 100,000, three queries, ε = 1), whose
    // variance is about 2 · 2λ².
    let lambda: f64 = 3.0 * 100_000.0;
    let sd = 2.0 * lambda;
    let mut near = 0;
    let mut diffs = Vec::new();
    for seed in 0..200u64 {
        let d = run(&with, Some((1, 2 * seed + 1))) - run(&without, Some((1, 2 * seed + 2)));
        diffs.push(d as f64);
        // Recovered to within 1,000 employees (1 % of the bound): with noise of this scale, about 1 in 2,000 pairs.
        if (d - employees).abs() <= 1_000 {
            near += 1;
        }
    }
    // P(≥ 5 of 200 | p ≤ 1/1,000) < 1e-7.
    assert!(near < 5, "{near} of 200 differences recovered the target's {employees} employees");
    // The differences are centred on the target's value at the noise's spread, not on it exactly: their mean is
    // within 6 standard errors (false failure < 1e-8) and their spread is the noise's.
    let mean = diffs.iter().sum::<f64>() / 200.0;
    assert!((mean - employees as f64).abs() < 6.0 * sd / 200f64.sqrt(), "mean {mean}, sd {sd}");
    let spread = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 199.0).sqrt();
    assert!(spread > sd / 3.0 && spread < sd * 3.0, "spread {spread}, expected about {sd}");
}

#[test]
fn a_key_a_block_made_is_never_released() {
    let guest = guest();
    let file = datasets_fixtures::committed_parquet("enterprise_registry");
    let all = fixture_rows();
    let staff = all.column_by_name("employees").expect("employees").as_primitive::<Int32Type>();
    // The batch-wide key copy: in aggregate mode a batch's first firm's employees and representative's token are a
    // released key, backed by thousands of firms.
    let aggregate = Run { guest: &guest, file: &file, attack: "copy", target: 0, dp: None, batch_rows: 512 }.groups();
    assert!(!aggregate.is_empty());
    for key in aggregate.keys() {
        let employees: i64 = key.split('|').next().and_then(|e| e.parse().ok()).expect("a number");
        // (A firm with no employees on record is written 0.)
        assert!(employees == 0 || staff.iter().flatten().any(|e| i64::from(e) == employees), "{key}");
    }
    // dp: each block's key has at most b firms; the threshold is above b, so none is released. The same for count
    // encoding in membership and for singletons.
    for attack in ["copy", "members", "singletons"] {
        for b in [1, 16] {
            let released = Run { guest: &guest, file: &file, attack, target: 0, dp: Some((b, 7)), batch_rows: 512 };
            assert_eq!(released.groups(), BTreeMap::new(), "{attack} with b = {b}");
        }
    }
    // An honest job releases its districts in dp, within the noise of the true counts.
    let honest = Run { guest: &guest, file: &file, attack: "honest", target: 0, dp: Some((16, 9)), batch_rows: 512 };
    let exact = Run { guest: &guest, file: &file, attack: "honest", target: 0, dp: None, batch_rows: 512 }.groups();
    let noisy = honest.groups();
    assert!(!noisy.is_empty());
    for (district, (firms, _)) in &noisy {
        let (true_firms, _) = exact[district];
        // Count: Δ = 32, three queries at ε = 1, λ = 96; 20 λ is beyond any draw of a correct sampler here.
        assert!((firms - true_firms).abs() < 20 * 96, "{district}: {firms} vs {true_firms}");
    }
}

#[test]
fn a_trap_in_a_block_leaves_the_block_out_and_the_job_runs_on() {
    let guest = guest();
    let file = datasets_fixtures::committed_parquet("enterprise_registry");
    let (_, capital, _) = target(&fixture_rows());
    let run = |target, dp| Run { guest: &guest, file: &file, attack: "trap", target, dp, batch_rows: 512 }.go();
    // Aggregate mode: the job fails exactly when the target is in the data.
    assert!(run(capital, None).result.is_err());
    assert!(run(-1, None).result.is_ok());
    // dp: it releases either way, and the target's block is left out.
    let with = run(capital, Some((16, 3))).result.expect("released");
    let without = run(-1, Some((16, 3))).result.expect("released");
    assert!(with.stats.failed_blocks >= 1);
    // Every block whole: no more blocks ran than the cut has (20,000 firms, b = 16: 4,096).
    assert!(with.stats.blocks <= 4_096 && without.stats.blocks <= 4_096, "{} blocks", with.stats.blocks);
    assert_eq!(without.stats.failed_blocks, 0);
    assert_eq!(with.schema, without.schema);
}

#[test]
fn nothing_is_carried_from_one_block_to_the_next() {
    let guest = guest();
    let file = datasets_fixtures::committed_parquet("enterprise_registry");
    let canary = |dp| Run { guest: &guest, file: &file, attack: "canary", target: 0, dp, batch_rows: 256 }.groups();
    // Aggregate mode: one instance per partition maps batch after batch, and says so.
    assert!(canary(None).contains_key("reused"));
    // dp: every block is a fresh instance; `reused` never appears (and `fresh`, backed by every firm, does).
    let blocks = canary(Some((64, 5)));
    assert!(!blocks.contains_key("reused"), "{blocks:?}");
    assert!(blocks.contains_key("fresh"), "{blocks:?}");
}

#[test]
fn a_public_key_domain_releases_every_declared_group_and_nothing_else() {
    let guest = guest();
    let file = datasets_fixtures::committed_parquet("enterprise_registry");
    let exact = Run { guest: &guest, file: &file, attack: "honest", target: 0, dp: None, batch_rows: 512 }.groups();
    let mut districts: Vec<String> = exact.keys().cloned().collect();
    let left_out = districts.pop().expect("districts");
    let mut values = districts.clone();
    values.push("nowhere".into());
    let domain = vec![KeyDomain { key: "group".into(), values: values.clone() }];
    let honest = Run { guest: &guest, file: &file, attack: "honest", target: 0, dp: Some((16, 11)), batch_rows: 512 };
    let noisy = honest.groups_in(domain.clone());
    // Exactly the declared groups, the empty one too (its count is noise around 0); the district left out of the
    // domain is not released, whatever the data holds.
    assert_eq!(noisy.keys().cloned().collect::<Vec<_>>(), {
        values.sort();
        values
    });
    assert!(!noisy.contains_key(&left_out));
    // Count: Δ = 32, two queries at ε = 1 (no selection), λ = 64.
    assert!(noisy["nowhere"].0.abs() < 20 * 64, "{:?}", noisy["nowhere"]);
    for d in &districts {
        assert!((noisy[d].0 - exact[d].0).abs() < 20 * 64, "{d}: {:?} vs {:?}", noisy[d], exact[d]);
    }
    // No selection: the plan spends no δ.
    let run = honest.go_in(domain.clone()).result.expect("released");
    let report = run.dp.expect("a dp report");
    assert_eq!(report.delta, 0.0);
    assert!(report.selection.is_none());
    // The batch-wide key copy under a domain: the copied keys are outside it, so only the declared groups come out.
    let copied = Run { guest: &guest, file: &file, attack: "copy", target: 0, dp: Some((1, 12)), batch_rows: 512 }
        .groups_in(domain);
    assert_eq!(copied.len(), districts.len() + 1);
    // A domain that misses a key, or lists a value twice, is refused when the plan is built.
    let twice = vec![KeyDomain { key: "group".into(), values: vec!["a".into(), "a".into()] }];
    let other = vec![KeyDomain { key: "district".into(), values: vec!["a".into()] }];
    for bad in [twice, other] {
        let run = Run { guest: &guest, file: &file, attack: "honest", target: 0, dp: Some((1, 13)), batch_rows: 512 };
        let refused = run.plan_in(bad.clone()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("key domain"), "{bad:?}: {refused:?}");
    }
}
