//! The core's dependencies run one way, as src/lib.rs states: units and metrics, then split,
//! then plan, then state, then request, then worker; config builds a plan. Read from the source: a module's
//! code (its tests left out) may name only the modules below it. The hosts (filter, sim) and
//! any module not listed here may use them all.
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::path::{Path, PathBuf};

/// Each layered module with the modules its code may name (besides itself).
const LAYERS: &[(&str, &[&str])] = &[
    ("units", &[]),
    ("metrics", &[]),
    ("split", &["units", "metrics"]),
    ("plan", &["units", "metrics", "split"]),
    ("config", &["units", "metrics", "split", "plan"]),
    ("state", &["units", "metrics", "split", "plan"]),
    ("request", &["units", "metrics", "split", "plan", "state"]),
    (
        "ablation",
        &["units", "metrics", "split", "plan", "request"],
    ),
    (
        "worker",
        &[
            "units", "metrics", "split", "plan", "config", "state", "request", "ablation",
        ],
    ),
];

fn source_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(source_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// The modules a file's code names as `crate::<module>`, with the line; comments and the
/// file's test module (from its `#[cfg(test)]` on) left out.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let code = match text.find("#[cfg(test)]\nmod ") {
        Some(tests) => &text[..tests],
        None => text,
    };
    let mut named = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let module: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            named.push((index + 1, module));
        }
    }
    named
}

#[test]
fn each_layer_of_the_core_names_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, below) in LAYERS {
        let dir = src.join(module);
        let path = if dir.is_dir() {
            dir
        } else {
            src.join(format!("{module}.rs"))
        };
        let files = source_files(&path);
        assert!(!files.is_empty(), "no source for {module}");
        for file in files {
            let text = fs::read_to_string(&file).expect("read a source file");
            for (line, named) in named_modules(&text) {
                if named != *module && !below.contains(&named.as_str()) {
                    wrong.push(format!(
                        "{}:{line}: {module} names crate::{named}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_layer_that_names_a_higher_one_is_found() {
    let text = "use crate::split::fault;\n// crate::filter in a comment\n\
                fn f() { crate::state::RouteState::new(); }\n\
                #[cfg(test)]\nmod tests { use crate::config::compile; }\n";
    assert_eq!(
        named_modules(text),
        [(1, "split".to_string()), (3, "state".to_string())]
    );
}
