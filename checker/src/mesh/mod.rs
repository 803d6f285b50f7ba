//! A plugin read together with the manifests beside it: where it runs ([`proxies`]), whether
//! the route tables those Envoys apply carry out every version it picks ([`routing`]), and
//! whether another plugin on the same Envoy counts under the same plugin label and route names
//! ([`shared_stats`]). The manifests are read once per set ([`manifests`]).
//!
//! A set of manifests is one folder, as `kubectl apply -f FOLDER` takes it (not its
//! subfolders), plus every file named on the command line: `traffic-split check
//! examples/istio/traffic-split.yaml` sees the DestinationRule in `springbootapp.yaml` beside
//! it, and `traffic-split check examples` reads each example folder on its own.

pub mod manifests;
pub mod proxies;
pub mod routing;
pub mod shared_stats;

use crate::files::folder_of;
use crate::inputs::{Content, Inputs, Role};
use crate::{Entry, Verdict};
use manifests::Manifests;
use shared_stats::Placed;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The manifests of `folder`'s set: its YAML files and every named file.
fn manifests_of(inputs: &Inputs, folder: &Path) -> Manifests {
    let mut manifests = Manifests::default();
    for source in &inputs.sources {
        let Content::Yaml(documents) = &source.content else {
            continue;
        };
        if source.role == Role::Named || folder_of(&source.path) == folder {
            manifests.add_file(&source.path, documents);
        }
    }
    manifests
}

/// Reads every valid plugin entry together with the manifests of its set: a version the mesh
/// does not route, or a proxy it shares with another plugin's route of the same name, turns
/// the entry invalid, with every such error.
pub fn cross_check(inputs: &Inputs, entries: &mut [Entry]) {
    let mut sets: BTreeMap<PathBuf, Manifests> = BTreeMap::new();
    let mut placed_by_set: BTreeMap<PathBuf, Vec<(usize, Vec<proxies::Proxy>)>> = BTreeMap::new();
    for (index, entry) in entries.iter_mut().enumerate() {
        let (Some(plugin), Verdict::Ok(plan)) = (&entry.plugin, &entry.verdict) else {
            continue;
        };
        let folder = folder_of(&plugin.file);
        let manifests = sets
            .entry(folder.clone())
            .or_insert_with(|| manifests_of(inputs, &folder));
        let reach = proxies::reach(plugin, manifests);
        let mut errors = reach.errors;
        let mut notes = reach.notes;
        for proxy in &reach.proxies {
            routing::check_versions(plugin, plan, proxy, manifests, &mut errors, &mut notes);
        }
        placed_by_set
            .entry(folder)
            .or_default()
            .push((index, reach.proxies));
        let mut seen = BTreeSet::new();
        notes.retain(|note| seen.insert(note.clone()));
        entry.notes.extend(notes);
        if !errors.is_empty() {
            entry.verdict = Verdict::Invalid(errors);
        }
    }
    // A plugin of a file named on the command line belongs to every set.
    let named: BTreeSet<&Path> = inputs
        .sources
        .iter()
        .filter(|source| source.role == Role::Named)
        .map(|source| source.path.as_path())
        .collect();
    let everywhere: Vec<(usize, Vec<proxies::Proxy>)> = placed_by_set
        .values()
        .flatten()
        .filter(|(index, _)| {
            entries
                .get(*index)
                .and_then(|entry| entry.plugin.as_ref())
                .is_some_and(|plugin| named.contains(plugin.file.as_path()))
        })
        .cloned()
        .collect();
    let mut shared: BTreeMap<usize, Vec<traffic_split::config::ConfigError>> = BTreeMap::new();
    for (folder, placed) in &placed_by_set {
        let Some(manifests) = sets.get(folder) else {
            continue;
        };
        let mut members: Vec<&(usize, Vec<proxies::Proxy>)> = placed.iter().collect();
        for other in &everywhere {
            if !members.iter().any(|(index, _)| *index == other.0) {
                members.push(other);
            }
        }
        members.sort_by_key(|(index, _)| *index);
        let placed: Vec<Placed> = members
            .into_iter()
            .filter_map(|(index, proxies)| {
                let entry = entries.get(*index)?;
                let (Some(plugin), Verdict::Ok(plan)) = (&entry.plugin, &entry.verdict) else {
                    return None;
                };
                Some(Placed {
                    index: *index,
                    origin: &entry.origin,
                    plugin,
                    plan,
                    proxies: proxies.clone(),
                })
            })
            .collect();
        for (index, error) in shared_stats::shared_route_names(&placed, manifests) {
            let errors = shared.entry(index).or_default();
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
    }
    for (index, errors) in shared {
        if let Some(entry) = entries.get_mut(index) {
            entry.verdict = Verdict::Invalid(errors);
        }
    }
}
