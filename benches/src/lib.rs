//! # cleanroom-benches — measurements reported as ratios
//!
//! Every benchmark here runs its subject and a baseline in the same process, interleaved, and reports the
//! ratio of their medians: the machines we run on are shared and noisy, and a ratio survives that where an
//! absolute time does not. Run with `cargo bench -p cleanroom-benches`.
//!
//! Where to extend: add a `[[bench]]` (harness = false) that calls [`compare`].

pub mod cli;

use std::hint::black_box;
use std::time::{Duration, Instant};

use policies::formats::resident_id_check_char;

/// The committed policy of `dataset`, compiled against the schema of a generated `file`.
pub fn fixture_policy(dataset: &str, file: &std::path::Path) -> policies::CompiledPolicy {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).expect("open"),
    )
    .expect("parquet");
    policies::CompiledPolicy::compile(
        dataset,
        datasets_fixtures::policy_text(dataset).expect("policy"),
        reader.schema(),
    )
    .expect("policy compiles")
}

/// The median of `runs` timings of `f`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// One measured subject.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: &'static str,
    pub median: Duration,
}

/// Runs every subject `rounds` times, interleaved round by round (so drift in machine load hits all alike),
/// after one warm-up round, and returns their medians.
pub fn compare(rounds: usize, subjects: &mut [(&'static str, &mut dyn FnMut())]) -> Vec<Measured> {
    for (_, f) in subjects.iter_mut() {
        f();
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); subjects.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in subjects.iter_mut().enumerate() {
            let start = Instant::now();
            f();
            times[i].push(start.elapsed());
        }
    }
    subjects.iter().zip(times).map(|((name, _), t)| Measured { name, median: median(t) }).collect()
}

/// The median of `n` timings that `f` takes itself (for steps that time only part of their work).
pub fn median_of(mut f: impl FnMut() -> Duration, n: usize) -> Duration {
    median((0..n).map(|_| f()).collect())
}

/// `n` valid 18-character resident IDs, deterministic (a simple LCG: no RNG crate needed for bench data).
pub fn resident_ids(n: usize) -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    (0..n)
        .map(|_| {
            let region = 320_500 + next() % 100;
            let year = 1940 + next() % 80;
            let month = 1 + next() % 12;
            let day = 1 + next() % 28;
            let seq = next() % 1000;
            let body = format!("{region:06}{year:04}{month:02}{day:02}{seq:03}");
            let check = resident_id_check_char(body.as_bytes()).map_or('0', char::from);
            black_box(format!("{body}{check}"))
        })
        .collect()
}

/// Prints one result line: `name  median  ratio-to-baseline`.
pub fn report(results: &[Measured], baseline: &str, items: usize) {
    let base = results.iter().find(|m| m.name == baseline).map_or(Duration::from_nanos(1), |m| m.median);
    for m in results {
        let per_item = m.median.as_nanos() as f64 / items as f64;
        println!(
            "{:<28} {:>10.2} ms  {:>7.1} ns/item  {:>6.2}x {baseline}",
            m.name,
            m.median.as_secs_f64() * 1e3,
            per_item,
            m.median.as_secs_f64() / base.as_secs_f64()
        );
    }
}

/// The ratio of two results' medians.
pub fn ratio(results: &[Measured], a: &str, b: &str) -> f64 {
    let get = |n: &str| results.iter().find(|m| m.name == n).map_or(f64::NAN, |m| m.median.as_secs_f64());
    get(a) / get(b)
}
