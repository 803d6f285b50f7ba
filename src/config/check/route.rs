//! A route and its destinations: names, clusters, weights, deadlines, and what a destination
//! inherits from its route (timeout, retries, fault) unless it has its own.

use super::values::{self, MAX_WEIGHT};
use super::{join, Checker};
use crate::config::limits;
use crate::config::raw::{DestinationConfig, RouteConfig};
use crate::plan::{Destination, RetryHeaders, Route};
use crate::split::fault::{Fault, FaultPlan};
use crate::split::sticky::version_seed;
use std::collections::HashSet;

/// What a route hands its destinations: what they inherit unless they have their own, and the
/// version whose share its rollout sets.
struct RouteDefaults<'a> {
    timeout_ms: Option<u64>,
    retries: Option<&'a RetryHeaders>,
    fault: Option<&'a Fault>,
    rollout_version: Option<&'a str>,
}

impl Checker {
    pub(super) fn routes(&mut self, configs: &[RouteConfig]) -> Option<Vec<Route>> {
        if configs.is_empty() {
            self.error("routes", "expected at least one route");
            return None;
        }
        // A config over the size limits is refused with the limit alone, before its routes are
        // compiled: compiling them is what the limits keep within the VM's means.
        let too_large = limits::check_counts(
            configs
                .iter()
                .map(|route| route.destinations.as_ref().map_or(0, Vec::len)),
        );
        if !too_large.is_empty() {
            self.errors.extend(too_large);
            return None;
        }
        let mut names = HashSet::new();
        let mut routes = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let path = format!("routes[{index}]");
            let route = self.route(config, &path);
            // Reported with the config's other errors, whether or not the route compiled.
            if let Some(name) = &config.name {
                if !names.insert(name.as_str()) {
                    self.error(
                        &join(&path, "name"),
                        format!("duplicate route name {name:?}"),
                    );
                }
            }
            routes.extend(route);
        }
        (routes.len() == configs.len()).then_some(routes)
    }

    fn route(&mut self, config: &RouteConfig, path: &str) -> Option<Route> {
        let name = self.required(config.name.as_deref(), path, "name", "", |c, text, path| {
            c.reported(values::name(text), path)
        });
        let matcher = self
            .optional(config.matcher.as_ref(), path, "match", Self::route_match)
            .map(Option::unwrap_or_default);
        let timeout = self.optional(
            config.timeout.as_deref(),
            path,
            "timeout",
            |c, text, path| c.reported(values::timeout(text), path),
        );
        let guard = self.optional(config.guard.as_ref(), path, "guard", Self::guard);
        let retries = self.optional(config.retries.as_ref(), path, "retries", Self::retries);
        let fault = self.optional(config.fault.as_ref(), path, "fault", Self::fault);
        // The rollout version's share is the rollout's: its destination has no weight. (So is
        // the old ramp's, whose refusal shows the rollout that replaces it.)
        let rollout_version = config
            .rollout
            .as_ref()
            .and_then(|rollout| rollout.version.as_deref())
            .or_else(|| {
                let ramp = config.ramp.as_ref()?;
                ramp.get("version")?.as_str()
            });
        let defaults = RouteDefaults {
            timeout_ms: timeout.flatten(),
            retries: retries.as_ref().and_then(Option::as_ref),
            fault: fault.as_ref().and_then(Option::as_ref),
            rollout_version,
        };
        let destinations = self.required(
            config.destinations.as_deref(),
            path,
            "destinations",
            "a non-empty list of destinations",
            |c, configs, path| c.destinations(configs, path, &defaults),
        );
        let rollout = self.optional(
            config.rollout.as_ref(),
            path,
            "rollout",
            |c, rollout, path| {
                c.rollout(
                    rollout,
                    path,
                    config.destinations.as_deref(),
                    destinations.as_deref(),
                )
            },
        );
        if let Some(ramp) = &config.ramp {
            let configs = config.destinations.as_deref().unwrap_or_default();
            self.old_ramp(ramp, &join(path, "ramp"), configs);
        }
        let sticky = self.optional(config.sticky.as_ref(), path, "sticky", Self::sticky);
        let override_header = self.optional(
            config.override_header.as_deref(),
            path,
            "override_header",
            |c, header, path| c.override_header(header, path, &destinations),
        );
        let (name, matcher, _, guard, _, _, destinations, rollout, sticky, override_header) = (
            name?,
            matcher?,
            timeout?,
            guard?,
            retries?,
            fault?,
            destinations?,
            rollout?,
            sticky?,
            override_header?,
        );
        let mut route = Route {
            name,
            matcher,
            destinations,
            guard,
            sticky,
            override_header,
            rollout,
        };
        let latches = route.guard_latches();
        if let Some(guard) = &mut route.guard {
            guard.latches = latches;
        }
        Some(route)
    }

    fn destinations(
        &mut self,
        configs: &[DestinationConfig],
        path: &str,
        route: &RouteDefaults<'_>,
    ) -> Option<Vec<Destination>> {
        if configs.is_empty() {
            self.error(path, "expected at least one destination");
            return None;
        }
        let mut versions = HashSet::new();
        let mut destinations = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let destination_path = format!("{path}[{index}]");
            if let Some(destination) = self.destination(config, &destination_path, route) {
                if !versions.insert(destination.version.clone()) {
                    self.error(
                        &join(&destination_path, "version"),
                        format!("duplicate version {:?} in this route", destination.version),
                    );
                }
                destinations.push(destination);
            }
        }
        if destinations.len() != configs.len() {
            return None;
        }
        let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
        // With a rollout, the rollout checks the weights beside it.
        if total == 0 && route.rollout_version.is_none() {
            self.error(
                path,
                "the weights add up to 0; at least one must be above 0",
            );
            return None;
        }
        Some(destinations)
    }

    fn destination(
        &mut self,
        config: &DestinationConfig,
        path: &str,
        route: &RouteDefaults<'_>,
    ) -> Option<Destination> {
        let rolled_out =
            route.rollout_version.is_some() && config.version.as_deref() == route.rollout_version;
        let version = self.required(
            config.version.as_deref(),
            path,
            "version",
            "",
            |c, text, path| c.reported(values::name(text), path),
        );
        let cluster = self.optional(
            config.cluster.as_deref(),
            path,
            "cluster",
            |c, text, path| c.reported(cluster(text), path),
        );
        let weight = match &config.weight {
            Some(_) if rolled_out => {
                self.error(
                    &join(path, "weight"),
                    "the rollout sets this version's share; leave weight out",
                );
                None
            }
            // Its share is the rollout's; the weight is not used.
            None if rolled_out => Some(0),
            weight => self.required(
                weight.as_ref(),
                path,
                "weight",
                &format!("an integer from 0 to {MAX_WEIGHT}"),
                |c, value, path| c.reported(values::weight(value), path),
            ),
        };
        let timeout = self.optional(
            config.timeout.as_deref(),
            path,
            "timeout",
            |c, text, path| c.reported(values::timeout(text), path),
        );
        let retries = self.optional(config.retries.as_ref(), path, "retries", Self::retries);
        let fault = self.optional(config.fault.as_ref(), path, "fault", Self::fault);
        let (version, cluster, weight, timeout, retries, fault) =
            (version?, cluster?, weight?, timeout?, retries?, fault?);
        let deadline_ms = timeout.or(route.timeout_ms);
        Some(Destination {
            sticky_seed: version_seed(&version),
            version,
            cluster,
            weight,
            deadline_ms,
            deadline_header_value: deadline_ms.map(|ms| ms.to_string()),
            retries: retries.or_else(|| route.retries.cloned()),
            fault: fault.as_ref().or(route.fault).map(FaultPlan::new),
        })
    }
}

/// A destination's cluster: written into a header, so a valid, non-empty header value.
fn cluster(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "expected 1-255 visible ASCII characters, got {text:?}"
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    use crate::config::test_configs::{assert_error, errors_of, route_with, ISSUE_EXAMPLE};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn issue_example_compiles_with_deadlines_resolved() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(plan.version_header, "x-split-version");
        assert_eq!(plan.cluster_header, "x-split-cluster");
        let route = &plan.routes[0];
        assert_eq!(route.name, "hello");
        let [v1, v2] = &route.destinations[..] else {
            panic!("two destinations")
        };
        assert_eq!(
            (v1.version.as_str(), v1.weight, v1.deadline_ms),
            ("v1", 70, Some(2))
        );
        assert_eq!(v1.deadline_header_value.as_deref(), Some("2"));
        assert_eq!(
            v2.deadline_ms,
            Some(5),
            "the destination's timeout overrides the route's"
        );
        assert_eq!(v2.cluster.as_deref(), Some("springbootapp-v2"));
    }

    #[test]
    fn negative_weight_names_its_path() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1},{"version":"v2","weight":-5}]"#),
            "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5",
        );
    }

    #[test]
    fn weights_must_be_integers_and_not_all_zero() {
        for bad in ["1.5", "\"70\"", "null", "true", "[]"] {
            let json = route_with(&format!(r#"[{{"version":"v1","weight":{bad}}}]"#));
            let errors = errors_of(&json);
            assert!(
                errors.iter().any(|e| e.starts_with(
                    "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got"
                )),
                "{bad}: {errors:?}"
            );
        }
        assert_error(
            &route_with(r#"[{"version":"v1","weight":4294967296}]"#),
            "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got 4294967296",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":0},{"version":"v2","weight":0}]"#),
            "routes[0].destinations: the weights add up to 0; at least one must be above 0",
        );
    }

    #[test]
    fn weights_range_from_0_to_1000000() {
        let plan = compile(
            route_with(r#"[{"version":"v1","weight":1000000},{"version":"v2","weight":0}]"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(plan.routes[0].destinations[0].weight, 1_000_000);
        for (bad, shown) in [
            ("1000001", "1000001"),
            ("100000000000000000000", "1e+20"),
            ("1e20", "1e+20"),
            ("-5", "-5"),
            ("-0.5", "-0.5"),
            ("2.5", "2.5"),
            ("1000000.5", "1000000.5"),
            (r#""70""#, r#""70""#),
            ("null", "null"),
            ("[70]", "a list"),
            (r#"{"value":70}"#, "an object"),
        ] {
            assert_eq!(
                errors_of(&route_with(&format!(
                    r#"[{{"version":"v1","weight":1}},{{"version":"v2","weight":{bad}}}]"#
                ))),
                [format!(
                    "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got {shown}"
                )],
                "{bad}"
            );
        }
    }

    #[test]
    fn integral_doubles_from_istio_structs_are_weights() {
        let plan = compile(
            route_with(r#"[{"version":"v1","weight":70.0},{"version":"v2","weight":30}]"#)
                .as_bytes(),
        )
        .unwrap();
        let weights: Vec<u32> = plan.routes[0]
            .destinations
            .iter()
            .map(|d| d.weight)
            .collect();
        assert_eq!(weights, vec![70, 30]);
    }

    #[test]
    fn a_bad_weight_does_not_stop_the_check_of_the_rest() {
        assert_eq!(
            errors_of(&route_with(
                r#"[{"version":"v1","weight":"70"},{"version":"v 2","weight":-5}]"#
            )),
            [
                r#"routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got "70""#,
                r#"routes[0].destinations[1].version: expected 1-64 characters of [A-Za-z0-9_-], got "v 2""#,
                "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5",
            ]
        );
    }

    #[test]
    fn route_names_and_versions_are_unique_metric_labels() {
        assert_error(
            r#"{ "routes": [
                 { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] },
                 { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[1].name: duplicate route name \"a\"",
        );
        // Reported with every other error, whether or not the routes compile.
        assert_eq!(
            errors_of(
                r#"{ "routes": [
                 { "name": "a", "destinations": [ { "version": "v1", "weight": -1 } ] },
                 { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#
            ),
            [
                "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got -1",
                "routes[1].name: duplicate route name \"a\"",
            ]
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1},{"version":"v1","weight":2}]"#),
            "routes[0].destinations[1].version: duplicate version \"v1\" in this route",
        );
        let long = "a".repeat(65);
        assert_error(
            &route_with(&format!(r#"[{{"version":"{long}","weight":1}}]"#)),
            &format!("routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"{long}\""),
        );
        assert_error(
            &route_with(r#"[{"version":"v.1","weight":1}]"#),
            "routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"v.1\"",
        );
        assert_error(
            r#"{ "routes": [ { "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[0].name: required",
        );
        assert_error(
            r#"{ "routes": [ { "name": "r" } ] }"#,
            "routes[0].destinations: required: a non-empty list of destinations",
        );
        assert_error(
            &route_with("[]"),
            "routes[0].destinations: expected at least one destination",
        );
        assert_error(
            &route_with(r#"[{"weight":1}]"#),
            "routes[0].destinations[0].version: required",
        );
        assert_error(
            &route_with(r#"[{"version":"v1"}]"#),
            "routes[0].destinations[0].weight: required: an integer from 0 to 1000000",
        );
    }

    #[test]
    fn timeouts_are_checked_where_they_are_written() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"timeout":"0.0001s"}]"#),
            "routes[0].destinations[0].timeout: \"0.0001s\" is not a whole number of milliseconds (Envoy deadlines have millisecond resolution)",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"timeout":2}]"#),
            "routes[0].destinations[0].timeout: expected a string, got 2",
        );
        assert_error(
            r#"{ "routes": [ { "name": "r", "timeout": "25h", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[0].timeout: \"25h\" is longer than the maximum of 24h",
        );
    }

    #[test]
    fn a_route_picks_its_destinations_by_weight() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        let route = &plan.routes[0];
        let mut state = crate::state::RouteState::new(route);
        let mut v1 = 0;
        for _ in 0..1000 {
            v1 += usize::from(route.destinations[state.pick()].version == "v1");
        }
        assert_eq!(v1, 700);
    }
}
