//! The whole job on the generated `enterprise_registry` (10M enterprises, `ZONE_BENCH_ROWS`): the real
//! `registry-profile` guest through the plan of `zone-jobs` (scan → desensitize: HMAC-tokenize the legal
//! representative's ID, mask the phone, generalize the founding date to its year → WasmMap → partials per subject →
//! contribution bound → aggregate by district × industry × founding year → threshold) against, in the same run:
//! (a) **native**: the same plan — the same tokenization and masking UDFs — with the guest's computation written as
//!     DataFusion expressions, everything else identical: what the sandbox costs;
//! (b) **bare**: `GROUP BY district, industry, founded / 365` with `COUNT(*)` and `SUM(employees)` over the raw
//!     file — no desensitization, no subjects, no bound, no threshold: the whole price of privacy.
//! Each run is a child process of this one, so each reports its own peak RSS (VmHWM); rounds are interleaved.
//! Memory: 1M vs 10M enterprises (bytes of RSS per distinct subject), and `clinic_visits` with 10× the visits over
//! the same patients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::DataType;
use cleanroom_benches::fixture_policy as policy;
use datafusion::logical_expr::{cast, ident, lit, when};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use datasets_fixtures::FixtureSpec;
use policies::TokenSecret;
use zone_jobs::{DatasetSource, JobMap, JobPlan, JobSource, JobSpec, ReleaseLimits};
use zone_sandbox::{Sandbox, SandboxLimits};

const CHILD: &str = "ZONE_BENCH_JOB_CHILD";

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// registry-profile's map as expressions over the guest view, clamped to its declared bounds.
fn native_profile(declared: &zone_sandbox::OutputDecl) -> JobMap {
    let present = |name: &str| when(ident(name).is_not_null(), lit(1i64)).otherwise(lit(0i64)).expect("present");
    let staff = cast(ident("employees"), DataType::Float64);
    let employees = when(staff.clone().lt(lit(0.0)), lit(0.0))
        .when(staff.clone().gt(lit(100_000.0)), lit(100_000.0))
        .otherwise(staff)
        .expect("clamp");
    let columns = vec![
        ident("district"),
        ident("industry"),
        ident("founded"),
        cast(lit(1i64), DataType::Int64),
        present("phone"),
        present("legal_rep_id"),
        employees,
    ];
    JobMap::Native { declared: declared.clone(), columns }
}

/// One measured run, in this (child) process: prints `seconds rss ...`.
fn child(kind: &str, file: &Path, dataset: &str) {
    if kind == "bare" {
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio");
        let rows = runtime.block_on(async {
            let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
            let df = ctx.read_parquet(file.display().to_string(), ParquetReadOptions::default()).await.expect("read");
            let df = df
                .aggregate(
                    // About the founding year, without date functions: days since 1970 / 365.
                    vec![
                        ident("district"),
                        ident("industry"),
                        (cast(ident("founded"), DataType::Int32) / lit(365)).alias("year"),
                    ],
                    vec![
                        datafusion::functions_aggregate::count::count_all(),
                        datafusion::functions_aggregate::expr_fn::sum(ident("employees")),
                    ],
                )
                .expect("aggregate");
            df.collect().await.expect("collect").iter().map(|b| b.num_rows()).sum::<usize>()
        });
        println!("{} {} {rows}", started.elapsed().as_secs_f64(), peak_rss_bytes());
        return;
    }
    let policy = policy(dataset, file);
    let sandbox = Arc::new(Sandbox::new(SandboxLimits::default()).expect("sandbox"));
    let (wasm, params): (Vec<u8>, Vec<(String, String)>) = if dataset == "clinic_visits" {
        (example_guests::HEALTH_COSTS.bytes().expect("guest"), Vec::new())
    } else {
        (example_guests::REGISTRY_PROFILE.bytes().expect("guest"), Vec::new())
    };
    let checked = sandbox.check(&wasm).expect("accepted");
    let module = Arc::new(sandbox.load(&checked.serialized).expect("load"));
    let guest = JobMap::Guest { sandbox: sandbox.clone(), module, params };
    let spec = |map: JobMap| JobSpec {
        source: JobSource::Datasets {
            datasets: vec![DatasetSource {
                name: dataset.into(),
                files: vec![file.to_owned()],
                policy: policy.clone(),
            }],
            secret: TokenSecret::from_bytes([3; 32]),
        },
        map,
        limits: ReleaseLimits {
            min_group_size: 10,
            max_groups_per_subject: 1,
            max_rows_per_subject_in_group: 1,
            max_output_rows: 1_000_000,
            max_artifact_bytes: None,
            dp: None,
        },
        partitions: 2,
        batch_size: 65_536,
    };
    let map = if kind == "native" {
        let declared = JobPlan::build(&spec(guest)).expect("plan").declared.clone();
        assert_eq!(dataset, "enterprise_registry", "the native baseline is written for the registry");
        native_profile(&declared)
    } else {
        guest
    };
    // Timed: planning (a probe instance of the guest) and the run; not the guest's compilation, which happens once
    // at submission.
    let started = Instant::now();
    let plan = JobPlan::build(&spec(map)).expect("plan");
    let run = plan.execute();
    let outcome = run.result.expect("the job runs");
    println!(
        "{} {} {} {} {}",
        started.elapsed().as_secs_f64(),
        peak_rss_bytes(),
        outcome.stats.rows_released,
        outcome.stats.rows_read,
        outcome.stats.groups_suppressed
    );
}

struct Sample {
    seconds: f64,
    rss: u64,
}

fn spawn(kind: &str, file: &Path, dataset: &str) -> Sample {
    let out = Command::new(std::env::current_exe().expect("exe"))
        .env(CHILD, format!("{kind}|{}|{dataset}", file.display()))
        .output()
        .expect("child");
    assert!(out.status.success(), "{kind}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let seconds = parts.next().and_then(|s| s.parse().ok()).expect("seconds");
    let rss = parts.next().and_then(|s| s.parse().ok()).expect("rss");
    Sample { seconds, rss }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn generate(dir: &Path, spec: &FixtureSpec, clinic: bool) -> PathBuf {
    let started = Instant::now();
    std::fs::create_dir_all(dir).expect("bench data folder");
    let mut progress = |_: &str, _: usize| {};
    if clinic {
        datasets_fixtures::write_clinic(dir, spec, &mut progress).expect("generate");
    } else {
        datasets_fixtures::write_enterprises(dir, spec, &mut progress).expect("generate");
    }
    let name = if clinic { "clinic_visits" } else { "enterprise_registry" };
    eprintln!("generated {name} in {} ({:.1?})", dir.display(), started.elapsed());
    dir.join(format!("{name}.parquet"))
}

fn main() {
    if let Ok(args) = std::env::var(CHILD) {
        let mut parts = args.splitn(3, '|');
        let (kind, file, dataset) = (parts.next(), parts.next(), parts.next());
        if let (Some(kind), Some(file), Some(dataset)) = (kind, file, dataset) {
            child(kind, Path::new(file), dataset);
        }
        return;
    }
    let rows: usize = std::env::var("ZONE_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(10_000_000);
    let rounds: usize = std::env::var("ZONE_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let tmp = tempfile::tempdir().expect("tempdir");

    // Time: the job against its two baselines, interleaved.
    let big = tmp.path().join("big");
    let file = generate(&big, &FixtureSpec { enterprises: rows, visits: 0, patients: None, seed: 7 }, false);
    let kinds = ["job", "native", "bare"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut rss: Vec<u64> = vec![0; kinds.len()];
    for _ in 0..rounds {
        for (i, kind) in kinds.iter().enumerate() {
            let s = spawn(kind, &file, "enterprise_registry");
            times[i].push(s.seconds);
            rss[i] = rss[i].max(s.rss);
        }
    }
    let t: Vec<f64> = times.into_iter().map(median).collect();
    println!("enterprise_registry, {rows} enterprises, {rounds} rounds (median seconds, peak RSS):");
    for (i, kind) in kinds.iter().enumerate() {
        println!("  {kind:<7} {:>8.2} s  {:>8.1} MiB", t[i], rss[i] as f64 / 1048576.0);
    }
    println!("  job / native (the runtime's own cost, target <= 1.5x): {:.2}x", t[0] / t[1]);
    println!("  job / bare (the whole price of privacy): {:.2}x", t[0] / t[2]);

    // Memory per subject: 1/10 of the enterprises against all of them.
    let small = tmp.path().join("small");
    let small_file =
        generate(&small, &FixtureSpec { enterprises: rows / 10, visits: 0, patients: None, seed: 7 }, false);
    let small_rss = spawn("job", &small_file, "enterprise_registry").rss;
    let per_subject = (rss[0].saturating_sub(small_rss)) as f64 / (rows - rows / 10) as f64;
    println!(
        "  peak RSS: {:.1} MiB at {} enterprises, {:.1} MiB at {rows}: {per_subject:.0} bytes per added subject (target <= 128)",
        small_rss as f64 / 1048576.0,
        rows / 10,
        rss[0] as f64 / 1048576.0
    );

    // Many rows per subject: 10x the visits over the same patients.
    let patients = (rows / 60).max(1_000);
    let mut clinic_rss = Vec::new();
    for visits in [rows / 10, rows] {
        let dir = tmp.path().join(format!("clinic-{visits}"));
        let file = generate(&dir, &FixtureSpec { enterprises: 0, visits, patients: Some(patients), seed: 7 }, true);
        clinic_rss.push(spawn("job", &file, "clinic_visits").rss);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "  clinic_visits over {patients} patients: {:.1} MiB at {} visits, {:.1} MiB at {} visits: {:.2}x the memory for 10x the rows (target <= 1.2x)",
        clinic_rss[0] as f64 / 1048576.0,
        rows / 10,
        clinic_rss[1] as f64 / 1048576.0,
        rows,
        clinic_rss[1] as f64 / clinic_rss[0] as f64
    );
}
