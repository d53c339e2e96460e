//! The shape of the code: inside every crate the top-level modules refer to each other without a cycle (a module
//! `a` that names `crate::b` depends on `b`), and no crate depends on the `cleanroom` binary's crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The crates' `src/` folders: every folder of the workspace with a Cargo.toml and a src/ beside it.
fn crate_sources() -> Vec<PathBuf> {
    let root = workspace();
    let mut out = Vec::new();
    for parent in [root.clone(), root.join("runtime")] {
        let Ok(entries) = std::fs::read_dir(&parent) else { continue };
        for e in entries.flatten() {
            let dir = e.path();
            if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
                out.push(dir);
            }
        }
    }
    out.sort();
    out
}

/// Top-level module → the top-level modules it names through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    for file in files {
        let rel = file.strip_prefix(src).expect("below src");
        let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_owned();
        if ["lib", "main"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        // Only the code, not the tests at the bottom of a file.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let braced = code[i + 7..].starts_with('{');
            if braced {
                let inner = &code[i + 8..code[i..].find('}').map_or(code.len(), |j| i + j)];
                for part in inner.split(',') {
                    let head: String =
                        part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !head.is_empty() && head != module {
                        deps.insert(head);
                    }
                }
            } else if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// A cycle of `graph`, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|k| visit(k, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_module_cycle_and_nothing_depends_on_the_binary() {
    let crates = crate_sources();
    assert!(crates.len() >= 10, "{crates:?}");
    let mut cycles = Vec::new();
    for dir in &crates {
        if let Some(c) = cycle(&module_graph(&dir.join("src"))) {
            cycles.push(format!("{}: {}", dir.display(), c.join(" → ")));
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let is_cli = manifest.contains("name = \"cleanroom\"");
        assert!(is_cli || !manifest.contains("cleanroom.workspace"), "{} depends on the binary's crate", dir.display());
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let acyclic: BTreeMap<String, BTreeSet<String>> =
        [("a".to_owned(), BTreeSet::from(["b".to_owned()])), ("b".to_owned(), BTreeSet::new())].into();
    assert_eq!(cycle(&acyclic), None);
}

/// Every error class the code writes (`class: "…"`, `refuse("…"`, the arms of `fn class`) is one of `ErrorClass`,
/// so every refusal has its stable id and its HTTP status.
#[test]
fn every_error_class_the_code_writes_is_an_error_class() {
    let mut unknown = BTreeSet::new();
    let mut seen = 0;
    for dir in crate_sources() {
        let mut stack = vec![dir.join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read src").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                if p.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).expect("read");
                let mut in_class_fn = false;
                for line in text.lines() {
                    let t = line.trim();
                    if t.starts_with("pub fn class(") || t.starts_with("fn class(") {
                        in_class_fn = true;
                    } else if in_class_fn && line.starts_with("    }") {
                        in_class_fn = false;
                    }
                    let mut literals = Vec::new();
                    for marker in ["class: \"", "refuse(\"", "refused(\""] {
                        for part in t.split(marker).skip(1) {
                            literals.extend(part.split('"').next());
                        }
                    }
                    if in_class_fn && let Some((_, rest)) = t.split_once("=> \"") {
                        literals.extend(rest.split('"').next());
                    }
                    for id in literals {
                        // Only dotted ids and the sandbox's CamelCase classes are classes (a field named `class`
                        // elsewhere holds other words).
                        if id.is_empty() || id.contains(' ') {
                            continue;
                        }
                        seen += 1;
                        if zone_api::ErrorClass::from_id(id).is_none() {
                            unknown.insert(format!("{id} ({})", p.display()));
                        }
                    }
                }
            }
        }
    }
    assert!(seen > 50, "only {seen} class literals found");
    assert!(
        unknown.is_empty(),
        "classes that are not an ErrorClass:\n{}",
        unknown.into_iter().collect::<Vec<_>>().join("\n")
    );
}
