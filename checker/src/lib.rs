//! traffic-split-check: checks a traffic-split plugin config before it reaches a mesh.
//!
//! It runs the filter's own compiler ([`traffic_split::config`]), so it accepts exactly what
//! the filter accepts and reports every error with its path, as the filter's log line would.
//! Inputs are JSON files (Envoy's `configuration` StringValue) and YAML files with Istio
//! `TrafficExtension`s and `WasmPlugin`s, whose config is first converted the way Istio
//! converts it ([`istio_struct`]), and Envoy Gateway `EnvoyExtensionPolicy`s.
//!
//! - [`files`]: reading files and folders once, within bounds;
//! - [`inputs`]: finding the configs in them;
//! - [`plugins`]: the resources that carry a config, and what they attach to;
//! - [`istio_struct`]: YAML to JSON as a protobuf `Struct` carries it;
//! - [`summary`]: one line per route of a valid config;
//! - [`check_command`]: the command line of `traffic-split-check` and `traffic-split check`;
//! - [`mesh`]: a plugin against the route tables (VirtualServices, HTTPRoutes),
//!   DestinationRules, Gateways, Services and workloads beside it;
//! - [`local_envoy`]: the local Envoy's bootstrap for any plugin config (`make envoy-up CONFIG=`).
//! - [`simulate`]: `traffic-split simulate`, the filter's core over virtual time.
//!
//! The same crate holds `traffic-split top` ([`top`]), the live view of the split from
//! Envoy's stats; the `traffic-split` binary runs both commands.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod check_command;
pub mod files;
pub mod inputs;
pub mod istio_struct;
pub mod local_envoy;
pub mod mesh;
pub mod plugins;
pub mod simulate;
pub mod summary;
pub mod top;

/// The Prometheus text format's one parser, shared by `top` and the end-to-end tests.
pub use top::stats::Sample as PrometheusSample;

use std::fmt;
use std::path::Path;
use traffic_split::config::ConfigError;
use traffic_split::plan::Plan;

/// One plugin config found in the inputs (or one input that could not be read), and what
/// the filter's compiler made of it.
pub struct Entry {
    /// Where the config came from: `config.json`, or `plugin.yaml: TrafficExtension ns/name`.
    pub origin: String,
    pub verdict: Verdict,
    /// Remarks that do not make the config wrong, such as a placeholder digest.
    pub notes: Vec<String>,
    /// The resource the config came from, read with the manifests beside it ([`mesh`]);
    /// `None` for a JSON config.
    pub plugin: Option<plugins::PluginRef>,
}

impl Entry {
    /// A file or resource that holds no config, with the reason.
    pub fn skipped(origin: String, reason: &'static str) -> Entry {
        Entry {
            origin,
            verdict: Verdict::Skipped(reason),
            notes: Vec::new(),
            plugin: None,
        }
    }
}

pub enum Verdict {
    /// The filter would load it.
    Ok(Plan),
    /// The filter (or Istio, or Kubernetes) would refuse it, for all these reasons.
    Invalid(Vec<ConfigError>),
    /// A file met while searching a folder that holds no config, with the reason.
    Skipped(&'static str),
}

/// Everything found in the inputs a user named.
pub struct Report {
    pub entries: Vec<Entry>,
}

impl Report {
    /// Checks each path: a file, or a folder searched recursively.
    pub fn check(paths: &[impl AsRef<Path>]) -> Report {
        let inputs = inputs::Inputs::read(paths);
        let mut entries = inputs.entries();
        mesh::cross_check(&inputs, &mut entries);
        Report { entries }
    }

    /// True when at least one config was found and none is invalid.
    pub fn passed(&self) -> bool {
        let mut checked = 0;
        for entry in &self.entries {
            match entry.verdict {
                Verdict::Ok(_) => checked += 1,
                Verdict::Invalid(_) => return false,
                Verdict::Skipped(_) => {}
            }
        }
        checked > 0
    }

    /// Every error of every invalid entry, as `origin: path: message`.
    pub fn errors(&self) -> Vec<String> {
        self.entries
            .iter()
            .flat_map(|entry| match &entry.verdict {
                Verdict::Invalid(errors) => errors
                    .iter()
                    .map(|error| format!("{}: {error}", entry.origin))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            match &entry.verdict {
                Verdict::Ok(plan) => {
                    writeln!(f, "ok: {}", entry.origin)?;
                    for line in summary::describe_plan(plan) {
                        writeln!(f, "  {line}")?;
                    }
                }
                Verdict::Invalid(errors) => {
                    let count = match errors.len() {
                        1 => "1 error".to_string(),
                        n => format!("{n} errors"),
                    };
                    writeln!(f, "error: {} ({count})", entry.origin)?;
                    for error in errors {
                        writeln!(f, "  {error}")?;
                    }
                }
                Verdict::Skipped(reason) => writeln!(f, "skipped: {} ({reason})", entry.origin)?,
            }
            for note in &entry.notes {
                writeln!(f, "  note: {note}")?;
            }
        }
        if !self
            .entries
            .iter()
            .any(|entry| matches!(entry.verdict, Verdict::Ok(_) | Verdict::Invalid(_)))
        {
            writeln!(f, "error: no plugin config found")?;
        }
        Ok(())
    }
}
