//! Reading what the user named, once and within bounds: the files of a folder (recursively,
//! never through a symbolic link to a folder, each folder once), each file read at most once
//! and only up to [`MAX_FILE_BYTES`], YAML parsed only after a scan of its nesting depth. A
//! checker pointed at a hostile folder answers in bounded time and memory instead of parsing
//! whatever it meets.

use serde::Deserialize;
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest file read: a manifest set or a plugin config is kilobytes; 4 MiB leaves room
/// for generated manifests while keeping a stray dump or log from costing seconds and memory.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// The most bytes read over all inputs of one check.
pub const MAX_TOTAL_BYTES: u64 = 32 << 20;
/// The most YAML documents kept from one file (a manifest set holds tens).
pub const MAX_DOCUMENTS_PER_FILE: usize = 1_000;
/// The deepest nesting (flow brackets, or block indentation levels) a YAML file may have
/// before it is parsed; serde_yaml's own limit (128) fires only after the whole file is
/// tokenised, which takes seconds on a file of deep flow brackets.
pub const MAX_YAML_DEPTH: usize = 100;
/// The most files one folder search lists.
pub const MAX_FILES: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Json,
    Yaml,
}

pub fn kind_of(path: &Path) -> Option<FileKind> {
    match path.extension()?.to_str()? {
        "json" => Some(FileKind::Json),
        "yaml" | "yml" => Some(FileKind::Yaml),
        _ => None,
    }
}

/// The `.json`, `.yaml` and `.yml` files under `dir`, in a stable order: hidden entries and
/// symbolic links to folders are left out, and each folder is listed once.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut visited = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        // A bind mount or a link given as the root can still bring a folder back: remember
        // where each one really is.
        if !visited.insert(fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())) {
            continue;
        }
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in listing.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // DirEntry::file_type does not follow a link: a link to a folder is not entered.
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if file_type.is_dir() {
                pending.push(path);
            } else if kind_of(&path).is_some() && files.len() < MAX_FILES {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The other YAML files of `file`'s folder (not recursively, links to folders left out).
pub fn yaml_siblings(file: &Path) -> Vec<PathBuf> {
    let folder = folder_of(file);
    let Ok(listing) = fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = listing
        .flatten()
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .filter(|entry| entry.file_type().is_ok_and(|kind| !kind.is_dir()))
        .map(|entry| entry.path())
        .filter(|path| kind_of(path) == Some(FileKind::Yaml) && path != file)
        .take(MAX_FILES)
        .collect();
    files.sort();
    files
}

/// The folder a file is in, `.` for a bare file name.
pub fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Counts the bytes read over one check, so that many files cannot add up past
/// [`MAX_TOTAL_BYTES`].
#[derive(Default)]
pub struct ReadBudget {
    read: u64,
}

impl ReadBudget {
    /// The file's bytes, or why they were not read.
    pub fn read(&mut self, path: &Path) -> Result<Vec<u8>, String> {
        let file = fs::File::open(path).map_err(|error| format!("cannot read: {error}"))?;
        let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        if size > MAX_FILE_BYTES {
            return Err(format!(
                "{size} bytes, more than the {} MiB a manifest or config may have: not read",
                MAX_FILE_BYTES >> 20
            ));
        }
        if self.read + size > MAX_TOTAL_BYTES {
            return Err(format!(
                "not read: the inputs already came to {} MiB, the most one check reads",
                MAX_TOTAL_BYTES >> 20
            ));
        }
        let mut bytes = Vec::new();
        // A file that grows while read (or a device) stops at the cap too.
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| format!("cannot read: {error}"))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "more than the {} MiB a manifest or config may have: not read",
                MAX_FILE_BYTES >> 20
            ));
        }
        self.read += bytes.len() as u64;
        Ok(bytes)
    }
}

/// The YAML documents of `text` (empty ones left out), or why the file is refused.
pub fn yaml_documents(text: &str) -> Result<Vec<Yaml>, String> {
    if let Some(depth) = too_deep(text) {
        return Err(format!(
            "nested more than {MAX_YAML_DEPTH} levels deep (line {depth}): not parsed"
        ));
    }
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        if documents.len() == MAX_DOCUMENTS_PER_FILE {
            return Err(format!(
                "more than {MAX_DOCUMENTS_PER_FILE} YAML documents: not read"
            ));
        }
        match Yaml::deserialize(document) {
            Ok(Yaml::Null) => {}
            Ok(value) => documents.push(value),
            Err(error) => return Err(format!("not valid YAML: {error}")),
        }
    }
    Ok(documents)
}

/// The line where `text` first nests deeper than [`MAX_YAML_DEPTH`]: flow brackets (`[`, `{`)
/// outside quotes and comments, plus the block levels open at that line (each deeper
/// indentation, or `- ` entry, one level). A conservative scan: it may count a bracket inside
/// a plain scalar, which only matters past 100 of them on one line.
fn too_deep(text: &str) -> Option<usize> {
    // Indentations of the block levels open before the current line.
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        let blank = content.is_empty() || content.starts_with('#');
        if flow == 0 && !blank {
            while indents.last().is_some_and(|open| *open >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - - a`: each dash on the line opens a level too.
            let dashes = content
                .as_bytes()
                .chunks(2)
                .take_while(|pair| pair == b"- ")
                .count();
            if indents.len() + dashes > MAX_YAML_DEPTH {
                return Some(number + 1);
            }
        }
        let mut quote: Option<u8> = None;
        let mut previous = b' ';
        for &byte in content.as_bytes() {
            match (quote, byte) {
                (Some(open), _) if byte == open => quote = None,
                (Some(_), _) => {}
                (None, b'#') if previous == b' ' || previous == b'\t' => break,
                (None, b'"' | b'\'') if matches!(previous, b' ' | b'[' | b'{' | b',' | b':') => {
                    quote = Some(byte)
                }
                (None, b'[' | b'{') => {
                    flow += 1;
                    if indents.len() + flow > MAX_YAML_DEPTH {
                        return Some(number + 1);
                    }
                }
                (None, b']' | b'}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            previous = byte;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_manifests_are_not_too_deep() {
        let text = "a:\n  b:\n    - c: [1, {d: \"[[[[\"}]\n    # [[[[[[\n";
        assert_eq!(too_deep(text), None);
        assert_eq!(yaml_documents(text).map(|docs| docs.len()), Ok(1));
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let text = format!("a: {}1{}", "[".repeat(101), "]".repeat(101));
        assert_eq!(too_deep(&text), Some(1));
        assert!(yaml_documents(&text)
            .unwrap_err()
            .contains("more than 100 levels"));
    }

    #[test]
    fn deep_block_nesting_is_refused_before_parsing() {
        let text: String = (0..150)
            .map(|level| format!("{}k{level}:\n", " ".repeat(level)))
            .collect();
        assert_eq!(too_deep(&text), Some(101));
        let dashes = format!("{}x\n", "- ".repeat(120));
        assert_eq!(too_deep(&dashes), Some(1));
    }
}
