//! The keys of one run's fingerprints and ranks: SipHash-1-3 under a 128-bit key. A `dp` run derives its key from
//! the zone's noise key and the job, so that a run started again cuts the same blocks and draws the same noise
//! (two runs of one job can then not be averaged, nor differenced against each other); any other run draws one.

use std::hash::{BuildHasher, RandomState};

use siphasher::sip::SipHasher13;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunKeys {
    k0: u64,
    k1: u64,
}

impl RunKeys {
    /// A fresh key, known to nobody.
    pub fn random() -> RunKeys {
        let state = RandomState::new();
        RunKeys { k0: state.hash_one(0u8), k1: state.hash_one(1u8) }
    }

    /// The key of a `dp` run.
    pub fn derived(noise_key: &[u8; 32], job: u64) -> RunKeys {
        let mut source = zone_noise::NoiseSource::keyed(noise_key, job, "zone.dp.fingerprints");
        RunKeys { k0: source.next_u64(), k1: source.next_u64() }
    }
}

impl BuildHasher for RunKeys {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}
