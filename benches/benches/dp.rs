//! `dp` mode against `aggregate` mode, in one run: the same real guest over the same generated data, once with the
//! threshold and once with subject-isolated blocks (a fresh instance per block of at most b subjects) and noise,
//! for b = 1, 16, 64, 256. On `enterprise_registry` (one row per subject, `registry-profile`, 1M enterprises by
//! default: `ZONE_BENCH_ROWS`) and `clinic_visits` (many visits per patient, `health-costs` by district: a tenth of
//! the rows as patients). Reported: the ratio dp / aggregate, the cost per isolated block ((dp − aggregate) /
//! blocks, with instances from a pool of slots as the zone runs them, and mapped one by one), and noise samples per second of the exact discrete Laplace sampler at three scales.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cleanroom_benches::fixture_policy as policy;
use datasets_fixtures::FixtureSpec;
use policies::{CompiledPolicy, Epsilon, TokenSecret};
use zone_jobs::{BlockCut, DatasetSource, DpSettings, JobMap, JobPlan, JobSource, JobSpec, ReleaseLimits};
use zone_noise::{NoiseSource, Scale};
use zone_sandbox::{GuestModule, Sandbox, SandboxLimits};

/// A sandbox with the bench's guest loaded.
struct Guest {
    sandbox: Arc<Sandbox>,
    module: Arc<GuestModule>,
}

impl Guest {
    fn new(sandbox: &Arc<Sandbox>, bytes: &[u8]) -> Guest {
        let checked = sandbox.check(bytes).expect("accepted");
        Guest { sandbox: sandbox.clone(), module: Arc::new(sandbox.load(&checked.serialized).expect("load")) }
    }
}

struct Bench {
    dataset: &'static str,
    file: PathBuf,
    rows: u64,
    policy: CompiledPolicy,
    /// Instances mapped one by one, and from a pool of slots (as the zone runs `dp`).
    on_demand: Guest,
    pooled: Guest,
    params: Vec<(String, String)>,
    groups_per_subject: u64,
}

impl Bench {
    /// Seconds of one run (planning and running), and the blocks it ran.
    fn run(&self, b: Option<u64>, pooled: bool) -> (f64, u64) {
        let guest = if pooled { &self.pooled } else { &self.on_demand };
        let spec = JobSpec {
            source: JobSource::Datasets {
                datasets: vec![DatasetSource {
                    name: self.dataset.into(),
                    files: vec![self.file.clone()],
                    policy: self.policy.clone(),
                }],
                secret: TokenSecret::from_bytes([3; 32]),
            },
            map: JobMap::Guest {
                sandbox: guest.sandbox.clone(),
                module: guest.module.clone(),
                params: self.params.clone(),
            },
            limits: ReleaseLimits {
                min_group_size: 10,
                max_groups_per_subject: self.groups_per_subject,
                max_rows_per_subject_in_group: 1,
                max_output_rows: 1_000_000,
                max_artifact_bytes: None,
                dp: b.map(|b| DpSettings {
                    epsilon: Epsilon::from_f64(1.0).expect("ε"),
                    delta: 1e-6,
                    block_subjects: b,
                    population: self.rows,
                    noise_key: [9; 32],
                    job: b,
                    key_domain: Vec::new(),
                }),
            },
            partitions: 2,
            batch_size: 65_536,
        };
        let started = Instant::now();
        let outcome = JobPlan::build(&spec).expect("plan").execute().result.expect("the job runs");
        (started.elapsed().as_secs_f64(), outcome.stats.blocks)
    }
}

fn generate(dir: &Path, spec: &FixtureSpec, clinic: bool) -> PathBuf {
    std::fs::create_dir_all(dir).expect("bench data folder");
    let mut progress = |_: &str, _: usize| {};
    if clinic {
        datasets_fixtures::write_clinic(dir, spec, &mut progress).expect("generate");
        dir.join("clinic_visits.parquet")
    } else {
        datasets_fixtures::write_enterprises(dir, spec, &mut progress).expect("generate");
        dir.join("enterprise_registry.parquet")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn noise_rate() {
    for (num, den) in [(3u128, 1u64), (96, 1), (9_600_000, 1)] {
        let scale = Scale::new(num, den).expect("scale");
        let mut noise = NoiseSource::from_seed([1; 32]);
        let n = 10_000_000;
        let started = Instant::now();
        let mut sum = 0i64;
        for _ in 0..n {
            sum = sum.wrapping_add(noise.discrete_laplace(scale));
        }
        let s = started.elapsed().as_secs_f64();
        println!(
            "noise: discrete Laplace, scale {:>9}: {:.1}M samples/s (checksum {sum})",
            num / u128::from(den),
            n as f64 / s / 1e6
        );
    }
}

fn main() {
    let rounds: usize = std::env::var("ZONE_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    let rows: usize = std::env::var("ZONE_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    let blocks: Vec<u64> = std::env::var("ZONE_BENCH_BLOCKS")
        .ok()
        .map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16, 64, 256]);
    noise_rate();
    let dir = tempfile::tempdir().expect("dir");
    let on_demand = Arc::new(Sandbox::new(SandboxLimits::default()).expect("sandbox"));
    // As the zone runs `dp`: one pool slot per partition.
    let pooled =
        Arc::new(Sandbox::new(SandboxLimits { pooled_instances: 2, ..SandboxLimits::default() }).expect("pool"));
    let registry_guest = example_guests::REGISTRY_PROFILE.bytes().expect("guest");
    let clinic_guest = example_guests::HEALTH_COSTS.bytes().expect("guest");
    let registry = generate(
        &dir.path().join("registry"),
        &FixtureSpec { enterprises: rows, visits: 0, patients: None, seed: 7 },
        false,
    );
    let clinic = generate(
        &dir.path().join("clinic"),
        &FixtureSpec { enterprises: 0, visits: rows, patients: Some(rows / 10), seed: 7 },
        true,
    );
    let benches = [
        Bench {
            dataset: "enterprise_registry",
            policy: policy("enterprise_registry", &registry),
            file: registry,
            rows: rows as u64,
            on_demand: Guest::new(&on_demand, &registry_guest),
            pooled: Guest::new(&pooled, &registry_guest),
            params: Vec::new(),
            groups_per_subject: 1,
        },
        Bench {
            dataset: "clinic_visits",
            policy: policy("clinic_visits", &clinic),
            file: clinic,
            rows: rows as u64,
            on_demand: Guest::new(&on_demand, &clinic_guest),
            pooled: Guest::new(&pooled, &clinic_guest),
            params: vec![("by".into(), "district".into())],
            groups_per_subject: 3,
        },
    ];
    for bench in &benches {
        for &b in &blocks {
            let mut ratios = Vec::new();
            let mut per_block = Vec::new();
            let mut per_block_on_demand = Vec::new();
            let mut ran = 0;
            for _ in 0..rounds {
                let (aggregate, _) = bench.run(None, false);
                let (dp, blocks_run) = bench.run(Some(b), true);
                let (dp_on_demand, _) = bench.run(Some(b), false);
                ran = blocks_run;
                ratios.push(dp / aggregate);
                per_block.push((dp - aggregate).max(0.0) / blocks_run.max(1) as f64 * 1e6);
                per_block_on_demand.push((dp_on_demand - aggregate).max(0.0) / blocks_run.max(1) as f64 * 1e6);
            }
            let cut = BlockCut::new(b, bench.rows);
            println!(
                "{:<20} {rows} rows, b = {b:>3}: dp / aggregate = {:.2}×, {ran} blocks run (cut {}), {:.1} µs per \
                 isolated block (pooled; {:.1} µs mapping each instance's memory)",
                bench.dataset,
                median(ratios),
                cut.blocks(),
                median(per_block),
                median(per_block_on_demand)
            );
        }
    }
}
