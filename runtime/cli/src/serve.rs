//! `cleanroom serve`: the zone server (`zone-server`) on this zone, with the command line's options.

use crate::args::ServeArgs;
use crate::context::Ctx;
use crate::output::Mode;

pub fn serve(ctx: &Ctx<'_>, args: &ServeArgs) -> anyhow::Result<()> {
    let options = zone_server::ServeOptions {
        listen: args.listen.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        client_ca: args.client_ca.clone(),
        tls12: args.tls12,
        workers: args.workers,
        max_queued: args.max_queued,
        max_connections: args.max_connections,
        max_upload_mib: args.max_upload_mib,
        upload_quota_mib: args.upload_quota_mib,
        max_uploads: args.max_uploads,
        seal_every: args.seal_every,
    };
    let mode = ctx.mode;
    zone_server::serve(&ctx.root()?, &options, |addr| match mode {
        Mode::Json => outln!("{}", serde_json::json!({ "listening": format!("https://{addr}") })),
        Mode::Human => outln!("listening on https://{addr} (mutual TLS; stop with Ctrl-C)"),
    })?;
    errln!("stopped: queued jobs stay queued; a run in progress is run again at the next start");
    Ok(())
}
