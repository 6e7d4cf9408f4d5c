//! The docs stay true to the tree: ARCHITECTURE.md's module map names every file under `src/` (as the before-stop
//! check does: by path or file name; test files and `mod.rs` excepted), and README links every guide in `docs/`.

mod common;

use std::path::PathBuf;

use common::rust_files;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn architecture_names_every_source_file() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_str()?;
            let rel = f.strip_prefix(&src).ok()?.to_str()?.to_string();
            let exempt = name == "mod.rs" || name.contains("tests");
            (!exempt && !map.contains(name) && !map.contains(&rel)).then_some(format!("src/{rel}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's module map does not name: {missing:?}"
    );
}

#[test]
fn readme_links_every_guide() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let docs = std::fs::read_dir(root().join("docs")).expect("docs/");
    for entry in docs.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            assert!(
                readme.contains(&format!("docs/{name}")),
                "README does not link docs/{name}"
            );
        }
    }
}
