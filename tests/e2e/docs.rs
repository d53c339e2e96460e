//! The docs cannot drift from the binary: every `cleanroom …` command shown in a code block of the README or of
//! `docs/` names subcommands that exist, down to a leaf, and only flags that command (or the global options) takes,
//! as its `--help` says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::BIN;

/// The Markdown files whose commands are checked.
fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Every `cleanroom …` line of the code blocks of `text` (continuations joined), with its line number.
fn commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        if raw.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let line = raw.trim().trim_start_matches('#').trim().trim_start_matches("$ ");
        let (start, joined) = match pending.take() {
            Some((start, mut text)) => {
                text.push(' ');
                text.push_str(line);
                (start, text)
            }
            None if line.starts_with("cleanroom ") => (i + 1, line.to_owned()),
            None => continue,
        };
        match joined.strip_suffix('\\') {
            Some(rest) => pending = Some((start, rest.trim_end().to_owned())),
            None => out.push((start, joined)),
        }
    }
    out
}

/// Words, with "quoted strings" kept whole; a comment ends the line.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut word, mut quote) = (Vec::new(), String::new(), None);
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if word.is_empty() => break,
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

struct Helps(BTreeMap<Vec<String>, String>);

impl Helps {
    fn of(&mut self, path: &[String]) -> &str {
        self.0.entry(path.to_vec()).or_insert_with(|| {
            let out = Command::new(BIN).args(path).arg("--help").output().expect("cleanroom --help");
            assert!(out.status.success(), "cleanroom {} --help fails", path.join(" "));
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    }

    fn subcommands(&mut self, path: &[String]) -> BTreeSet<String> {
        let help = self.of(path);
        let Some((_, rest)) = help.split_once("Commands:\n") else { return BTreeSet::new() };
        rest.lines()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| *w != "help")
            .map(str::to_owned)
            .collect()
    }

    fn flags(&mut self, path: &[String]) -> BTreeSet<String> {
        let help = self.of(path);
        help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn every_command_and_flag_the_docs_show_exists() {
    let mut helps = Helps(BTreeMap::new());
    let global = helps.flags(&[]);
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("read doc");
        let shown = file
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, command) in commands(&text) {
            checked += 1;
            let mut path: Vec<String> = Vec::new();
            let mut flags = Vec::new();
            for w in words(&command).into_iter().skip(1) {
                if let Some(flag) = w.strip_prefix("--") {
                    flags.push((path.clone(), format!("--{}", flag.split('=').next().unwrap_or(flag))));
                } else if !w.starts_with('-') && helps.subcommands(&path).contains(&w) {
                    path.push(w);
                }
            }
            if !helps.subcommands(&path).is_empty() {
                problems
                    .push(format!("{shown}:{line}: `{command}` names no command below `cleanroom {}`", path.join(" ")));
                continue;
            }
            for (at, flag) in flags {
                if !helps.flags(&at).contains(&flag) && !global.contains(&flag) {
                    problems.push(format!("{shown}:{line}: `cleanroom {}` has no {flag}", at.join(" ")));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} commands found in the docs");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn no_document_links_outside_the_repository() {
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("read doc");
        assert!(!text.contains("../shared"), "{} points outside the repository", file.display());
        for (i, line) in text.lines().enumerate() {
            for link in line.split("](").skip(1) {
                let target = link.split(')').next().unwrap_or_default();
                if target.starts_with("http") || target.starts_with('#') {
                    continue;
                }
                let base = file.parent().expect("folder");
                let path = base.join(target.split('#').next().unwrap_or_default());
                assert!(path.exists(), "{}:{}: the link `{target}` leads nowhere", file.display(), i + 1);
            }
        }
    }
    let readme = std::fs::read_to_string(&doc_files()[0]).expect("README");
    assert!(readme.lines().count() <= 200, "the README has {} lines (at most 200)", readme.lines().count());
}
