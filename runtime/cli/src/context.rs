//! What every command needs: the zone (a local folder, or a server), who is acting, and how to print. This is the
//! CLI's one switch between local and remote: a command builds a `zone-api` request, [`Ctx::call`] runs it on the
//! local zone through `zone-ops` or sends it to the server through `zone-client`, and the command prints the typed
//! answer the same way in both cases.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use zone_api::{FileRef, Outputs};
use zone_ops::{Handle, LocalFiles, Session};
use zone_store::{Principal, Zone};

use crate::args::Cli;
use crate::client::Remote;
use crate::output::Mode;
use crate::progress::Bars;

/// The resolved global arguments.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub mode: Mode,
    /// The zone server, when the command goes through one.
    pub remote: Option<Remote>,
}

impl Ctx<'_> {
    pub fn root(&self) -> anyhow::Result<PathBuf> {
        self.cli.zone.clone().context("no zone given: pass --zone DIR or set CLEANROOM_ZONE")
    }

    pub fn open(&self) -> anyhow::Result<Zone> {
        Ok(Zone::open(&self.root()?)?)
    }

    /// The zone and the principal acting in it (an unknown name is refused and recorded by the zone).
    pub fn open_as(&self) -> anyhow::Result<(Zone, Principal)> {
        let zone = self.open()?;
        let who = self.actor(&zone)?;
        Ok((zone, who))
    }

    pub fn actor(&self, zone: &Zone) -> anyhow::Result<Principal> {
        let name = self.cli.as_.as_deref().context(
            "who is acting? pass --as NAME or set CLEANROOM_AS (the zone's first authority is named at `zone init`)",
        )?;
        Ok(zone.actor(name)?)
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// A file argument as a reference in a request of `C`: the path itself locally; through a server, the file is
    /// uploaded first (for `C`, usable once, by us only).
    pub fn file<C: Handle>(&self, path: &Path) -> anyhow::Result<FileRef> {
        match &self.remote {
            Some(remote) => Ok(remote.file_ref::<C>(path)?),
            None => Ok(FileRef(path.display().to_string())),
        }
    }

    /// Runs `request` on the zone, locally or through the server.
    pub fn call<C: Handle>(&self, request: C) -> anyhow::Result<C::Answer> {
        self.call_into(request, None)
    }

    /// Runs `request`, whose output files go into the folder `out` (locally written there; through a server,
    /// taken with [`Ctx::take`]).
    pub fn call_into<C: Handle>(&self, request: C, out: Option<&Path>) -> anyhow::Result<C::Answer> {
        if let Some(remote) = &self.remote {
            return Ok(remote.call(&request)?);
        }
        let (zone, who) = self.open_as()?;
        let files = LocalFiles { out: out.map(Path::to_path_buf) };
        let mut bars = Bars::default();
        let mut session = Session { zone, who, files: &files, progress: &mut bars };
        Ok(request.handle(&mut session)?)
    }

    /// The output files of an answer, in the folder `out`: through a server they are downloaded there (checked
    /// against their announced size and SHA-256); locally they are there already.
    pub fn take(&self, outputs: &Outputs, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
        match &self.remote {
            Some(remote) => Ok(remote.fetch(outputs, out)?),
            None => Ok(outputs.files.iter().map(|f| out.join(&f.name)).collect()),
        }
    }

    /// Runs `request`, whose one output file becomes the file `dest` (written beside it first, then renamed: a
    /// failure leaves nothing half-written there).
    pub fn call_to_file<C: Handle>(
        &self,
        request: C,
        dest: &Path,
        outputs: impl FnOnce(&C::Answer) -> &Outputs,
    ) -> anyhow::Result<C::Answer> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging = tempfile::Builder::new()
            .prefix(".cleanroom-")
            .tempdir_in(&parent)
            .with_context(|| format!("a folder beside {} to write into", dest.display()))?;
        let answer = self.call_into(request, Some(staging.path()))?;
        let taken = self.take(outputs(&answer), staging.path())?;
        let [file] = taken.as_slice() else {
            anyhow::bail!("expected one output file, the zone wrote {}", taken.len());
        };
        std::fs::rename(file, dest).with_context(|| format!("writing {}", dest.display()))?;
        Ok(answer)
    }
}
