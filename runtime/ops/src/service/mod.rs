//! Every route of the API as an operation on a zone, for a principal: the one implementation the CLI runs on a
//! local zone and the server runs for a certificate's principal. A request's files come through [`Files`] (paths
//! on the zone's own machine, the caller's uploads on a server), and the files it writes go into the folder
//! [`Files::output_dir`] gives, listed in the answer.

pub mod datasets;
pub mod governance;
pub mod jobs;
pub mod oversight;

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use zone_api::{Call, FileRef, OutputFile, Outputs};
use zone_store::{Principal, Progress, Zone};

use crate::error::OpsError;

/// Where a request's files come from and where its outputs go.
pub trait Files {
    /// The file `file` names, ready to read, for operation `operation` (`dataset.publish`).
    fn input(&self, file: &FileRef, operation: &'static str) -> Result<PathBuf, OpsError>;
    /// The folder the operation writes its files into (empty, or where the caller wants them).
    fn output_dir(&self) -> Result<PathBuf, OpsError>;
    /// How the caller gets the files in `dir`.
    fn outputs(&self, dir: &Path) -> Result<Outputs, OpsError>;
    /// How a message names the file `file` refers to.
    fn shown(&self, file: &FileRef) -> String {
        match file.upload() {
            Some((_, name)) => name.to_owned(),
            None => file.0.clone(),
        }
    }
}

/// Files on the zone's own machine: references are paths; outputs go to the folder the caller chose.
#[derive(Debug, Clone, Default)]
pub struct LocalFiles {
    /// Where outputs go; `None` when the operation writes none.
    pub out: Option<PathBuf>,
}

impl Files for LocalFiles {
    fn input(&self, file: &FileRef, _: &'static str) -> Result<PathBuf, OpsError> {
        Ok(PathBuf::from(&file.0))
    }

    fn output_dir(&self) -> Result<PathBuf, OpsError> {
        let dir =
            self.out.clone().ok_or_else(|| OpsError::Invalid("this operation needs a folder for its output".into()))?;
        fs::create_dir_all(&dir).map_err(|source| OpsError::Write { path: dir.clone(), source })?;
        Ok(dir)
    }

    fn outputs(&self, dir: &Path) -> Result<Outputs, OpsError> {
        Ok(Outputs { download: None, files: list_files(dir)? })
    }
}

/// Every file directly in `dir` (sorted by name) with its size and SHA-256.
pub fn list_files(dir: &Path) -> Result<Vec<OutputFile>, OpsError> {
    let read = |source| OpsError::Read { path: dir.to_owned(), source };
    let mut names: Vec<PathBuf> = fs::read_dir(dir).map_err(read)?.flatten().map(|e| e.path()).collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        if !p.is_file() || p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        let bytes = fs::read(&p).map_err(|source| OpsError::Read { path: p.clone(), source })?;
        out.push(OutputFile {
            name: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    Ok(out)
}

/// One request's world: the zone, who acts, the request's files, and where progress is shown.
pub struct Session<'a> {
    pub zone: Zone,
    pub who: Principal,
    pub files: &'a dyn Files,
    pub progress: &'a mut dyn Progress,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("zone", &self.zone.root()).field("who", &self.who.name).finish()
    }
}

/// A route the application layer answers.
pub trait Handle: Call {
    fn handle(self, s: &mut Session<'_>) -> Result<Self::Answer, OpsError>;
}

/// `YYYY-MM-DD`, or an error naming the field.
pub(crate) fn date(text: &str, field: &str) -> Result<chrono::NaiveDate, OpsError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| OpsError::Invalid(format!("{field} `{}` is not a date (YYYY-MM-DD)", text.escape_debug())))
}
