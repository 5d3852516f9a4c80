//! The house rules of src/, read from the source itself: dependencies between top-level
//! modules run one way, down the layers declared once in src/lib.rs (the `// layers:` line),
//! with no cycle inside a layer; and no two source files outside src/ffi share a name
//! (`mod.rs` aside), so a file's name says which stage of a commit's path it is.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The layers, bottom first, from lib.rs's `// layers: a | b c | ...` line.
fn declared_layers() -> Vec<Vec<String>> {
    let lib = fs::read_to_string("src/lib.rs").unwrap();
    let line = lib
        .lines()
        .find_map(|line| line.trim().strip_prefix("// layers:"))
        .expect("src/lib.rs declares its layers in a `// layers:` line");
    line.split('|')
        .map(|layer| layer.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The top-level module a file belongs to, or None for the crate root, binaries and the
/// build script.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_string();
    match first.as_str() {
        "lib.rs" | "bin" | "build.rs" => None,
        name => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// Source text without comments, so a doc link does not count as a dependency.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file names through `crate::`.
fn imports_of(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if after.starts_with('{') {
            // `use crate::{a, b::c}`: each first segment counts.
            let group = &after[1..after.find('}').unwrap_or(after.len())];
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else if !preceded_by_ident {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
        rest = after;
    }
    found
}

#[test]
fn dependencies_run_down_the_declared_layers() {
    let layers = declared_layers();
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(rank, layer)| layer.iter().map(move |module| (module.as_str(), rank)))
        .collect();
    let lib = fs::read_to_string("src/lib.rs").unwrap();
    let root_modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .filter_map(|rest| rest.strip_suffix(" {"))
        .map(str::to_string)
        .collect();
    let root_names = root_reexports(&lib);
    let src = Path::new("src");
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut same_layer: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(me) = top_module(src, file) else {
            continue;
        };
        let my_rank = *rank.get(me.as_str()).unwrap_or_else(|| {
            panic!("module `{me}` ({}) is in no declared layer", file.display())
        });
        let code = code_of(&fs::read_to_string(file).unwrap());
        for target in imports_of(&code) {
            if target == me {
                continue;
            }
            // A name re-exported at the crate root (`crate::Name`) counts as an import
            // of the module it comes from; the modules lib.rs declares inline for the
            // public API sit above no layer; any other module must be in one.
            let target = root_names.get(&target).cloned().unwrap_or(target);
            if target == me {
                continue;
            }
            let Some(&target_rank) = rank.get(target.as_str()) else {
                if target.chars().next().is_some_and(char::is_lowercase)
                    && !root_modules.contains(&target)
                {
                    violations.push(format!(
                        "{}: crate::{target} is in no layer",
                        file.display()
                    ));
                }
                continue;
            };
            if target_rank > my_rank {
                violations.push(format!(
                    "{}: `{me}` imports `{target}`, a layer above it",
                    file.display()
                ));
            } else if target_rank == my_rank {
                same_layer.entry(me.clone()).or_default().insert(target);
            }
        }
    }
    // Inside a layer, imports may not form a cycle.
    for (from, targets) in &same_layer {
        for to in targets {
            if reaches(&same_layer, to, from, &mut BTreeSet::new()) {
                violations.push(format!(
                    "`{from}` and `{to}` import each other (same layer)"
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

/// The names lib.rs re-exports (`pub use module::...::{A, B};`), each with the top-level
/// module it comes from.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let code = code_of(lib);
    for statement in code.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module: String = path
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let items = match (path.find('{'), path.rfind('}')) {
            (Some(open), Some(close)) => path[open + 1..close].to_string(),
            _ => path.rsplit("::").next().unwrap_or("").to_string(),
        };
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() && name != module {
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    names
}

fn reaches(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> bool {
    if from == to {
        return true;
    }
    if !seen.insert(from.to_string()) {
        return false;
    }
    graph
        .get(from)
        .is_some_and(|next| next.iter().any(|n| reaches(graph, n, to, seen)))
}

#[test]
fn the_import_reader_sees_every_form_of_use() {
    let code =
        "use crate::a::B;\nuse crate::{c, d::E};\nlet x = crate::f::g();\npub(crate) use crate::h;";
    let found: Vec<String> = imports_of(code).into_iter().collect();
    assert_eq!(found, ["a", "c", "d", "f", "h"]);
    assert!(imports_of(&code_of("// crate::z::Y in a comment")).is_empty());
}

#[test]
fn no_two_source_files_outside_ffi_share_a_name() {
    let src = Path::new("src");
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        if file.starts_with("src/ffi") || file.file_name().unwrap() == "mod.rs" {
            continue;
        }
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        by_name
            .entry(name)
            .or_default()
            .push(file.display().to_string());
    }
    let shared: Vec<_> = by_name.values().filter(|paths| paths.len() > 1).collect();
    assert!(shared.is_empty(), "files sharing a name: {shared:?}");
}
