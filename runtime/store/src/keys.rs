//! Zone keys, created once at `zone init` with the operating system's CSPRNG (ring) and kept owner-only:
//! the Ed25519 key that signs checkpoints and product manifests, and the secret that tokenization derives
//! its HMAC keys from.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use policies::TokenSecret;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::error::StoreError;
use crate::objects::sync_dir;

const SIGNING_KEY: &str = "signing.ed25519.p8";
const SIGNING_PUBLIC: &str = "signing.ed25519.pub";
const TOKEN_SECRET: &str = "token.hmac.key";

/// The zone's keys, loaded from `keys/`.
pub struct ZoneKeys {
    signing: Ed25519KeyPair,
    token: TokenSecret,
}

impl std::fmt::Debug for ZoneKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKeys").field("public_key", &hex::encode(self.signing.public_key().as_ref())).finish()
    }
}

impl ZoneKeys {
    pub fn signing(&self) -> &Ed25519KeyPair {
        &self.signing
    }

    pub fn token_secret(&self) -> &TokenSecret {
        &self.token
    }

    /// The keyed commitment to a stored file: `HMAC(K, sha256)` with `K = HMAC(token secret,
    /// "zone-file-commitment-v1")`, hex. What a product's manifest and every principal but the providing agency
    /// and the inspector see instead of the file's SHA-256 — which would let anyone who holds a copy, or guesses
    /// one, confirm what a dataset contains.
    pub fn file_commitment(&self, sha256: &str) -> String {
        use ring::hmac;
        let master = hmac::Key::new(hmac::HMAC_SHA256, self.token.as_bytes());
        let derived = hmac::sign(&master, b"zone-file-commitment-v1");
        let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        hex::encode(hmac::sign(&key, sha256.as_bytes()).as_ref())
    }

    /// The key of a `dp` run's noise and fingerprints (keyed per job by the runs): `HMAC(token secret,
    /// "zone-dp-noise-v1")`. Known only inside the zone, so that nobody can replay a run's noise.
    pub fn noise_key(&self) -> [u8; 32] {
        use ring::hmac;
        let master = hmac::Key::new(hmac::HMAC_SHA256, self.token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(&hmac::sign(&master, b"zone-dp-noise-v1").as_ref()[..32]);
        key
    }

    /// The Ed25519 public key, hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.signing.public_key().as_ref())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(StoreError::io("create key file", path))?;
    file.write_all(bytes).map_err(StoreError::io("write key file", path))?;
    file.sync_all().map_err(StoreError::io("fsync key file", path))
}

/// Creates the keys directory (owner-only) and fresh keys in it. Fails if a key already exists: keys are
/// never overwritten.
pub(crate) fn create(dir: &Path) -> Result<ZoneKeys, StoreError> {
    fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(StoreError::io("chmod", dir))?;
    }
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| StoreError::Key { path: dir.join(SIGNING_KEY), detail: "the system CSPRNG failed".into() })?;
    let mut secret = [0u8; 32];
    rng.fill(&mut secret)
        .map_err(|_| StoreError::Key { path: dir.join(TOKEN_SECRET), detail: "the system CSPRNG failed".into() })?;
    write_private(&dir.join(SIGNING_KEY), pkcs8.as_ref())?;
    write_private(&dir.join(TOKEN_SECRET), &secret)?;
    let signing = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| StoreError::Key { path: dir.join(SIGNING_KEY), detail: e.to_string() })?;
    let public = dir.join(SIGNING_PUBLIC);
    fs::write(&public, format!("{}\n", hex::encode(signing.public_key().as_ref())))
        .map_err(StoreError::io("write", &public))?;
    sync_dir(dir)?;
    Ok(ZoneKeys { signing, token: TokenSecret::from_bytes(secret) })
}

fn read_private(path: PathBuf) -> Result<Vec<u8>, StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).map_err(StoreError::io("stat key file", &path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::Key {
                path,
                detail: format!("permissions {:o} let others read it; expected 600", mode & 0o777),
            });
        }
    }
    fs::read(&path).map_err(StoreError::io("read key file", &path))
}

/// Loads the keys of a zone.
pub(crate) fn load(dir: &Path) -> Result<ZoneKeys, StoreError> {
    let signing_path = dir.join(SIGNING_KEY);
    let pkcs8 = read_private(signing_path.clone())?;
    let signing = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|e| StoreError::Key { path: signing_path, detail: format!("not an Ed25519 PKCS#8 key: {e}") })?;
    let token_path = dir.join(TOKEN_SECRET);
    let secret = read_private(token_path.clone())?;
    let secret: [u8; 32] = secret.try_into().map_err(|v: Vec<u8>| StoreError::Key {
        path: token_path,
        detail: format!("{} bytes, expected 32", v.len()),
    })?;
    Ok(ZoneKeys { signing, token: TokenSecret::from_bytes(secret) })
}
