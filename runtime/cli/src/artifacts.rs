//! `artifact list|review|release|reject|output`: reviewed mode's artifacts, held in the zone until every providing
//! agency has read and released them. Content is shown only to those agencies, and never raw to a terminal: text
//! with control characters (an escape sequence could rewrite what the reviewer sees) is shown as a hex dump.

use std::fmt::Write as _;

use zone_api::routes::{self as api, ArtifactContent};
use zone_store::{ArtifactState, HeldArtifact};

use crate::args::{ArtifactCommand, ArtifactReviewArgs};
use crate::context::Ctx;
use crate::output::{self, Mode, short};

pub fn artifact(ctx: &Ctx<'_>, command: &ArtifactCommand) -> anyhow::Result<()> {
    match command {
        ArtifactCommand::List { job } => {
            let list = ctx.call(api::ArtifactList { job: *job })?;
            match ctx.mode {
                Mode::Json => output::json(&list),
                Mode::Human => {
                    let mut t = output::table(["artifact", "job", "operator", "name", "size", "sha256", "state"]);
                    for a in &list {
                        let (name, size, sha) = if a.redacted {
                            ("(withheld until released)".to_owned(), String::new(), String::new())
                        } else {
                            (a.name.clone(), output::bytes(a.bytes), short(&a.sha256).to_owned())
                        };
                        t.add_row(vec![
                            a.id.to_string(),
                            a.job.to_string(),
                            a.operator.clone(),
                            name,
                            size,
                            sha,
                            state_text(a),
                        ]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            }
        }
        ArtifactCommand::Review(args) => review(ctx, args),
        ArtifactCommand::Release(args) | ArtifactCommand::Reject(args) => {
            let release = matches!(command, ArtifactCommand::Release(_));
            let (id, reason) = (args.id, args.reason.clone());
            let a = if release {
                ctx.call(api::ArtifactRelease { id, reason })?
            } else {
                ctx.call(api::ArtifactReject { id, reason })?
            };
            match ctx.mode {
                Mode::Json => output::json(&a),
                Mode::Human => {
                    outln!(
                        "artifact {} ({}) of job {}: {}; now {}",
                        a.id,
                        a.name,
                        a.job,
                        if release { "released" } else { "rejected" },
                        state_text(&a)
                    );
                    if a.state == ArtifactState::Released {
                        outln!("the operator takes it out with: cleanroom artifact output {} --out DIR", a.id);
                    }
                    Ok(())
                }
            }
        }
        ArtifactCommand::Output(args) => {
            let answer = ctx.call_into(api::ArtifactOutput { id: args.id }, Some(&args.out))?;
            crate::jobs::take_out(ctx, &answer, &args.out, "artifact")
        }
    }
}

fn state_text(a: &HeldArtifact) -> String {
    let mut text = if a.state == ArtifactState::Held && !a.waiting_for.is_empty() {
        format!("held (waiting for {})", a.waiting_for.join(", "))
    } else {
        a.state.to_string()
    };
    if a.state == ArtifactState::Held && !a.withdrawn.is_empty() {
        text.push_str(&format!("; read withdrawn {}: reject only", a.withdrawn.join(", ")));
    }
    text
}

fn review(ctx: &Ctx<'_>, args: &ArtifactReviewArgs) -> anyhow::Result<()> {
    let request = api::ArtifactReview { id: args.id, max_bytes: args.max_bytes as u64, save: args.out.is_some() };
    let review = match &args.out {
        Some(path) => ctx.call_to_file(request, path, |a| &a.output)?,
        None => ctx.call(request)?,
    };
    let a = &review.artifact;
    if ctx.mode == Mode::Json {
        return output::json(&serde_json::json!({
            "artifact": a,
            "job": review.job,
            "content": review.content,
            "shown_bytes": review.shown_bytes,
        }));
    }
    outln!("artifact {} `{}` of job {} (application {}, operator {})", a.id, a.name, a.job, a.app, a.operator);
    outln!("  size       {} ({} bytes)", output::bytes(a.bytes), a.bytes);
    outln!("  sha256     {}", a.sha256);
    outln!("  state      {}", state_text(a));
    outln!("  module     {}", review.job.binding.module_sha256);
    let datasets: Vec<String> =
        review.job.binding.datasets.iter().map(|d| format!("{}@{}", d.dataset, d.version)).collect();
    outln!("  from       {}", datasets.join(", "));
    for d in &a.decisions {
        outln!("  decision   {} by {} ({}): {}", d.decision, d.agency, d.provider, d.reason);
    }
    if let Some(path) = &args.out {
        outln!("  written to {}", path.display());
    }
    match &review.content {
        ArtifactContent::Text(shown) => {
            outln!("── content (text) ──");
            outln!("{shown}");
            if review.shown_bytes < review.total_bytes {
                outln!(
                    "── {} more bytes not shown (--max-bytes, or --out FILE) ──",
                    review.total_bytes - review.shown_bytes
                );
            }
        }
        ArtifactContent::Hex(hex) => {
            let bytes = hex::decode(hex).unwrap_or_default();
            let shown = &bytes[..bytes.len().min(4096)];
            outln!("── content (binary or control characters: hex dump of the first {} bytes) ──", shown.len());
            out!("{}", hex_dump(shown));
        }
    }
    Ok(())
}

/// `offset  hex bytes  |printable|`, 16 bytes a line.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String =
            line.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect();
        let _ = writeln!(out, "{:08x}  {:<47}  |{ascii}|", i * 16, hex.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_shows_offsets_and_printable_bytes() {
        let dump = hex_dump(b"abc\x1b\x00 0123456789ABCDEF");
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("00000000  61 62 63 1b 00 20"), "{}", lines[0]);
        assert!(lines[0].ends_with("|abc.. 0123456789|"), "{}", lines[0]);
        assert!(lines[1].starts_with("00000010  41 42"), "{}", lines[1]);
    }
}
