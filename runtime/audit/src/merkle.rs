//! RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes with domain separation, tree heads over any
//! number of leaves, inclusion and consistency proofs, and their verification.

use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of one log entry.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly less than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1). `None` when out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    path_into(leaves, index, &mut path);
    Some(path)
}

fn path_into(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_into(&leaves[..k], m, out);
        out.push(root(&leaves[k..]));
    } else {
        path_into(&leaves[k..], m - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// Verifies an audit path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

/// The consistency proof between the first `old_size` leaves and all of `leaves` (RFC 9162 §2.1.4.1).
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    if old_size > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    if old_size > 0 && old_size < leaves.len() {
        subproof(leaves, old_size, true, &mut out);
    }
    Some(out)
}

fn subproof(leaves: &[Hash], m: usize, whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(&leaves[..k], m, whole, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(&leaves[k..], m - k, false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &fr == old_root && &sr == new_root
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first. Appending a leaf and
/// computing the root are O(log n), so the log never rehashes what it already has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (height, root) of each perfect subtree, left to right.
    peaks: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.peaks.last() {
            if h != node.0 {
                break;
            }
            self.peaks.pop();
            node = (h + 1, node_hash(&left, &node.1));
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The (height, root) of each perfect subtree, left to right.
    pub fn peaks(&self) -> &[(u32, Hash)] {
        &self.peaks
    }

    /// A frontier from saved peaks; `None` unless their heights are exactly the binary digits of `size`, largest
    /// first (the only shape a frontier of that size has).
    pub fn from_peaks(size: u64, peaks: Vec<(u32, Hash)>) -> Option<Frontier> {
        let expected: Vec<u32> = (0..u64::BITS).rev().filter(|b| size >> b & 1 == 1).collect();
        let heights: Vec<u32> = peaks.iter().map(|p| p.0).collect();
        (heights == expected).then_some(Frontier { size, peaks })
    }

    /// The tree head of everything pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Saved peaks give back the same frontier; any other shape is refused.
        #[test]
        fn frontier_round_trips_through_its_peaks(n in 0usize..300) {
            let mut f = Frontier::default();
            for i in 0..n {
                f.push(leaf_hash(&[i as u8, (i >> 8) as u8]));
            }
            let back = Frontier::from_peaks(f.size(), f.peaks().to_vec());
            prop_assert_eq!(back.as_ref(), Some(&f));
            prop_assert!(Frontier::from_peaks(f.size() + 1, f.peaks().to_vec()).is_none());
        }
    }

    /// The leaves and tree heads of RFC 6962's reference test vectors (as used by certificate-transparency and
    /// Trillian): the heads of the first 0..=8 leaves.
    const LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn hashes(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    #[test]
    fn known_answer_roots_for_0_to_8_leaves() {
        let leaves: Vec<Hash> = LEAVES.iter().map(|l| leaf_hash(l)).collect();
        let mut frontier = Frontier::default();
        for (n, expected) in ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root(&leaves[..n])), *expected, "root of {n} leaves");
            assert_eq!(hex::encode(frontier.root()), *expected, "frontier root of {n} leaves");
            if n < leaves.len() {
                frontier.push(leaves[n]);
            }
        }
    }

    #[test]
    fn proofs_verify_for_every_size_up_to_256_and_corruptions_fail() {
        let all = hashes(256);
        let mut frontier = Frontier::default();
        let mut roots = vec![empty_root()];
        for leaf in &all {
            frontier.push(*leaf);
            roots.push(frontier.root());
        }
        for n in 1..=256usize {
            let leaves = &all[..n];
            assert_eq!(root(leaves), roots[n]);
            for i in (0..n).step_by(if n > 64 { 7 } else { 1 }) {
                let path = inclusion_proof(leaves, i).expect("in range");
                assert!(verify_inclusion(&leaves[i], i as u64, n as u64, &path, &roots[n]), "inclusion {i} of {n}");
                assert!(!verify_inclusion(&leaves[(i + 1) % n], i as u64, n as u64, &path, &roots[n]) || n == 1);
                for j in 0..path.len() {
                    let mut bad = path.clone();
                    bad[j][j % 32] ^= 1;
                    assert!(!verify_inclusion(&leaves[i], i as u64, n as u64, &bad, &roots[n]));
                }
                if !path.is_empty() {
                    assert!(!verify_inclusion(&leaves[i], i as u64, n as u64, &path[1..], &roots[n]));
                }
                // The same path for the sibling position puts the hashes in the wrong order.
                if i ^ 1 < n {
                    assert!(!verify_inclusion(&leaves[i], (i ^ 1) as u64, n as u64, &path, &roots[n]), "{i} of {n}");
                }
            }
            for m in (0..=n).step_by(if n > 64 { 5 } else { 1 }) {
                let proof = consistency_proof(leaves, m).expect("m <= n");
                assert!(verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &proof), "consistency {m}->{n}");
                for j in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[j][31 - j % 32] ^= 0x80;
                    assert!(!verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &bad), "{m}->{n} bit {j}");
                }
                if m > 0 && m < n {
                    assert!(!verify_consistency(m as u64, n as u64, &roots[m - 1], &roots[n], &proof));
                    assert!(!verify_consistency(m as u64, n as u64, &roots[m], &roots[n - 1], &proof));
                    assert!(!verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &proof[1..]));
                }
            }
        }
        assert!(inclusion_proof(&all, 256).is_none());
        assert!(consistency_proof(&all[..3], 4).is_none());
    }

    proptest! {
        #[test]
        fn frontier_equals_the_recursive_root(n in 0usize..600) {
            let all = hashes(n);
            let mut frontier = Frontier::default();
            for leaf in &all {
                frontier.push(*leaf);
            }
            prop_assert_eq!(frontier.root(), root(&all));
            prop_assert_eq!(frontier.size(), n as u64);
        }
    }
}
