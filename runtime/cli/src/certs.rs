//! Certificates: the development CA of `zone init --dev-ca` and `principal add --issue-cert` (rcgen), and the
//! identity the server reads from a verified client certificate (x509-parser). Production zones use the agencies'
//! own PKI instead: `serve --client-ca` takes their CA, and a certificate's subject CN names the principal.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest as _, Sha256};

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
    pub fn require(&self) -> anyhow::Result<()> {
        if self.ca_cert.is_file() && self.ca_key().is_file() {
            return Ok(());
        }
        anyhow::bail!(
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
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("write {}", path.display()))
}

fn write_public(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("write {}", path.display()))
}

/// Creates the development CA of zone `zone_id` in `<zone>/dev-ca/`, a server certificate for localhost, and a
/// client certificate for `authority`.
pub fn create_dev_ca(zone: &Path, zone_id: &str, authority: &str, org: Option<&str>) -> anyhow::Result<DevCa> {
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

    issue_with(&issuer, &ca.clients, authority, "authority", org, 365)?;
    Ok(ca)
}

fn ca_name(zone_id: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "cleanroom development CA");
    dn.push(DnType::OrganizationName, format!("cleanroom zone {zone_id}"));
    dn
}

/// The zone's development CA, to issue with.
fn load_issuer(zone: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let ca = DevCa::at(zone);
    let cert = fs::read_to_string(&ca.ca_cert).with_context(|| {
        format!("this zone has no development CA ({} is missing): create one with `zone init --dev-ca`, or issue certificates from your own PKI", ca.ca_cert.display())
    })?;
    let key = fs::read_to_string(ca.ca_key()).with_context(|| format!("read {}", ca.ca_key().display()))?;
    let key = KeyPair::from_pem(&key).context("the development CA's key does not parse")?;
    Issuer::from_ca_cert_pem(&cert, key).context("the development CA's certificate does not parse")
}

/// Issues a client certificate for principal `name` (CN = name, O = org, OU = role) from the zone's development CA
/// into `out` as NAME.pem and NAME.key. Returns both paths.
pub fn issue_client(
    zone: &Path,
    out: &Path,
    name: &str,
    role: &str,
    org: Option<&str>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let issuer = load_issuer(zone)?;
    fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    issue_with(&issuer, out, name, role, org, 365)
}

fn issue_with(
    issuer: &Issuer<'_, KeyPair>,
    out: &Path,
    name: &str,
    role: &str,
    org: Option<&str>,
    days: i64,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = KeyPair::generate().context("generate the client key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::OrganizationalUnitName, role);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, 1, days);
    let cert = params.signed_by(&key, issuer).context("sign the client certificate")?;
    let (cert_path, key_path) = (out.join(format!("{name}.pem")), out.join(format!("{name}.key")));
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok((cert_path, key_path))
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
        Ok(CertIdentity { common_name, organisation, fingerprint: hex::encode(Sha256::digest(der)) })
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
    fn dev_ca_issues_client_certificates_whose_identity_reads_back() -> anyhow::Result<()> {
        let zone = tempfile::tempdir()?;
        let ca = create_dev_ca(zone.path(), "z1", "root", Some("Authority"))?;
        assert!(ca.server_cert.exists() && ca.server_key.exists());
        let (cert, key) = issue_client(zone.path(), &zone.path().join("out"), "alice", "agency", Some("Tax Bureau"))?;
        assert!(key.exists());
        let pem = fs::read(&cert)?;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let id = CertIdentity::from_der(&der).map_err(anyhow::Error::msg)?;
        assert_eq!(id.common_name, "alice");
        assert_eq!(id.organisation.as_deref(), Some("Tax Bureau"));
        assert_eq!(id.fingerprint.len(), 64);
        // Keys are for their owner only, and nothing is overwritten.
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&key)?.permissions());
        assert_eq!(mode & 0o077, 0);
        assert!(issue_client(zone.path(), &zone.path().join("out"), "alice", "agency", None).is_err());
        Ok(())
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert!(CertIdentity::from_der(b"not a certificate").is_err());
        assert!(CertIdentity::from_der(&[]).is_err());
    }
}
