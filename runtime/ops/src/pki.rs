//! Certificates: the development CA of `zone init --dev-ca` and `principal add --issue-cert` (rcgen), the identity
//! the server reads from a verified client certificate (x509-parser), and the check that a certificate was issued by
//! one of its organisation's registered CAs (webpki, through rustls). Production zones use the organisations' own
//! PKI: `org add ORG --ca FILE` pins each organisation's CA, and a certificate's subject names the principal (CN)
//! and its organisation (O).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};

/// A certificate or key that could not be made, read or written: what, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PkiError(pub String);

/// `context: cause` as a [`PkiError`].
trait Context<T> {
    fn context(self, what: &str) -> Result<T, PkiError>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, PkiError>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T, PkiError> {
        self.map_err(|e| PkiError(format!("{what}: {e}")))
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, PkiError> {
        self.map_err(|e| PkiError(format!("{}: {e}", what())))
    }
}

impl From<std::io::Error> for PkiError {
    fn from(e: std::io::Error) -> PkiError {
        PkiError(e.to_string())
    }
}

type Result<T, E = PkiError> = std::result::Result<T, E>;

macro_rules! bail {
    ($($t:tt)*) => { return Err(PkiError(format!($($t)*))) };
}

/// The development CA's folder inside a zone.
pub const DEV_CA_DIR: &str = "dev-ca";

/// Where `zone init --dev-ca` put things.
#[derive(Debug, Clone)]
pub struct DevCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub clients: PathBuf,
}

impl DevCa {
    pub fn at(zone: &Path) -> DevCa {
        let dir = zone.join(DEV_CA_DIR);
        DevCa {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            clients: dir.join("clients"),
        }
    }

    fn ca_key(&self) -> PathBuf {
        self.ca_cert.with_file_name("ca.key")
    }

    /// An error unless the zone has a development CA to issue from.
    pub fn require(&self) -> Result<()> {
        if self.ca_cert.is_file() && self.ca_key().is_file() {
            return Ok(());
        }
        bail!(
            "this zone has no development CA ({} is missing): it is made by `zone init --dev-ca`; with your own PKI, \
             issue a certificate whose subject CN is the principal's name",
            self.ca_cert.display()
        )
    }
}

/// A validity period around now, in days before and after.
fn validity(params: &mut CertificateParams, days_before: i64, days_after: i64) {
    let now = time_now();
    params.not_before = now - rcgen_days(days_before);
    params.not_after = now + rcgen_days(days_after);
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rcgen_days(days: i64) -> time::Duration {
    time::Duration::days(days)
}

/// Writes a new file readable by its owner only (a private key), refusing to replace one.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("write {}", path.display()))
}

fn write_public(path: &Path, text: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("write {}", path.display()))
}

/// A client certificate just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the certificate (DER), hex.
    pub sha256: String,
    /// RFC 3339.
    pub not_after: String,
}

/// How long a development-CA client certificate is valid unless asked otherwise.
pub const CLIENT_CERT_DAYS: u32 = 90;

/// Creates the development CA of zone `zone_id` in `<zone>/dev-ca/`, a server certificate for localhost, and a
/// client certificate for `authority` of `org`.
pub fn create_dev_ca(zone: &Path, zone_id: &str, authority: &str, org: &str) -> Result<(DevCa, Issued)> {
    let ca = DevCa::at(zone);
    let dir = zone.join(DEV_CA_DIR);
    fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    fs::create_dir(&ca.clients).with_context(|| format!("create {}", ca.clients.display()))?;

    let key = KeyPair::generate().context("generate the CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_name(zone_id);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, 1, 3650);
    let cert = params.self_signed(&key).context("sign the development CA")?;
    write_private(&ca.ca_key(), &key.serialize_pem())?;
    write_public(&ca.ca_cert, &cert.pem())?;
    let issuer = Issuer::new(params, key);

    let server_key = KeyPair::generate().context("generate the server key")?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).context("server certificate names")?;
    params.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    params.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    dn.push(DnType::OrganizationName, format!("cleanroom zone {zone_id}"));
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, 1, 825);
    let server = params.signed_by(&server_key, &issuer).context("sign the server certificate")?;
    write_private(&ca.server_key, &server_key.serialize_pem())?;
    write_public(&ca.server_cert, &server.pem())?;

    let issued = issue_with(&issuer, &ca.clients, authority, "authority", org, CLIENT_CERT_DAYS)?;
    Ok((ca, issued))
}

fn ca_name(zone_id: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "cleanroom development CA");
    dn.push(DnType::OrganizationName, format!("cleanroom zone {zone_id}"));
    dn
}

/// The zone's development CA, to issue with.
fn load_issuer(zone: &Path) -> Result<Issuer<'static, KeyPair>> {
    let ca = DevCa::at(zone);
    let cert = fs::read_to_string(&ca.ca_cert).with_context(|| {
        format!("this zone has no development CA ({} is missing): create one with `zone init --dev-ca`, or issue certificates from your own PKI", ca.ca_cert.display())
    })?;
    let key = fs::read_to_string(ca.ca_key()).with_context(|| format!("read {}", ca.ca_key().display()))?;
    let key = KeyPair::from_pem(&key).context("the development CA's key does not parse")?;
    Issuer::from_ca_cert_pem(&cert, key).context("the development CA's certificate does not parse")
}

/// Issues a client certificate for principal `name` (CN = name, O = org, OU = role) from the zone's development CA
/// into `out` as NAME.pem and NAME.key, valid for `days`.
pub fn issue_client(zone: &Path, out: &Path, name: &str, role: &str, org: &str, days: u32) -> Result<Issued> {
    if !(1..=825).contains(&days) {
        bail!("--cert-days {days} is out of range: 1 to 825 days");
    }
    let issuer = load_issuer(zone)?;
    fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    issue_with(&issuer, out, name, role, org, days)
}

/// Reads a CA certificate file as a trust anchor for `org` (pinned by its public key).
pub fn read_anchor(org: &str, path: &Path) -> Result<zone_store::TrustAnchor> {
    let pem = fs::read_to_string(path).with_context(|| format!("read the CA certificate {}", path.display()))?;
    let (key_sha256, subject) = ca_anchor(&pem, path)?;
    Ok(zone_store::TrustAnchor {
        org: org.to_owned(),
        key_sha256,
        subject,
        cert_pem: pem,
        added_by: String::new(),
        added_at: String::new(),
    })
}

fn issue_with(
    issuer: &Issuer<'_, KeyPair>,
    out: &Path,
    name: &str,
    role: &str,
    org: &str,
    days: u32,
) -> Result<Issued> {
    let key = KeyPair::generate().context("generate the client key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::OrganizationalUnitName, role);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, 1, i64::from(days));
    let not_after = chrono::DateTime::from_timestamp(params.not_after.unix_timestamp(), 0)
        .ok_or_else(|| PkiError("the certificate's end date is out of range".into()))?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cert = params.signed_by(&key, issuer).context("sign the client certificate")?;
    let (cert_path, key_path) = (out.join(format!("{name}.pem")), out.join(format!("{name}.key")));
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok(Issued { cert: cert_path, key: key_path, sha256: hex::encode(Sha256::digest(cert.der())), not_after })
}

/// What pins a CA: the SHA-256 of its SubjectPublicKeyInfo (hex) and its subject as text. Refuses anything that is
/// not exactly one CA certificate in PEM.
pub fn ca_anchor(pem: &str, shown: &Path) -> Result<(String, String)> {
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError(format!("{}: not PEM certificates: {e:?}", shown.display())))?;
    let [der] = certs.as_slice() else {
        bail!("{}: {} certificates; give exactly one CA certificate per file", shown.display(), certs.len());
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| PkiError(format!("{}: the certificate does not parse: {e}", shown.display())))?;
    if !cert.is_ca() {
        bail!("{}: `{}` is not a CA certificate (basicConstraints CA:TRUE)", shown.display(), cert.subject());
    }
    let key = hex::encode(Sha256::digest(cert.public_key().raw));
    Ok((key, cert.subject().to_string()))
}

/// Whether the certificate chain `chain` (leaf first, as the client sent it) was issued by one of the CAs in
/// `anchors` (PEM) and is valid now: the same path building and checks as the handshake (webpki), against these
/// anchors alone.
pub fn issued_by_one_of(chain: &[Vec<u8>], anchors: &[String]) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in anchors {
        for der in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).flatten() {
            let _ = roots.add(der);
        }
    }
    if roots.is_empty() {
        return Err("no client CA is registered for it".to_owned());
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("the registered CAs cannot be used: {e}"))?;
    let Some((leaf, rest)) = chain.split_first() else { return Err("no certificate".to_owned()) };
    let leaf = rustls_pki_types::CertificateDer::from(leaf.as_slice());
    let intermediates: Vec<_> = rest.iter().map(|c| rustls_pki_types::CertificateDer::from(c.as_slice())).collect();
    verifier
        .verify_client_cert(&leaf, &intermediates, rustls_pki_types::UnixTime::now())
        .map(|_| ())
        .map_err(|e| format!("it was not issued by a CA registered for its organisation ({e})"))
}

/// Who a verified client certificate says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject's common name: the principal's name.
    pub common_name: String,
    /// The subject's organisation, when it has one.
    pub organisation: Option<String>,
    /// SHA-256 of the certificate (DER), hex.
    pub fingerprint: String,
    /// The chain the client sent (DER, leaf first), to check against the organisation's CAs.
    pub chain: std::sync::Arc<Vec<Vec<u8>>>,
}

impl CertIdentity {
    /// Reads the subject of a certificate rustls has already verified against the client CA. The certificate is
    /// still the client's bytes: anything missing or odd is an error, never a guess.
    pub fn from_der(der: &[u8]) -> Result<CertIdentity, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("the client certificate does not parse: {e}"))?;
        let subject = cert.subject();
        let mut names = subject.iter_common_name();
        let cn = names.next().ok_or("the client certificate's subject has no CN (it must name the principal)")?;
        if names.next().is_some() {
            return Err("the client certificate's subject has more than one CN".into());
        }
        let common_name = cn.as_str().map_err(|_| "the client certificate's CN is not a string")?.to_owned();
        let organisation = match subject.iter_organization().next() {
            Some(o) => Some(o.as_str().map_err(|_| "the client certificate's O is not a string")?.to_owned()),
            None => None,
        };
        Ok(CertIdentity {
            common_name,
            organisation,
            fingerprint: hex::encode(Sha256::digest(der)),
            chain: std::sync::Arc::new(vec![der.to_vec()]),
        })
    }

    /// How the audit log names this identity.
    pub fn via(&self) -> String {
        format!("mtls CN={} sha256:{}", self.common_name.escape_debug(), self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_ca_issues_client_certificates_whose_identity_reads_back() -> Result<()> {
        let zone = tempfile::tempdir()?;
        let (ca, root) = create_dev_ca(zone.path(), "z1", "root", "data-bureau")?;
        assert!(ca.server_cert.exists() && ca.server_key.exists());
        let issued = issue_client(zone.path(), &zone.path().join("out"), "alice", "agency", "Tax Bureau", 90)?;
        let (cert, key) = (issued.cert.clone(), issued.key.clone());
        assert!(key.exists());
        let pem = fs::read(&cert)?;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .map_err(|e| PkiError(format!("{e:?}")))?;
        let id = CertIdentity::from_der(&der).map_err(PkiError)?;
        assert_eq!(id.common_name, "alice");
        assert_eq!(id.organisation.as_deref(), Some("Tax Bureau"));
        assert_eq!(id.fingerprint, issued.sha256);
        // The CA pins by its key; the client certificate chains to it, and not to another CA.
        let ca_pem = fs::read_to_string(&ca.ca_cert)?;
        let (pin, subject) = ca_anchor(&ca_pem, &ca.ca_cert)?;
        assert_eq!(pin.len(), 64);
        assert!(subject.contains("cleanroom development CA"), "{subject}");
        assert!(ca_anchor(&fs::read_to_string(&cert)?, &cert).is_err(), "a leaf is not a CA");
        issued_by_one_of(&id.chain, std::slice::from_ref(&ca_pem)).map_err(PkiError)?;
        let other = tempfile::tempdir()?;
        let (other_ca, _) = create_dev_ca(other.path(), "z2", "root", "data-bureau")?;
        let foreign = fs::read_to_string(&other_ca.ca_cert)?;
        assert!(issued_by_one_of(&id.chain, &[foreign]).is_err());
        assert!(issued_by_one_of(&id.chain, &[]).is_err());
        assert!(root.not_after.ends_with('Z') && root.sha256.len() == 64, "{root:?}");
        // Keys are for their owner only, and nothing is overwritten.
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&key)?.permissions());
        assert_eq!(mode & 0o077, 0);
        assert!(issue_client(zone.path(), &zone.path().join("out"), "alice", "agency", "x", 90).is_err());
        assert!(issue_client(zone.path(), &zone.path().join("out2"), "bob", "agency", "x", 0).is_err());
        Ok(())
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert!(CertIdentity::from_der(b"not a certificate").is_err());
        assert!(CertIdentity::from_der(&[]).is_err());
    }
}
