//! Released products: the table as Parquet and CSV, and `manifest.json` — what was run on what, what the gate
//! counted, each file's SHA-256 — signed with the zone's Ed25519 key. `verify_product` checks a product folder
//! offline, with nothing but the folder (and, to pin the signer, the zone's public key).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use ring::signature::{ED25519, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::ZoneKeys;
use crate::objects::sync_dir;

/// The files of a product folder.
pub const PRODUCT_PARQUET: &str = "product.parquet";
pub const PRODUCT_CSV: &str = "product.csv";
pub const MANIFEST: &str = "manifest.json";

/// The manifest formats: a released table, a released artifact.
/// v2 carries no counter the guest controls (groups made, groups under k, contributions dropped); v1 manifests, which
/// did, still verify.
/// v3 names each input file by its keyed commitment, not its SHA-256 (which would let whoever holds a copy of a file
/// confirm it is the data).
const FORMATS: [&str; 6] = [
    "zone-product-v3",
    "zone-artifact-v3",
    "zone-product-v2",
    "zone-artifact-v2",
    "zone-product-v1",
    "zone-artifact-v1",
];

/// What signatures of manifests are bound to (never valid as another kind of message).
const SIGNING_CONTEXT: &[u8] = b"zone-product-manifest-v1\0";

/// One dataset a product derives from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDataset {
    pub dataset: String,
    pub version: u32,
    pub policy_sha256: String,
    /// v1/v2 only: SHA-256 of each Parquet file of the version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// v3: the zone's keyed commitment to each Parquet file of the version (`dataset show` gives the providing
    /// agency and the inspector both the file's SHA-256 and its commitment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_commitments: Vec<String>,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The release settings that applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRelease {
    pub mode: String,
    pub min_group_size: u64,
    pub max_groups_per_subject: u64,
    pub max_output_rows: u64,
    pub max_output_bytes: u64,
    /// `dp` mode: ε and δ spent, b, what one subject can change and the noise of every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<zone_noise::report::DpReport>,
}

/// The signed statement about a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub zone_id: String,
    pub job: u64,
    pub application: u64,
    pub operator: String,
    pub domain: String,
    pub purpose: String,
    pub module_sha256: String,
    pub params: Vec<(String, String)>,
    pub datasets: Vec<ManifestDataset>,
    pub release: ManifestRelease,
    pub rows_read: u64,
    pub rows_released: u64,
    /// Only in v1 manifests: counters the guest controls, which a product no longer carries (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_suppressed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributions_dropped: Option<u64>,
    /// Column name and Arrow type of the released table.
    pub columns: Vec<(String, String)>,
    pub outputs: Vec<ManifestFile>,
    /// SHA-256 of the product of record (the Parquet table; for an artifact, the artifact).
    pub output_sha256: String,
    pub created_at: String,
    /// Reviewed mode: how many artifacts the run left for the providing agencies' review. Only the number: their
    /// names, sizes and hashes are the guest's output (a name or the hash of a short artifact could carry a value
    /// out) and reach the operator only once released.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub artifacts_held: u64,
    /// A released artifact: the providers whose agencies released it, as `provider:principal`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released_by: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `manifest.json`: the manifest and its signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedManifest {
    pub manifest: Manifest,
    pub signature: ManifestSignature,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestSignature {
    pub algorithm: String,
    /// Hex Ed25519 public key of the zone.
    pub public_key: String,
    /// Hex signature over `zone-product-manifest-v1 NUL` + the manifest's compact JSON.
    pub value: String,
}

/// Why a product could not be written or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    /// The size is the guest's to choose, so the message does not say it.
    #[error("the product is over the policy's max_output_bytes of {limit} as {file}; nothing is released")]
    TooLarge { file: &'static str, limit: u64 },
    #[error("{path}: not a product manifest: {detail}")]
    BadManifest { path: PathBuf, detail: String },
    #[error("the manifest's signature does not verify with key {key}")]
    BadSignature { key: String },
    #[error("the manifest is signed by {found}, not by the expected zone key {expected}")]
    WrongKey { found: String, expected: String },
    #[error("{file}: {detail}")]
    FileMismatch { file: String, detail: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ProductError + '_ {
    move |e| ProductError::Io { path: path.to_owned(), detail: e.to_string() }
}

fn manifest_message(manifest: &Manifest) -> Result<Vec<u8>, ProductError> {
    let body = serde_json::to_vec(manifest)
        .map_err(|e| ProductError::BadManifest { path: PathBuf::from(MANIFEST), detail: e.to_string() })?;
    let mut message = SIGNING_CONTEXT.to_vec();
    message.extend_from_slice(&body);
    Ok(message)
}

/// The released table, encoded: Parquet and CSV bytes.
#[derive(Debug)]
pub struct EncodedProduct {
    pub parquet: Vec<u8>,
    pub csv: Vec<u8>,
}

/// Whether a CSV cell would be read by a spreadsheet as a formula (or start one after a tab or a line break):
/// `=`, `+`, `-`, `@`, tab and CR at its start (OWASP, "CSV injection").
fn formula_like(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// The released table as `product.csv` carries it: every text cell that a spreadsheet would take for a formula
/// is written with a leading `'`, which spreadsheets show as text. Numbers, dates and booleans are written by the
/// encoder and cannot start a formula. `product.parquet` keeps the values as released.
fn csv_inert(batch: &RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
    use arrow_array::Array as _;
    use arrow_array::cast::AsArray as _;
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for column in &mut columns {
        if column.data_type() != &arrow_schema::DataType::Utf8 {
            continue;
        }
        let text = column.as_string::<i32>();
        if !text.iter().flatten().any(formula_like) {
            continue;
        }
        let inert: arrow_array::StringArray =
            text.iter().map(|v| v.map(|c| if formula_like(c) { format!("'{c}") } else { c.to_owned() })).collect();
        *column = Arc::new(inert) as arrow_array::ArrayRef;
        changed = true;
    }
    if !changed {
        return Ok(batch.clone());
    }
    RecordBatch::try_new(batch.schema(), columns)
}

/// Encodes the released table; refused when either encoding is over `max_bytes`.
pub fn encode_product(
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
    max_bytes: u64,
) -> Result<EncodedProduct, ProductError> {
    let encode_error = |what: &str, e: &dyn std::fmt::Display| ProductError::Io {
        path: PathBuf::from(what),
        detail: format!("encoding: {e}"),
    };
    let mut parquet = Vec::new();
    {
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut parquet, schema.clone(), None)
            .map_err(|e| encode_error(PRODUCT_PARQUET, &e))?;
        for b in batches {
            writer.write(b).map_err(|e| encode_error(PRODUCT_PARQUET, &e))?;
        }
        writer.close().map_err(|e| encode_error(PRODUCT_PARQUET, &e))?;
    }
    let mut csv = Vec::new();
    {
        let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(&mut csv);
        if batches.is_empty() {
            writer.write(&RecordBatch::new_empty(schema.clone())).map_err(|e| encode_error(PRODUCT_CSV, &e))?;
        }
        for b in batches {
            let inert = csv_inert(b).map_err(|e| encode_error(PRODUCT_CSV, &e))?;
            writer.write(&inert).map_err(|e| encode_error(PRODUCT_CSV, &e))?;
        }
    }
    for (file, bytes) in [(PRODUCT_PARQUET, parquet.len()), (PRODUCT_CSV, csv.len())] {
        if bytes as u64 > max_bytes {
            return Err(ProductError::TooLarge { file, limit: max_bytes });
        }
    }
    Ok(EncodedProduct { parquet, csv })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ProductError> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Writes a product folder atomically: files into `<products>/.staging-<job>`, synced, then renamed to
/// `<products>/<job>`. Returns the signed manifest and its file's SHA-256.
pub(crate) fn write_product(
    products: &Path,
    job: u64,
    encoded: &EncodedProduct,
    manifest: Manifest,
    keys: &ZoneKeys,
) -> Result<(SignedManifest, String), ProductError> {
    let files = [(PRODUCT_PARQUET, encoded.parquet.as_slice()), (PRODUCT_CSV, encoded.csv.as_slice())];
    write_signed_folder(products, &job.to_string(), &files, manifest, keys)
}

/// Writes `<parent>/<folder>` atomically: the files and `manifest.json` (naming each file's size and SHA-256; the
/// first file is the output of record) into a staging folder, synced, then renamed. Returns the signed manifest
/// and its file's SHA-256.
pub(crate) fn write_signed_folder(
    parent: &Path,
    folder: &str,
    files: &[(&str, &[u8])],
    mut manifest: Manifest,
    keys: &ZoneKeys,
) -> Result<(SignedManifest, String), ProductError> {
    fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = parent.join(format!(".staging-{folder}"));
    let target = parent.join(folder);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    fs::create_dir(&staging).map_err(io(&staging))?;
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    manifest.outputs = files
        .iter()
        .map(|(name, bytes)| ManifestFile { name: (*name).to_owned(), sha256: sha(bytes), bytes: bytes.len() as u64 })
        .collect();
    manifest.output_sha256 = files.first().map(|(_, bytes)| sha(bytes)).unwrap_or_default();
    let signature = keys.signing().sign(&manifest_message(&manifest)?);
    let signed = SignedManifest {
        manifest,
        signature: ManifestSignature {
            algorithm: "ed25519".into(),
            public_key: hex::encode(keys.signing().public_key().as_ref()),
            value: hex::encode(signature.as_ref()),
        },
    };
    let mut json = serde_json::to_vec_pretty(&signed)
        .map_err(|e| ProductError::BadManifest { path: staging.join(MANIFEST), detail: e.to_string() })?;
    json.push(b'\n');
    for (name, bytes) in files {
        write_synced(&staging.join(name), bytes)?;
    }
    write_synced(&staging.join(MANIFEST), &json)?;
    sync_dir(&staging).map_err(|e| ProductError::Io { path: staging.clone(), detail: e.to_string() })?;
    fs::rename(&staging, &target).map_err(io(&target))?;
    sync_dir(parent).map_err(|e| ProductError::Io { path: parent.to_owned(), detail: e.to_string() })?;
    Ok((signed, sha(&json)))
}

/// What `product verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct ProductReport {
    pub job: u64,
    pub application: u64,
    pub public_key: String,
    pub files: Vec<ManifestFile>,
    pub rows_released: u64,
}

/// Checks a product folder offline: the manifest's Ed25519 signature (by `expected_key` when given), and each
/// output file's size and SHA-256. Files in the folder that the manifest does not name are refused too.
pub fn verify_product(dir: &Path, expected_key: Option<&str>) -> Result<(SignedManifest, ProductReport), ProductError> {
    let path = dir.join(MANIFEST);
    let bytes = fs::read(&path).map_err(io(&path))?;
    let signed: SignedManifest = serde_json::from_slice(&bytes)
        .map_err(|e| ProductError::BadManifest { path: path.clone(), detail: e.to_string() })?;
    let key = &signed.signature.public_key;
    if let Some(expected) = expected_key
        && !expected.eq_ignore_ascii_case(key)
    {
        return Err(ProductError::WrongKey { found: key.clone(), expected: expected.to_owned() });
    }
    if !FORMATS.contains(&signed.manifest.format.as_str()) {
        return Err(ProductError::BadManifest {
            path,
            detail: format!("format `{}` is not one of {}", signed.manifest.format, FORMATS.join(", ")),
        });
    }
    if signed.signature.algorithm != "ed25519" {
        return Err(ProductError::BadManifest {
            path,
            detail: format!("signature algorithm `{}` is not ed25519", signed.signature.algorithm),
        });
    }
    let key_bytes = hex::decode(key).map_err(|_| ProductError::BadSignature { key: key.clone() })?;
    let value = hex::decode(&signed.signature.value).map_err(|_| ProductError::BadSignature { key: key.clone() })?;
    UnparsedPublicKey::new(&ED25519, key_bytes)
        .verify(&manifest_message(&signed.manifest)?, &value)
        .map_err(|_| ProductError::BadSignature { key: key.clone() })?;
    for file in &signed.manifest.outputs {
        if file.name.contains(['/', '\\']) || file.name.starts_with('.') {
            return Err(ProductError::FileMismatch { file: file.name.clone(), detail: "not a plain file name".into() });
        }
        let p = dir.join(&file.name);
        let data = fs::read(&p).map_err(io(&p))?;
        if data.len() as u64 != file.bytes {
            return Err(ProductError::FileMismatch {
                file: file.name.clone(),
                detail: format!("{} bytes, the manifest says {}", data.len(), file.bytes),
            });
        }
        let actual = hex::encode(Sha256::digest(&data));
        if actual != file.sha256 {
            return Err(ProductError::FileMismatch {
                file: file.name.clone(),
                detail: format!("SHA-256 {actual}, the manifest says {}", file.sha256),
            });
        }
    }
    let named: Vec<&str> = signed.manifest.outputs.iter().map(|f| f.name.as_str()).collect();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST && !named.contains(&name.as_str()) {
            return Err(ProductError::FileMismatch { file: name, detail: "not named by the manifest".into() });
        }
    }
    let report = ProductReport {
        job: signed.manifest.job,
        application: signed.manifest.application,
        public_key: key.clone(),
        files: signed.manifest.outputs.clone(),
        rows_released: signed.manifest.rows_released,
    };
    Ok((signed, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_inert() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("district", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let keys = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "姑苏区", "a=b"];
        let columns: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(keys.to_vec())), Arc::new(Int64Array::from(vec![-5, 1, 2, 3, 4, 5, 6, 7]))];
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
        let encoded = encode_product(&schema, &[batch], 1 << 20).expect("encoded");
        let csv = String::from_utf8(encoded.csv).expect("utf-8");
        let mut lines = csv.lines().skip(1);
        let first = lines.next().expect("row");
        assert!(first.starts_with("\"'=HYPERLINK("), "{first}");
        // Numbers stay numbers, negative ones too.
        assert!(first.ends_with(",-5"), "{first}");
        for line in csv.lines().skip(1) {
            let cell = line.trim_start_matches('"');
            assert!(!formula_like(cell), "{line}");
        }
        assert!(csv.contains("\n姑苏区,6\n") && csv.contains("\na=b,7"), "{csv}");
    }
}
