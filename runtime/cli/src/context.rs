//! What every command needs: the zone folder, who is acting, and how to print.

use std::path::PathBuf;

use anyhow::Context as _;
use zone_store::{Principal, Zone};

use crate::args::Cli;
use crate::output::Mode;

/// The resolved global arguments.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub mode: Mode,
    /// Set by the server: how the principal reached the zone (its client certificate), stamped on audit entries.
    pub via: Option<String>,
}

impl Ctx<'_> {
    pub fn root(&self) -> anyhow::Result<PathBuf> {
        self.cli.zone.clone().context("no zone given: pass --zone DIR or set CLEANROOM_ZONE")
    }

    pub fn open(&self) -> anyhow::Result<Zone> {
        let mut zone = Zone::open(&self.root()?)?;
        zone.set_via(self.via.clone());
        Ok(zone)
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
}
