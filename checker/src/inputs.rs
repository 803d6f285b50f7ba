//! Finding the plugin configs in the files a user names: a JSON file is one config (what
//! Envoy's `configuration` StringValue holds); a YAML file holds Kubernetes documents, and each
//! TrafficExtension, WasmPlugin or EnvoyExtensionPolicy among them carries configs
//! ([`crate::plugins`]). A folder is searched for both, recursively.
//!
//! Every file is read once ([`crate::files`] bounds how much): the same documents serve the
//! config check and, as manifests, the mesh check ([`crate::mesh`]). A named YAML file brings
//! the other YAML files of its folder along as manifests, not as configs to check.

use crate::files::{self, FileKind, ReadBudget};
use crate::plugins::{self, PluginKind};
use crate::{Entry, Verdict};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use traffic_split::config::{compile, ConfigError};

/// Why a file is among the inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Named on the command line: it must hold a config (a YAML file named beside other
    /// paths may hold manifests only).
    Named,
    /// Found searching a named folder: checked if it holds a config, skipped otherwise.
    InFolder,
    /// A YAML file beside a named file: read as manifests only.
    Sibling,
}

pub enum Content {
    Json(Vec<u8>),
    Yaml(Vec<Yaml>),
    /// Why it was not read (too big, not YAML, unreadable).
    Unread(String),
}

pub struct Source {
    pub path: PathBuf,
    pub role: Role,
    pub content: Content,
}

/// Every file of one check, each read once.
pub struct Inputs {
    pub sources: Vec<Source>,
}

impl Inputs {
    /// Reads `paths`: files, the YAML files beside each, folders recursively.
    pub fn read(paths: &[impl AsRef<Path>]) -> Inputs {
        let mut roles: BTreeMap<PathBuf, Role> = BTreeMap::new();
        let mut order: Vec<PathBuf> = Vec::new();
        let mut add = |path: PathBuf, role: Role| match roles.get_mut(&path) {
            Some(known) => *known = (*known).min(role),
            None => {
                roles.insert(path.clone(), role);
                order.push(path);
            }
        };
        let mut empty_folders = Vec::new();
        for path in paths.iter().map(AsRef::as_ref) {
            if path.is_dir() {
                let found = files::files_under(path);
                if found.is_empty() {
                    empty_folders.push(path.to_path_buf());
                }
                for file in found {
                    add(file, Role::InFolder);
                }
            } else {
                add(path.to_path_buf(), Role::Named);
                // Manifests matter to the plugins of a YAML file; a JSON config has none.
                if files::kind_of(path) == Some(FileKind::Yaml) {
                    for sibling in files::yaml_siblings(path) {
                        add(sibling, Role::Sibling);
                    }
                }
            }
        }
        let mut budget = ReadBudget::default();
        let mut sources: Vec<Source> = order
            .into_iter()
            .map(|path| {
                let role = roles.get(&path).copied().unwrap_or(Role::Sibling);
                let content = read_source(&path, &mut budget);
                Source {
                    path,
                    role,
                    content,
                }
            })
            .collect();
        for folder in empty_folders {
            sources.push(Source {
                path: folder,
                role: Role::Named,
                content: Content::Unread("no .json, .yaml or .yml file in this folder".into()),
            });
        }
        Inputs { sources }
    }

    /// The entries of every named or found file: one per config, or why a file holds none.
    pub fn entries(&self) -> Vec<Entry> {
        let named = self
            .sources
            .iter()
            .filter(|source| source.role == Role::Named)
            .count();
        self.sources
            .iter()
            .filter(|source| source.role != Role::Sibling)
            .flat_map(|source| check_source(source, named > 1))
            .collect()
    }
}

fn read_source(path: &Path, budget: &mut ReadBudget) -> Content {
    let Some(kind) = files::kind_of(path) else {
        return Content::Unread(
            "expected a .json plugin config or a .yaml/.yml file with TrafficExtensions, \
             WasmPlugins or EnvoyExtensionPolicies"
                .into(),
        );
    };
    let bytes = match budget.read(path) {
        Ok(bytes) => bytes,
        Err(reason) => return Content::Unread(reason),
    };
    match kind {
        FileKind::Json => Content::Json(bytes),
        FileKind::Yaml => match std::str::from_utf8(&bytes) {
            Err(_) => Content::Unread("not valid YAML: not UTF-8 text".into()),
            Ok(text) => match files::yaml_documents(text) {
                Ok(documents) => Content::Yaml(documents),
                Err(reason) => Content::Unread(reason),
            },
        },
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> Entry {
    Entry {
        origin: path.display().to_string(),
        verdict: Verdict::Invalid(vec![ConfigError {
            path: String::new(),
            message: message.into(),
        }]),
        notes: Vec::new(),
        plugin: None,
    }
}

/// `beside_others`: other paths were named too, so a YAML file without a plugin is read as
/// manifests for them.
fn check_source(source: &Source, beside_others: bool) -> Vec<Entry> {
    let path = &source.path;
    let in_folder = source.role == Role::InFolder;
    let origin = path.display().to_string();
    match &source.content {
        Content::Unread(reason) => vec![file_error(path, reason.clone())],
        Content::Json(text) if in_folder && is_other_json(text) => vec![Entry::skipped(
            origin,
            "a JSON object without \"routes\": not a plugin config",
        )],
        Content::Json(text) => vec![Entry {
            origin,
            verdict: match compile(text) {
                Ok(plan) => Verdict::Ok(plan),
                Err(errors) => Verdict::Invalid(errors),
            },
            notes: Vec::new(),
            plugin: None,
        }],
        Content::Yaml(documents) => {
            let mut entries = Vec::new();
            for (index, document) in documents.iter().enumerate() {
                if let Some(kind) = PluginKind::of(document) {
                    entries.extend(plugins::check_document(path, index + 1, kind, document));
                }
            }
            if entries.is_empty() {
                let reason = "no TrafficExtension, WasmPlugin or EnvoyExtensionPolicy in it";
                entries.push(if in_folder {
                    Entry::skipped(origin, reason)
                } else if beside_others {
                    Entry::skipped(origin, "no plugin in it: read as manifests")
                } else {
                    file_error(path, reason)
                });
            }
            entries
        }
    }
}

/// A JSON object without the one field every plugin config has, such as a Grafana dashboard
/// beside the configs; broken JSON, or an object with `routes`, is a config to check.
fn is_other_json(text: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(text),
        Ok(serde_json::Value::Object(object)) if !object.contains_key("routes")
    )
}
