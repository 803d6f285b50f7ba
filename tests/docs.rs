//! The documentation's examples work as written: every plugin config shown in README.md and
//! docs/ compiles with the filter's own compiler, and every config checker command shown there
//! runs and exits as the text around it says.

use traffic_split_e2e as support;

use std::fs;
use std::process::Command;
use support::repo_root;
use traffic_split::config::compile;

/// Every Markdown file users read: README.md and docs/*.md.
fn documents() -> Vec<(String, String)> {
    let mut paths = vec![repo_root().join("README.md")];
    let mut docs: Vec<_> = fs::read_dir(repo_root().join("docs"))
        .expect("docs/")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).expect("read the document");
            let name = path
                .strip_prefix(repo_root())
                .unwrap_or(&path)
                .display()
                .to_string();
            (name, text)
        })
        .collect()
}

/// The fenced blocks of a language in a Markdown text.
fn blocks<'a>(text: &'a str, language: &str) -> Vec<&'a str> {
    let fence = format!("```{language}\n");
    text.split(fence.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .collect()
}

#[test]
fn every_plugin_config_in_the_docs_compiles() {
    let mut checked = 0;
    for (name, text) in documents() {
        for block in blocks(&text, "json") {
            // A fragment (`"guard": {...}`) is a route's field: check it inside a route.
            let document = if block.trim_start().starts_with('"') {
                format!(
                    r#"{{ "routes": [ {{ "name": "r", {block},
                         "destinations": [ {{ "version": "v1", "weight": 1 }},
                                           {{ "version": "v2", "weight": 1 }} ] }} ] }}"#
                )
            } else {
                block.to_string()
            };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&document) else {
                panic!("{name}: a JSON block that is not JSON:\n{block}");
            };
            if value.get("routes").is_none() {
                continue;
            }
            if let Err(errors) = compile(document.as_bytes()) {
                panic!("{name}: a documented config is refused: {errors:?}\n{block}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} configs found in the docs");
}

/// A checker command as the docs show it, with the exit status they promise (0 unless the
/// line ends with `# exits 1`).
fn checker_commands() -> Vec<(String, String, i32)> {
    let mut commands = Vec::new();
    for (name, text) in documents() {
        for block in blocks(&text, "sh") {
            for line in block.lines().map(str::trim) {
                let invokes_checker = line.starts_with("make check FILE=")
                    || line.starts_with("cargo run -q -p traffic-split-check")
                    || line.starts_with("traffic-split check ")
                    || line.starts_with("traffic-split-check ");
                if !invokes_checker {
                    continue;
                }
                let (command, comment) = line.split_once(" #").unwrap_or((line, ""));
                let expected = if comment.contains("exits 1") { 1 } else { 0 };
                commands.push((name.clone(), command.trim().to_string(), expected));
            }
        }
    }
    commands
}

#[test]
fn every_checker_command_in_the_docs_runs_as_written() {
    let commands = checker_commands();
    assert!(!commands.is_empty(), "no checker command found in the docs");
    for (name, command, expected) in commands {
        // The installed tool is the checker crate's binary; run the same through cargo.
        let through_cargo = "cargo run -q -p traffic-split-check -- ";
        let runnable = match command
            .strip_prefix("traffic-split check ")
            .or_else(|| command.strip_prefix("traffic-split-check "))
        {
            Some(arguments) => format!("{through_cargo}{arguments}"),
            None => command.clone(),
        };
        let output = Command::new("sh")
            .args(["-c", &runnable])
            .current_dir(repo_root())
            .output()
            .expect("run sh");
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{name}: `{command}` exited {:?}\n{}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
