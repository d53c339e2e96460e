//! What a guest can tell its operator through time: the hostile guest `hostile-channels` (`channel=spin`) spins in
//! proportion to a value it reads, for `BENCH_LEVELS` secret levels (4 by default: 2 bits a job if read exactly).
//! The operator times `cleanroom job run` — all it can do — and decodes each run to the level with the nearest mean
//! duration. Measured in the same run, interleaved: the zone with `[jobs] timing_quantum_ms = 1` (a run's end as
//! it happens: the channel as it was) and with the quantum `BENCH_QUANTUM_MS` (2,000 by default; 10,000 in a zone
//! that does not set it). Reported: decoding accuracy (leave-one-out) and the mutual information between level and
//! decoded level, in bits per job (less the estimator's small-sample bias), and their ratio. Needs the binary: `cargo build --release -p cleanroom && cargo bench -p
//! cleanroom-benches --bench timing` (or `CLEANROOM_BIN=target/debug/cleanroom`).

use std::time::{Duration, Instant};

use cleanroom_benches::cli::{Zone, env_usize};

/// Mutual information (bits) between the level and its decoding, from a confusion matrix of counts.
fn mutual_information(confusion: &[Vec<usize>]) -> f64 {
    let total: usize = confusion.iter().flatten().sum();
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    let rows: Vec<f64> = confusion.iter().map(|r| r.iter().sum::<usize>() as f64 / n).collect();
    let cols: Vec<f64> =
        (0..confusion.len()).map(|j| confusion.iter().map(|r| r[j]).sum::<usize>() as f64 / n).collect();
    let mut bits = 0.0;
    for (i, row) in confusion.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            if c > 0 {
                let p = c as f64 / n;
                bits += p * (p / (rows[i] * cols[j])).log2();
            }
        }
    }
    bits
}

/// Decodes each timing to the level whose mean is nearest, the means learnt from the other runs (leave one out,
/// so that noise is not fitted); (accuracy, bits per job).
fn decode(times: &[Vec<Duration>]) -> (f64, f64) {
    let sums: Vec<f64> = times.iter().map(|t| t.iter().map(Duration::as_secs_f64).sum::<f64>()).collect();
    let levels = times.len();
    let mut confusion = vec![vec![0usize; levels]; levels];
    let mut right = 0;
    let mut all = 0;
    for (level, runs) in times.iter().enumerate() {
        for t in runs {
            let x = t.as_secs_f64();
            let mean = |l: usize| {
                if l == level {
                    (sums[l] - x) / (times[l].len().max(2) - 1) as f64
                } else {
                    sums[l] / times[l].len().max(1) as f64
                }
            };
            let guess = (0..levels).min_by(|&a, &b| (mean(a) - x).abs().total_cmp(&(mean(b) - x).abs())).unwrap_or(0);
            confusion[level][guess] += 1;
            right += usize::from(guess == level);
            all += 1;
        }
    }
    // The plug-in estimate is biased upwards on few runs (Miller–Madow): (levels − 1)² / (2 N ln 2) bits.
    let bias = ((levels - 1) * (levels - 1)) as f64 / (2.0 * all.max(1) as f64 * std::f64::consts::LN_2);
    (right as f64 / all.max(1) as f64, (mutual_information(&confusion) - bias).max(0.0))
}

fn main() {
    let levels = env_usize("BENCH_LEVELS", 4);
    let rounds = env_usize("BENCH_ROUNDS", 6);
    let quantum = env_usize("BENCH_QUANTUM_MS", 2_000);
    let step = env_usize("BENCH_SPIN", 20_000_000);
    let z = Zone::registry(false);
    let zone_toml = z.root.join("zone.toml");
    let original = std::fs::read_to_string(&zone_toml).expect("zone.toml");
    let set_quantum = |ms: usize| {
        std::fs::write(&zone_toml, format!("{original}\n[jobs]\ntiming_quantum_ms = {ms}\n")).expect("zone.toml")
    };
    let module = example_guests::HOSTILE_CHANNELS.path;
    let apps: Vec<String> =
        (0..levels).map(|v| z.submit_approved(module, &["channel=spin", &format!("spin={}", v * step)])).collect();
    println!(
        "timing channel: {levels} secret levels (spin {step} × level × the first row's employees per batch), {rounds} \
         runs each, the operator timing `job run`"
    );
    let settings = [("exact end (quantum 1 ms)", 1), ("quantized end", quantum)];
    let mut times = vec![vec![Vec::with_capacity(rounds); levels]; settings.len()];
    // Warm-up, then rounds interleaved over settings and levels so that drift in load hits all alike.
    set_quantum(1);
    z.local("acme", &["job", "run", &apps[0]]);
    for _ in 0..rounds {
        for (s, (_, ms)) in settings.iter().enumerate() {
            set_quantum(*ms);
            for (level, app) in apps.iter().enumerate() {
                let started = Instant::now();
                let out = z.try_local("acme", &["job", "run", app]);
                times[s][level].push(started.elapsed());
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    let mut bits = Vec::new();
    for (s, (name, ms)) in settings.iter().enumerate() {
        let (accuracy, mi) = decode(&times[s]);
        let means: Vec<String> = times[s]
            .iter()
            .map(|t| format!("{:.0} ms", t.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / t.len() as f64))
            .collect();
        println!(
            "  {name:<26} ({ms} ms): mean per level [{}]; decoded {:.0} % right; {mi:.2} bits per job (of {:.2})",
            means.join(", "),
            accuracy * 100.0,
            (levels as f64).log2()
        );
        bits.push(mi);
    }
    println!(
        "  quantized / exact: {:.3} of the bits per job (a quantum of {quantum} ms leaves log2(job_timeout / quantum + \
         1) at most)",
        bits[1] / bits[0].max(f64::EPSILON)
    );
}
