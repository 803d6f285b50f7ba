//! The typed config ([`super::raw::PluginConfig`]) checked and compiled into a [`Plan`].
//!
//! This module is the checking context: the errors found so far, each with its JSON path, so
//! that one refusal lists them all, and the helpers every section uses for a field that may be
//! left out ([`Checker::optional`]) or must be given ([`Checker::required`]). Single values
//! are parsed in [`values`]; each config section is built in its own file: [`plugin`] (the top
//! level), [`route`] (a route and its destinations), [`matcher`], [`canary`] (sticky,
//! override), [`rollout`], [`guard`], [`retries`] and [`fault`].

mod canary;
mod fault;
mod guard;
mod matcher;
mod plugin;
mod retries;
mod rollout;
mod route;
pub mod values;

pub use rollout::MAX_ROLLOUT_STEPS;

use super::error::ConfigError;
use super::raw::PluginConfig;
use crate::plan::Plan;

/// Checks a config and builds its plan, or returns every error found.
pub fn check(config: &PluginConfig) -> Result<Plan, Vec<ConfigError>> {
    let mut checker = Checker::default();
    let plan = checker.plugin(config);
    if checker.regex_units > values::MAX_REGEX_UNITS {
        checker.error(
            "routes",
            format!(
                "the regexes of this config add up to {} units; at most {}",
                checker.regex_units,
                values::MAX_REGEX_UNITS
            ),
        );
    }
    match plan {
        Some(plan) if checker.errors.is_empty() => Ok(plan),
        _ => Err(checker.errors),
    }
}

/// What the check has found so far, and what its sections share.
#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
    /// The headers the filter writes, which no header of a route may read from the client.
    owned_headers: Vec<String>,
    /// The [`values::regex_units`] of every regex checked so far, against
    /// [`values::MAX_REGEX_UNITS`].
    regex_units: u64,
}

/// The path of `field` inside the object at `path` (the top level is `""`).
fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The names of the fields given, from `(name, given)` pairs.
fn given(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| *name)
        .collect()
}

impl Checker {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The value, or its error reported at `path`.
    fn reported<T>(&mut self, result: Result<T, String>, path: &str) -> Option<T> {
        result.map_err(|message| self.error(path, message)).ok()
    }

    /// A field that may be left out: `Some(None)` when it is, else `check`ed at the field's
    /// path (`None` when refused, so that the section is refused too).
    fn optional<V: ?Sized, T>(
        &mut self,
        value: Option<&V>,
        path: &str,
        field: &str,
        check: impl FnOnce(&mut Self, &V, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match value {
            Some(value) => check(self, value, &join(path, field)).map(Some),
            None => Some(None),
        }
    }

    /// A field that must be given: `check`ed at the field's path, else the error
    /// `required: {expected}` there (`required` alone if `expected` is empty).
    fn required<V: ?Sized, T>(
        &mut self,
        value: Option<&V>,
        path: &str,
        field: &str,
        expected: &str,
        check: impl FnOnce(&mut Self, &V, &str) -> Option<T>,
    ) -> Option<T> {
        let path = join(path, field);
        match value {
            Some(value) => check(self, value, &path),
            None => {
                self.missing(&path, expected);
                None
            }
        }
    }

    /// The error of a required field left out. Apart from the generic [`Checker::required`],
    /// so that the module holds it once rather than once per kind of field.
    fn missing(&mut self, path: &str, expected: &str) {
        if expected.is_empty() {
            self.error(path, "required");
        } else {
            self.error(path, format!("required: {expected}"));
        }
    }

    /// Whether exactly one of the `(name, given)` fields is given; if not, an error naming
    /// them and those given.
    fn exactly_one(&mut self, path: &str, fields: &[(&'static str, bool)]) -> bool {
        let given = given(fields);
        if given.len() == 1 {
            return true;
        }
        let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
        let got = if given.is_empty() {
            "none".to_string()
        } else {
            given.join(", ")
        };
        self.error(
            path,
            format!("expected exactly one of {}; got {got}", names.join(", ")),
        );
        false
    }
}
