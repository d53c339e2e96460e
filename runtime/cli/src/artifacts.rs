//! `artifact list|review|release|reject|output`: reviewed mode's artifacts, held in the zone until every providing
//! agency has read and released them. Content is shown only to those agencies, and never raw to a terminal: text
//! with control characters (an escape sequence could rewrite what the reviewer sees) is shown as a hex dump.

use std::fmt::Write as _;

use anyhow::Context as _;
use zone_store::HeldArtifact;

use crate::args::{ArtifactCommand, ArtifactReviewArgs};
use crate::context::Ctx;
use crate::output::{self, Mode, short};

pub fn artifact(ctx: &Ctx<'_>, command: &ArtifactCommand) -> anyhow::Result<()> {
    let (zone, who) = ctx.open_as()?;
    match command {
        ArtifactCommand::List { job } => {
            let list = zone.artifacts(&who, *job)?;
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
        ArtifactCommand::Review(args) => review(ctx, &zone, &who, args),
        ArtifactCommand::Release(args) | ArtifactCommand::Reject(args) => {
            let release = matches!(command, ArtifactCommand::Release(_));
            let a = zone.decide_artifact(&who, args.id, release, &args.reason)?;
            match ctx.mode {
                Mode::Json => output::json(&a),
                Mode::Human => {
                    outln!(
                        "artifact {} ({}) of job {}: {} by {}; now {}",
                        a.id,
                        a.name,
                        a.job,
                        if release { "released" } else { "rejected" },
                        who.name,
                        state_text(&a)
                    );
                    if a.state == "released" {
                        outln!("the operator takes it out with: cleanroom artifact output {} --out DIR", a.id);
                    }
                    Ok(())
                }
            }
        }
        ArtifactCommand::Output(args) => {
            let files = zone.artifact_output(&who, args.id, &args.out)?;
            match ctx.mode {
                Mode::Json => output::json(&serde_json::json!({ "artifact": args.id, "files": files })),
                Mode::Human => {
                    outln!("artifact {}: written to {}", args.id, args.out.display());
                    for f in &files {
                        outln!("  {}", f.display());
                    }
                    outln!("check it anywhere with: cleanroom product verify {}", args.out.display());
                    Ok(())
                }
            }
        }
    }
}

fn state_text(a: &HeldArtifact) -> String {
    let mut text = if a.state == "held" && !a.waiting_for.is_empty() {
        format!("held (waiting for {})", a.waiting_for.join(", "))
    } else {
        a.state.clone()
    };
    if a.state == "held" && !a.withdrawn.is_empty() {
        text.push_str(&format!("; read withdrawn {}: reject only", a.withdrawn.join(", ")));
    }
    text
}

fn review(
    ctx: &Ctx<'_>,
    zone: &zone_store::Zone,
    who: &zone_store::Principal,
    args: &ArtifactReviewArgs,
) -> anyhow::Result<()> {
    let review = zone.review_artifact(who, args.id)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &review.content).with_context(|| format!("writing {}", path.display()))?;
    }
    let a = &review.artifact;
    let text = printable_text(&review.content);
    if ctx.mode == Mode::Json {
        let shown = &review.content[..review.content.len().min(args.max_bytes)];
        let content = match text {
            Some(t) => serde_json::json!({ "text": cut_text(t, args.max_bytes) }),
            None => serde_json::json!({ "hex": hex::encode(shown) }),
        };
        return output::json(&serde_json::json!({
            "artifact": a,
            "job": review.job,
            "content": content,
            "shown_bytes": shown.len(),
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
    match text {
        Some(t) => {
            let shown = cut_text(t, args.max_bytes);
            outln!("── content (text) ──");
            outln!("{shown}");
            if shown.len() < t.len() {
                outln!("── {} more bytes not shown (--max-bytes, or --out FILE) ──", t.len() - shown.len());
            }
        }
        None => {
            let shown = &review.content[..review.content.len().min(args.max_bytes).min(4096)];
            outln!("── content (binary or control characters: hex dump of the first {} bytes) ──", shown.len());
            out!("{}", hex_dump(shown));
        }
    }
    Ok(())
}

/// The content as text when it is UTF-8 without control characters other than newline, tab and carriage return.
fn printable_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r')).then_some(text)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut_text(text: &str, max: usize) -> &str {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
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
    fn escape_sequences_are_never_printed_as_text() {
        assert_eq!(printable_text(b"model: 0.42\n\tok"), Some("model: 0.42\n\tok"));
        assert_eq!(printable_text(b"\x1b[2Jall clear"), None);
        assert_eq!(printable_text(b"\xff\xfe"), None);
        assert_eq!(printable_text("报告\n".as_bytes()), Some("报告\n"));
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut_text("报告", 4), "报");
        assert_eq!(cut_text("abc", 10), "abc");
    }

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
