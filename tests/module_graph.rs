//! The crate's top-level modules form a one-way chain (no import circles), and only the db role's wiring
//! (`run_db`) imports the HA brain (`ha`): the cluster model every role shares lives in `cluster`.

use std::collections::{BTreeMap, BTreeSet};
mod common;

use std::path::PathBuf;

use common::rust_files;

/// `crate::<module>` paths named in `text`.
fn crate_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

/// Top-level module -> the top-level modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let first = rel.components().next().expect("a path").as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file");
        let targets = graph.entry(module.clone()).or_default();
        targets.extend(crate_modules(&text).into_iter().filter(|t| *t != module));
    }
    graph
}

/// A circle through `start`, if any (depth-first, bounded by the module count).
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().cloned().unwrap_or_default();
        for next in graph.get(&here).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_import_circles_between_top_level_modules() {
    let graph = graph();
    assert!(graph.len() > 10, "read the modules of src/: {graph:?}");
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|m| circle_from(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn only_the_db_wiring_imports_ha() {
    let graph = graph();
    let importers: Vec<&String> = graph.iter().filter(|(_, t)| t.contains("ha")).map(|(m, _)| m).collect();
    assert_eq!(importers, ["run_db"], "modules that import the HA brain");
}

#[test]
fn the_reader_sees_crate_paths() {
    let text = "use crate::cluster::keys::Keys;\nlet x = crate::ha::runner::DbNode;";
    assert_eq!(
        crate_modules(text),
        BTreeSet::from(["cluster".to_string(), "ha".to_string()])
    );
}
