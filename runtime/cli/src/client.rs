//! The CLI as a client of `cleanroom serve`: where the server is and who we are, from flags, the environment or a
//! profile file. The connection itself (mutual TLS, JSON calls, verified uploads and downloads) is `zone-client`.

use std::path::PathBuf;

use anyhow::Context as _;
pub use zone_client::{ClientError, Profile, Remote, RemoteError};

use crate::args::Cli;

/// The server the command line names (flags over environment over profile), or `None` for a local zone.
pub fn remote_from_cli(cli: &Cli) -> anyhow::Result<Option<Remote>> {
    let profile = match &cli.profile {
        Some(path) => Profile::read(path)?,
        None => Profile::default(),
    };
    let Some(server) = cli.server.clone().or(profile.server) else {
        if cli.cert.is_some() || cli.key.is_some() {
            anyhow::bail!("--cert and --key are for --server (or a --profile naming one)");
        }
        return Ok(None);
    };
    if cli.zone.is_some() {
        anyhow::bail!("give either --zone (a local zone) or --server (a zone server), not both");
    }
    if cli.as_.is_some() {
        anyhow::bail!("--as is for a local zone: through --server, your client certificate says who you are (its CN)");
    }
    let need = |v: Option<PathBuf>, flag: &str| {
        v.with_context(|| format!("--server needs {flag} FILE (or a --profile that names it)"))
    };
    let cert = need(cli.cert.clone().or(profile.cert), "--cert")?;
    let key = need(cli.key.clone().or(profile.key), "--key")?;
    let ca = need(cli.ca.clone().or(profile.ca), "--ca")?;
    Ok(Some(Remote::connect(&server, &cert, &key, &ca)?))
}

/// The server's error answer inside `error`, if it is one.
pub fn remote_error(error: &anyhow::Error) -> Option<&RemoteError> {
    error
        .downcast_ref::<RemoteError>()
        .or_else(|| error.chain().find_map(|e| e.downcast_ref::<ClientError>().and_then(ClientError::remote)))
}
