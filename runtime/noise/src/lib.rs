//! # zone-noise — exact integer noise for differentially private releases
//!
//! Textbook floating-point Laplace noise leaks through the gaps of the doubles it can produce (Mironov, "On
//! significance of the least significant bits for differential privacy", CCS 2012). This crate never samples a
//! float: it draws the discrete Laplace distribution on the integers, `P(X = x) ∝ exp(-|x| / λ)` for a rational
//! scale `λ = num / den`, with the exact algorithm of Canonne, Kamath and Steinke ("The Discrete Gaussian for
//! Differential Privacy", NeurIPS 2020, Algorithms 1 and 2), built on Bernoulli trials with rational
//! probabilities and nothing else. Its randomness is ChaCha20 ([`NoiseSource`]), seeded from a zone secret and
//! keyed per job and label, so that a stage run again draws the same noise rather than fresh samples to average.
//!
//! ```
//! use zone_noise::{NoiseSource, Scale};
//!
//! let mut noise = NoiseSource::keyed(&[7; 32], 42, "cell");
//! let scale = Scale::new(3, 2).expect("a positive scale"); // λ = 1.5
//! let x = noise.discrete_laplace(scale);
//! assert!(x.abs() < 1_000);
//! // Same key, job and label: the same draws.
//! assert_eq!(NoiseSource::keyed(&[7; 32], 42, "cell").discrete_laplace(scale), x);
//! ```
//!
//! The pmf and tail of the distribution are here too ([`Scale::pmf`], [`Scale::tail`]), for the intervals a
//! release reports and for the tests that check the sampler against them.

pub mod report;

use hmac::{Hmac, Mac};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::Sha256;

/// A discrete Laplace scale `λ = num / den`, both positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    num: u128,
    den: u64,
}

impl Scale {
    /// `None` unless both are positive.
    pub fn new(num: u128, den: u64) -> Option<Scale> {
        (num > 0 && den > 0).then_some(Scale { num, den })
    }

    /// λ as a float (for reports; sampling never uses it).
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// `q = exp(-1/λ)`.
    fn q(self) -> f64 {
        (-1.0 / self.as_f64()).exp()
    }

    /// `P(X = x)`.
    pub fn pmf(self, x: i64) -> f64 {
        let q = self.q();
        (1.0 - q) / (1.0 + q) * q.powf(x.unsigned_abs() as f64)
    }

    /// `P(X ≥ x)` for `x ≥ 0` (by symmetry, `P(X ≤ -x)` too).
    pub fn tail(self, x: u64) -> f64 {
        let q = self.q();
        q.powf(x as f64) / (1.0 + q)
    }

    /// The smallest `m` with `P(|X| > m) ≤ alpha`: the half-width of the `1 - alpha` interval around a noisy value.
    pub fn half_width(self, alpha: f64) -> u64 {
        // P(|X| > m) = 2 q^(m+1) / (1 + q).
        let q = self.q();
        if q <= 0.0 {
            return 0;
        }
        let m = ((alpha * (1.0 + q) / 2.0).ln() / q.ln()).ceil() - 1.0;
        if m.is_finite() && m > 0.0 { m as u64 } else { 0 }
    }

    /// The smallest `t ≥ 0` with `P(X ≥ t) ≤ p`.
    pub fn tail_bound(self, p: f64) -> u64 {
        let q = self.q();
        if q <= 0.0 {
            return 1;
        }
        let t = ((p * (1.0 + q)).ln() / q.ln()).ceil();
        if t.is_finite() && t > 0.0 { t as u64 } else { 0 }
    }
}

/// A keyed stream of exact random draws (ChaCha20).
pub struct NoiseSource {
    rng: ChaCha20Rng,
    /// Fair bits not used yet, low bit first.
    bits: u32,
    bits_left: u32,
}

impl std::fmt::Debug for NoiseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoiseSource(..)")
    }
}

impl NoiseSource {
    /// The stream for `job` and `label` under the zone's noise key: `HMAC-SHA256(key, label ‖ 0 ‖ job)` seeds it.
    pub fn keyed(key: &[u8; 32], job: u64, label: &str) -> NoiseSource {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(&job.to_be_bytes());
        let seed: [u8; 32] = mac.finalize().into_bytes().into();
        NoiseSource::from_seed(seed)
    }

    pub fn from_seed(seed: [u8; 32]) -> NoiseSource {
        NoiseSource { rng: ChaCha20Rng::from_seed(seed), bits: 0, bits_left: 0 }
    }

    /// Uniform in `[0, n)`, `n > 0`, without bias: Lemire's multiply-and-reject ("Fast random integer generation in
    /// an interval", 2019), a 32-bit draw when `n` fits and a 64-bit one otherwise. The product's low word is
    /// rejected below `2^w mod n`, so every result has exactly `⌊2^w / n⌋` preimages; the division that computes
    /// the bound is only needed in the rare case that the low word is below `n`.
    fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        if let Ok(n) = u32::try_from(n) {
            let mut m = u64::from(self.rng.next_u32()) * u64::from(n);
            if (m as u32) < n {
                let bound = n.wrapping_neg() % n;
                while (m as u32) < bound {
                    m = u64::from(self.rng.next_u32()) * u64::from(n);
                }
            }
            return m >> 32;
        }
        let mut m = u128::from(self.rng.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let bound = n.wrapping_neg() % n;
            while (m as u64) < bound {
                m = u128::from(self.rng.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// One fair bit, from a word of 32 drawn when the last is used up.
    fn bit(&mut self) -> bool {
        if self.bits_left == 0 {
            self.bits = self.rng.next_u32();
            self.bits_left = 32;
        }
        let b = self.bits & 1 == 1;
        self.bits >>= 1;
        self.bits_left -= 1;
        b
    }

    /// Uniform in `[0, n)` for `n` up to 2^128.
    fn below_wide(&mut self, n: u128) -> u128 {
        if let Ok(small) = u64::try_from(n) {
            return u128::from(self.below(small));
        }
        let zone = u128::MAX - (u128::MAX - n + 1) % n;
        loop {
            let v = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
            if v <= zone {
                return v % n;
            }
        }
    }

    /// Bernoulli(`num / den`), `num ≤ den`.
    fn bernoulli(&mut self, num: u128, den: u128) -> bool {
        self.below_wide(den) < num
    }

    /// Bernoulli(`exp(-num / den)`) for `0 ≤ num ≤ den` (CKS Algorithm 1, first case).
    fn bernoulli_exp_small(&mut self, num: u128, den: u128) -> bool {
        let mut k: u128 = 1;
        loop {
            // Bernoulli(γ / k) with γ = num / den.
            if !self.bernoulli(num, den.saturating_mul(k)) {
                return k % 2 == 1;
            }
            k += 1;
        }
    }

    /// Bernoulli(`exp(-1)`): [`Self::bernoulli_exp_small`] for `γ = 1`, whose first trial (probability 1) needs
    /// no draw and whose later ones are `Bernoulli(1 / k)`.
    fn bernoulli_exp_one(&mut self) -> bool {
        let mut k: u64 = 2;
        loop {
            if self.below(k) != 0 {
                return k % 2 == 1;
            }
            k += 1;
        }
    }

    /// Bernoulli(`exp(-num / den)`) for any `num ≥ 0` (CKS Algorithm 1).
    pub fn bernoulli_exp(&mut self, num: u128, den: u128) -> bool {
        let whole = num / den;
        for _ in 0..whole {
            if !self.bernoulli_exp_one() {
                return false;
            }
        }
        self.bernoulli_exp_small(num % den, den)
    }

    /// One draw of the discrete Laplace distribution of scale `λ` (CKS Algorithm 2), saturated to `i64`.
    pub fn discrete_laplace(&mut self, scale: Scale) -> i64 {
        // CKS sample Lap(t / s): here t = num and s = den.
        let (t, s) = (scale.num, u128::from(scale.den));
        loop {
            let u = self.below_wide(t);
            // u < t: the first case of Algorithm 1 directly (no 128-bit division on the hot path).
            if !self.bernoulli_exp_small(u, t) {
                continue;
            }
            let mut v: u128 = 0;
            while self.bernoulli_exp_one() {
                v += 1;
            }
            let x = u.saturating_add(t.saturating_mul(v));
            let y = match (u64::try_from(x), u64::try_from(s)) {
                _ if s == 1 => x,
                (Ok(x), Ok(s)) => u128::from(x / s),
                _ => x / s,
            };
            let negative = self.bit();
            if negative && y == 0 {
                continue;
            }
            let y = i64::try_from(y).unwrap_or(i64::MAX);
            return if negative { -y } else { y };
        }
    }

    /// A uniform 64-bit word (for keys derived from this stream).
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The χ² critical value for `df` degrees of freedom at an upper tail of about 1e-7 (Wilson–Hilferty, z =
    /// 5.2): a correct sampler fails this test far less than once in a million runs.
    fn chi2_critical(df: f64) -> f64 {
        let z = 5.2;
        let a = 2.0 / (9.0 * df);
        df * (1.0 - a + z * a.sqrt()).powi(3)
    }

    /// Draws `n` samples at `scale` and checks them against the exact pmf: χ² over the values whose expected
    /// count is at least 20 (the rest pooled into the two tails), and the Kolmogorov–Smirnov distance of the
    /// empirical CDF under `3 / sqrt(n)` (p < 1e-7 for a continuous law, conservative for a discrete one).
    fn check(scale: Scale, seed: u8, n: usize) {
        let mut noise = NoiseSource::from_seed([seed; 32]);
        let mut samples: Vec<i64> = (0..n).map(|_| noise.discrete_laplace(scale)).collect();
        samples.sort_unstable();
        let nf = n as f64;
        // The central values with an expected count of at least 20.
        let mut m: i64 = 0;
        while scale.pmf(m + 1) * nf >= 20.0 {
            m += 1;
        }
        let count = |lo: i64, hi: i64| samples.partition_point(|&x| x <= hi) - samples.partition_point(|&x| x < lo);
        let mut chi2 = 0.0;
        let mut bins = 0.0;
        for x in -m..=m {
            let expected = scale.pmf(x) * nf;
            let observed = count(x, x) as f64;
            chi2 += (observed - expected).powi(2) / expected;
            bins += 1.0;
        }
        let tail = scale.tail(m.unsigned_abs() + 1) * nf;
        for observed in [count(i64::MIN, -m - 1), count(m + 1, i64::MAX)] {
            let observed = observed as f64;
            chi2 += (observed - tail).powi(2) / tail;
            bins += 1.0;
        }
        let critical = chi2_critical(bins - 1.0);
        assert!(chi2 < critical, "scale {}: χ² = {chi2:.1} over {bins} bins, critical {critical:.1}", scale.as_f64());
        // KS against the exact CDF at every value in the central range.
        let mut cdf = scale.tail(m.unsigned_abs() + 1);
        let mut worst: f64 = 0.0;
        for x in -m..=m {
            cdf += scale.pmf(x);
            let empirical = samples.partition_point(|&s| s <= x) as f64 / nf;
            worst = worst.max((empirical - cdf).abs());
        }
        assert!(worst < 3.0 / nf.sqrt(), "scale {}: KS distance {worst}", scale.as_f64());
        // Symmetric around 0, mean 0 within 6 standard errors.
        let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / nf;
        let q = scale.q();
        let variance = 2.0 * q / (1.0 - q).powi(2);
        assert!(mean.abs() < 6.0 * (variance / nf).sqrt(), "scale {}: mean {mean}", scale.as_f64());
    }

    #[test]
    fn matches_the_exact_pmf_at_small_scale() {
        check(Scale::new(1, 2).expect("scale"), 1, 1_000_000);
    }

    #[test]
    fn matches_the_exact_pmf_at_scale_one() {
        check(Scale::new(1, 1).expect("scale"), 2, 1_000_000);
    }

    #[test]
    fn matches_the_exact_pmf_at_a_large_rational_scale() {
        check(Scale::new(35, 2).expect("scale"), 3, 1_000_000);
    }

    #[test]
    fn exp_bernoulli_has_the_exact_rate() {
        let mut noise = NoiseSource::from_seed([9; 32]);
        for (num, den) in [(1u128, 3u128), (5, 2), (0, 1)] {
            let n = 400_000;
            let hits = (0..n).filter(|_| noise.bernoulli_exp(num, den)).count() as f64;
            let p = (-(num as f64) / den as f64).exp();
            let sd = (p * (1.0 - p) / n as f64).sqrt().max(1e-9);
            assert!((hits / n as f64 - p).abs() < 6.0 * sd, "{num}/{den}: {} vs {p}", hits / n as f64);
        }
    }

    #[test]
    fn uniform_draws_are_uniform_on_both_paths() {
        let mut noise = NoiseSource::from_seed([4; 32]);
        // (n, buckets): 32-bit draws for small n, 64-bit ones past 2^32 (bucketed by the top of the range).
        for (n, buckets) in [(6u64, 6u64), (1_000_003, 100), (3 << 33, 3), ((1 << 63) + 12_345, 8)] {
            let draws = 600_000;
            let mut seen = vec![0f64; buckets as usize];
            for _ in 0..draws {
                let v = noise.below(n);
                assert!(v < n, "{v} >= {n}");
                seen[(u128::from(v) * u128::from(buckets) / u128::from(n)) as usize] += 1.0;
            }
            let expected = draws as f64 / buckets as f64;
            let chi2: f64 = seen.iter().map(|o| (o - expected).powi(2) / expected).sum();
            assert!(chi2 < chi2_critical((buckets - 1) as f64), "n = {n}: χ² = {chi2}");
        }
        // A fair bit, from 32 per word.
        let ones = (0..320_000).filter(|_| noise.bit()).count() as f64;
        assert!((ones / 320_000.0 - 0.5).abs() < 6.0 * (0.25f64 / 320_000.0).sqrt(), "{ones}");
    }

    #[test]
    fn keyed_streams_differ_by_job_and_label_and_repeat_for_the_same() {
        let scale = Scale::new(100, 1).expect("scale");
        let draw = |job, label| {
            let mut n = NoiseSource::keyed(&[1; 32], job, label);
            (0..8).map(|_| n.discrete_laplace(scale)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, "a"), draw(1, "a"));
        assert_ne!(draw(1, "a"), draw(2, "a"));
        assert_ne!(draw(1, "a"), draw(1, "b"));
    }

    #[test]
    fn intervals_and_tails_follow_the_pmf() {
        for scale in [Scale::new(1, 2), Scale::new(7, 1), Scale::new(1_000, 3)].map(|s| s.expect("scale")) {
            let m = scale.half_width(0.05);
            let outside = |m: u64| 2.0 * scale.tail(m + 1);
            assert!(outside(m) <= 0.05 + 1e-12, "{m}");
            assert!(m == 0 || outside(m - 1) > 0.05);
            let t = scale.tail_bound(1e-6);
            assert!(scale.tail(t) <= 1e-6 * (1.0 + 1e-9));
            assert!(t == 0 || scale.tail(t - 1) > 1e-6);
            let total: f64 = (-2_000..=2_000).map(|x| scale.pmf(x)).sum::<f64>() + 2.0 * scale.tail(2_001);
            assert!((total - 1.0).abs() < 1e-9, "{total}");
        }
    }

    #[test]
    fn huge_scales_do_not_overflow() {
        let mut noise = NoiseSource::from_seed([4; 32]);
        let scale = Scale::new(u128::from(u64::MAX) * 1_000, 3).expect("scale");
        for _ in 0..100 {
            let _ = noise.discrete_laplace(scale);
        }
    }
}
