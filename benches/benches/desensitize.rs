//! Tokenization and masking of 1M resident IDs as Arrow arrays, against a bare SHA-256 digest loop over the
//! same values in the same run, with the same SHA-256 implementation (RustCrypto `sha2`) as the tokenizer's
//! HMAC, so that the ratio measures the construction and our kernel, not two libraries. HMAC-SHA256 needs two compression rounds where a bare digest of a short value
//! needs one, so the floor is about 2x; target <= 2.3x. Masking must be >= 10x faster than tokenization.
//! The values come in 64K-row arrays, the batch size the runtime streams (`BENCH_BATCH` changes it).

use std::hint::black_box;

use arrow_array::StringArray;
use cleanroom_benches::{compare, ratio, report, resident_ids};
use policies::kernels::{mask, tokenize};
use policies::{MaskSpec, TokenKey, TokenSecret};
use sha2::{Digest, Sha256};

fn main() {
    let n = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let batch = std::env::var("BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(65_536usize).max(1);
    let ids = resident_ids(n);
    let arrays: Vec<StringArray> = ids.chunks(batch).map(StringArray::from_iter_values).collect();
    let key = TokenKey::derive(&TokenSecret::from_bytes([42; 32]), "column:bench.id");
    let spec = MaskSpec { keep_prefix: 6, keep_suffix: 1, mask_char: '*' };

    let mut sha_loop = || {
        let mut acc = 0u8;
        for v in arrays.iter().flat_map(|a| a.iter().flatten()) {
            acc ^= Sha256::digest(v.as_bytes())[0];
        }
        black_box(acc);
    };
    // For comparison: ring's HMAC over the same values, no array building. ring's API copies its digest
    // contexts on every call; that is why the tokenizer uses RustCrypto's `hmac` instead.
    let raw_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[42; 32]);
    let mut hmac_loop = || {
        let mut acc = 0u8;
        for v in arrays.iter().flat_map(|a| a.iter().flatten()) {
            acc ^= ring::hmac::sign(&raw_key, v.as_bytes()).as_ref()[0];
        }
        black_box(acc);
    };
    let mut tokenize_kernel = || {
        for array in &arrays {
            black_box(tokenize(array, &key).map(|a| a.len()).unwrap_or(0));
        }
    };
    let mut mask_kernel = || {
        for array in &arrays {
            black_box(mask(array, &spec).map(|a| a.len()).unwrap_or(0));
        }
    };
    let results = compare(
        rounds,
        &mut [
            ("sha256 digest loop (baseline)", &mut sha_loop),
            ("ring HMAC loop (reference)", &mut hmac_loop),
            ("tokenize (HMAC-SHA256)", &mut tokenize_kernel),
            ("mask (keep 6 + 1)", &mut mask_kernel),
        ],
    );
    println!("desensitize: {n} resident IDs in {}-row arrays, median of {rounds} interleaved rounds", batch);
    report(&results, "sha256 digest loop (baseline)", n);
    let tokenize_ratio = ratio(&results, "tokenize (HMAC-SHA256)", "sha256 digest loop (baseline)");
    let mask_speedup = ratio(&results, "tokenize (HMAC-SHA256)", "mask (keep 6 + 1)");
    println!("tokenize / sha256 baseline = {tokenize_ratio:.2}x (target <= 2.3x)");
    println!("mask is {mask_speedup:.1}x faster than tokenize (target >= 10x)");
}
