//! The shape of the code as a test: the module graph read from `src/` has no cycles, the pure
//! layers (`domain`, `sql`) use no I/O crate, and the edges the design forbids are absent.
//!
//! The graph is read from the source text: every `crate::a::b` path (in `use` items, brace
//! groups included, and inline) and every `super::` path, resolved against the file's module.
#![allow(clippy::expect_used)]
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates that do I/O (or run it): the pure layers may not name them.
const IO_CRATES: &[&str] = &[
    "actix",
    "actix_web",
    "actix_rt",
    "tokio",
    "tokio_util",
    "futures",
    "sqlx",
    "redis",
    "reqwest",
    "hyper",
    "hyper_util",
    "slack_morphism",
    "async_openai",
    "tokio_tungstenite",
    "tracing",
    "async_trait",
];

struct SourceFile {
    /// The module path, e.g. `["interpret", "rules"]` for `src/interpret/rules.rs`.
    module: Vec<String>,
    text: String,
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("src is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("under src");
            let mut module: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") || module == ["lib"] || module == ["main"] {
                module.pop();
            }
            out.push(SourceFile {
                module,
                text: without_unit_tests(&strip_comments(&std::fs::read_to_string(&path).expect("a source file"))),
            });
        }
    }
}

/// The file without its `#[cfg(test)] mod tests` (test code may reach anywhere).
fn without_unit_tests(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// Removes `//` comments (doc comments included), so prose that names a module is no edge.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal ("https://…") is rare in paths that matter here;
            // keep lines whose `//` follows a quote.
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path (as segments) that starts at `crate::` or `super::` in the text, with brace
/// groups expanded one level at a time.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            let preceded_by_ident = at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
            if preceded_by_ident || (at > 0 && bytes[at - 1] == b':') {
                continue;
            }
            expand(&text[at..], &[], &mut found);
        }
    }
    found
}

/// Reads one path at the start of `text` (segments separated by `::`, possibly ending in a
/// brace group) and pushes each full path it names.
fn expand(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut rest = text;
    let mut segments = prefix.to_vec();
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segments.push(rest[..end].to_string());
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix("::") {
            rest = after.trim_start();
            if let Some(group) = rest.strip_prefix('{') {
                for item in split_group(group) {
                    expand(item.trim(), &segments, out);
                }
                out.push(segments);
                return;
            }
        } else {
            break;
        }
    }
    if !segments.is_empty() {
        out.push(segments);
    }
}

/// The top-level items of a brace group (up to its closing brace).
fn split_group(group: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0usize, 0usize, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// Resolves a path found in `file` to absolute module segments (without `crate`).
fn resolve(file: &SourceFile, path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = file.module.clone();
    let mut rest = path;
    if rest.first().is_some_and(|s| s == "crate") {
        base.clear();
        rest = &rest[1..];
    } else {
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
    }
    base.extend(rest.iter().cloned());
    base
}

/// The graph at one level: for files under `parent` (empty = the crate), edges between the
/// children of `parent` that the files name.
fn graph(files: &[SourceFile], parent: &[String], known: &BTreeSet<Vec<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let depth = parent.len();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        if file.module.len() <= depth || file.module[..depth] != *parent {
            continue;
        }
        let from = file.module[depth].clone();
        for path in paths(&file.text) {
            let target = resolve(file, &path);
            if target.len() <= depth || target[..depth] != *parent {
                continue;
            }
            let to = target[depth].clone();
            let child: Vec<String> = parent.iter().cloned().chain([to.clone()]).collect();
            if to != from && known.contains(&child) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// Every module that exists, as segments (each file, and each folder's prefixes).
fn modules(files: &[SourceFile]) -> BTreeSet<Vec<String>> {
    let mut all = BTreeSet::new();
    for file in files {
        for len in 1..=file.module.len() {
            all.insert(file.module[..len].to_vec());
        }
    }
    all
}

#[test]
fn no_module_imports_one_that_imports_it_back_at_any_level() {
    let files = source_files();
    let known = modules(&files);
    let mut parents: BTreeSet<Vec<String>> = BTreeSet::from([Vec::new()]);
    for module in &known {
        parents.insert(module.clone());
    }
    let mut cycles = Vec::new();
    for parent in &parents {
        if let Some(cycle) = find_cycle(&graph(&files, parent, &known)) {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{}::", parent.join("::"))
            };
            cycles.push(
                cycle
                    .iter()
                    .map(|m| format!("{prefix}{m}"))
                    .collect::<Vec<_>>()
                    .join(" -> "),
            );
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle_when_there_is_one() {
    let edges = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(find_cycle(&edges).map(|c| c.len()), Some(4));
    let acyclic = BTreeMap::from([("a".to_string(), BTreeSet::from(["b".to_string()]))]);
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn paths_are_read_from_brace_groups_and_inline_uses() {
    let found = paths("use crate::{domain::{Answer, Reply}, sql::Dialect};\nlet x = super::model::f();");
    let found: BTreeSet<String> = found.iter().map(|p| p.join("::")).collect();
    for expected in [
        "crate::domain::Answer",
        "crate::domain::Reply",
        "crate::sql::Dialect",
        "super::model::f",
    ] {
        assert!(found.contains(expected), "{expected} not in {found:?}");
    }
}

/// External crates a file names at the start of a path (`use sqlx::…`, `tokio::spawn(…)`).
fn external_crates(text: &str) -> BTreeSet<String> {
    let mut crates = BTreeSet::new();
    for name in IO_CRATES {
        let needle = format!("{name}::");
        let mut from = 0;
        while let Some(i) = text[from..].find(&needle) {
            let at = from + i;
            from = at + needle.len();
            let before = text[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                crates.insert((*name).to_string());
            }
        }
        if text.contains(&format!("#[{name}::")) || text.contains(&format!("#[derive({name}")) {
            crates.insert((*name).to_string());
        }
    }
    crates
}

#[test]
fn the_pure_layers_use_no_io_crate_and_no_other_layer() {
    let files = source_files();
    let mut offences = Vec::new();
    for file in files
        .iter()
        .filter(|f| matches!(f.module.first().map(String::as_str), Some("domain" | "sql")))
    {
        let layer = file.module[0].as_str();
        for name in external_crates(&file.text) {
            offences.push(format!("{}: uses {name}", file.module.join("::")));
        }
        let allowed: &[&str] = if layer == "domain" {
            &["domain"]
        } else {
            &["domain", "sql"]
        };
        for path in paths(&file.text) {
            let target = resolve(file, &path);
            if let Some(top) = target.first() {
                if !allowed.contains(&top.as_str()) {
                    offences.push(format!(
                        "{}: names crate::{}",
                        file.module.join("::"),
                        target.join("::")
                    ));
                }
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn the_guard_and_the_slack_edge_import_nothing_from_warehouse() {
    let files = source_files();
    let mut offences = Vec::new();
    for file in files
        .iter()
        .filter(|f| matches!(f.module.first().map(String::as_str), Some("slack" | "sql")))
    {
        for path in paths(&file.text) {
            if resolve(file, &path).first().is_some_and(|m| m == "warehouse") {
                offences.push(format!("{} names {}", file.module.join("::"), path.join("::")));
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}
