//! The exact discrete Laplace sampler's rate at three scales, against the rate of the ChaCha20 stream it draws
//! from (64-bit words per second) measured in the same run: what one sample costs in words of randomness.

use std::hint::black_box;
use std::time::Instant;

use zone_noise::{NoiseSource, Scale};

fn rate(n: u64, mut f: impl FnMut() -> i64) -> f64 {
    let started = Instant::now();
    let mut sum = 0i64;
    for _ in 0..n {
        sum = sum.wrapping_add(f());
    }
    black_box(sum);
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let n: u64 = std::env::var("ZONE_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let mut words = NoiseSource::from_seed([2; 32]);
    let baseline = rate(n, || words.next_u64() as i64);
    println!("ChaCha20 stream: {:.1}M words/s (baseline)", baseline / 1e6);
    for (num, den) in [(3u128, 1u64), (96, 1), (9_600_000, 1), (10, 3)] {
        let scale = Scale::new(num, den).expect("scale");
        let mut noise = NoiseSource::from_seed([1; 32]);
        let samples = rate(n, || noise.discrete_laplace(scale));
        println!(
            "discrete Laplace, scale {:>9.2}: {:.1}M samples/s, {:.2}× the stream's words/s (target >= 10M samples/s)",
            num as f64 / den as f64,
            samples / 1e6,
            samples / baseline
        );
    }
}
