//! A route's `rollout`: one version's share of the route moving through steps, the other
//! versions splitting the rest by weight; and the old `ramp`, refused with the `rollout` that
//! does what it did.

use super::values::{self, share_millionths};
use super::Checker;
use crate::config::raw::{DestinationConfig, RolloutConfig, RolloutStepConfig};
use crate::plan::Destination;
use crate::split::rollout::{format_percent, Hold, Rollout, Step, SHARE_SCALE};
use crate::units::duration::{parse_duration_ms, DurationRange};
use crate::units::timestamp::{format_rfc3339_ms, parse_rfc3339_ms};
use serde_json::Value;

/// The most steps a rollout has: Argo Rollouts and Flagger rollouts have a handful.
pub const MAX_ROLLOUT_STEPS: usize = 100;
/// A step's `over` and `hold`: a second to a year.
const STEP_DURATION: DurationRange = DurationRange {
    min_ms: 1_000,
    max_ms: 365 * 24 * 60 * 60 * 1_000,
    min_text: "1s",
    max_text: "8760h (a year)",
    why_whole_ms: "",
};
/// The hold of a gate: the rollout stays at the step until a push changes it.
const HOLD_UNTIL_CONFIG_CHANGE: &str = "until_config_change";
/// A ramp in more equal steps than this is shown as a linear rollout.
const MAX_RAMP_STEPS_SPELT_OUT: u64 = 10;

impl Checker {
    /// The rollout, named among the route's `configs`; every field is checked even when the
    /// destinations were refused (`destinations` is `None`).
    pub(super) fn rollout(
        &mut self,
        config: &RolloutConfig,
        path: &str,
        configs: Option<&[DestinationConfig]>,
        destinations: Option<&[Destination]>,
    ) -> Option<Rollout> {
        let destination = self.required(
            config.version.as_ref(),
            path,
            "version",
            "the version whose share moves",
            |c, version, path| c.version_of_route(version, path, configs?),
        );
        let start = self.required(
            config.start.as_deref(),
            path,
            "start",
            "an RFC 3339 time such as \"2026-12-01T10:00:00Z\"",
            |c, text, path| c.reported(parse_rfc3339_ms(text), path),
        );
        let steps = self.required(
            config.steps.as_deref(),
            path,
            "steps",
            "a list of steps such as [{ \"share\": 10, \"hold\": \"10m\" }, { \"share\": 100 }]",
            Self::rollout_steps,
        );
        let (destinations, destination) = (destinations?, destination?);
        let others: u64 = destinations
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != destination)
            .map(|(_, d)| u64::from(d.weight))
            .sum();
        if others == 0 {
            self.error(
                path,
                "no other version of the route has weight: nothing would take the rest of the \
                 route, nor the route when the rollout halts; give a stable version a weight",
            );
            return None;
        }
        Some(Rollout {
            destination,
            start_ms: start?,
            steps: steps?,
        })
    }

    /// The index of `version` among the route's `configs`, or an error listing them.
    fn version_of_route(
        &mut self,
        version: &str,
        path: &str,
        configs: &[DestinationConfig],
    ) -> Option<usize> {
        let found = configs
            .iter()
            .position(|destination| destination.version.as_deref() == Some(version));
        if found.is_none() {
            let versions: Vec<&str> = configs
                .iter()
                .filter_map(|d| d.version.as_deref())
                .collect();
            self.error(
                path,
                format!(
                    "expected one of the route's versions ({}), got {version:?}",
                    versions.join(", ")
                ),
            );
        }
        found
    }

    fn rollout_steps(&mut self, configs: &[RolloutStepConfig], path: &str) -> Option<Vec<Step>> {
        if configs.is_empty() || configs.len() > MAX_ROLLOUT_STEPS {
            self.error(
                path,
                format!(
                    "expected 1 to {MAX_ROLLOUT_STEPS} steps, got {}",
                    configs.len()
                ),
            );
            return None;
        }
        let mut steps = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let last = index + 1 == configs.len();
            steps.push(self.rollout_step(config, &format!("{path}[{index}]"), last));
        }
        steps.into_iter().collect()
    }

    fn rollout_step(&mut self, config: &RolloutStepConfig, path: &str, last: bool) -> Option<Step> {
        let share = self.required(
            config.share.as_ref(),
            path,
            "share",
            "a percentage from 0 to 100 with at most four decimals",
            |c, value, path| c.reported(share_millionths(value), path),
        );
        let over_ms = self.optional(config.over.as_deref(), path, "over", |c, text, path| {
            c.reported(parse_duration_ms(text, STEP_DURATION), path)
        });
        let hold = self.optional(config.hold.as_deref(), path, "hold", |c, text, path| {
            if last {
                c.error(
                    path,
                    "the last step holds its share until the config changes; leave hold out",
                );
                return None;
            }
            if text == HOLD_UNTIL_CONFIG_CHANGE {
                return Some(Hold::UntilConfigChange);
            }
            let hold = parse_duration_ms(text, STEP_DURATION).map_err(|message| {
                if message.starts_with("expected") {
                    format!(
                        "expected a duration such as \"10m\" or \"{HOLD_UNTIL_CONFIG_CHANGE}\", \
                         got {text:?}"
                    )
                } else {
                    message
                }
            });
            c.reported(hold, path).map(Hold::For)
        });
        Some(Step {
            share: share?,
            over_ms: over_ms?.unwrap_or(0),
            hold: hold?.unwrap_or(Hold::For(0)),
        })
    }

    /// The old `ramp`: refused, with the `rollout` that does what it did.
    pub(super) fn old_ramp(&mut self, ramp: &Value, path: &str, configs: &[DestinationConfig]) {
        let rollout = equivalent_rollout(ramp, configs).unwrap_or_else(|| {
            let version = ramp.get("version").and_then(Value::as_str).unwrap_or("v2");
            format!(
                "{{ \"version\": {version:?}, \"start\": \"2026-12-01T10:00:00Z\", \"steps\": \
                 [ {{ \"share\": 10, \"hold\": \"10m\" }}, {{ \"share\": 50, \"over\": \"20m\" }}, \
                 {{ \"share\": 100 }} ] }}"
            )
        });
        self.error(
            path,
            format!(
                "\"ramp\" is replaced by \"rollout\", which moves the version's share of the \
                 route in percent while the other versions split the rest by weight; this \
                 ramp as a rollout: \"rollout\": {rollout}"
            ),
        );
    }
}

/// The `rollout` that moves the ramped version's share as the ramp moved its weight: a step
/// per equal step of the ramp, or one linear step (the share then moves linearly, where the
/// weight did). `None` where the ramp does not read as one.
fn equivalent_rollout(ramp: &Value, configs: &[DestinationConfig]) -> Option<String> {
    let version = ramp.get("version")?.as_str()?;
    let from = u64::from(values::weight(ramp.get("from")?).ok()?);
    let to = u64::from(values::weight(ramp.get("to")?).ok()?);
    let start = parse_rfc3339_ms(ramp.get("start")?.as_str()?).ok()?;
    let duration = parse_duration_ms(ramp.get("duration")?.as_str()?, STEP_DURATION).ok()?;
    let steps = match ramp.get("steps") {
        Some(steps) => Some(u64::from(values::integer_in(steps, (1, 1_000_000)).ok()?)),
        None => None,
    };
    let others: u64 = configs
        .iter()
        .filter(|config| config.version.as_deref() != Some(version))
        .filter_map(|config| values::weight(config.weight.as_ref()?).ok())
        .map(u64::from)
        .sum();
    let share = |weight: u64| {
        let total = (weight + others).max(1);
        let millionths = (weight * u64::from(SHARE_SCALE) + total / 2) / total;
        format_percent(u32::try_from(millionths).unwrap_or(SHARE_SCALE))
    };
    let mut written = Vec::new();
    match steps {
        Some(steps) if steps <= MAX_RAMP_STEPS_SPELT_OUT => {
            let hold = duration / steps;
            for step in 0..=steps {
                // As the ramp had it: rounded towards `from`.
                let weight = if to >= from {
                    from + (to - from) * step / steps
                } else {
                    from - (from - to) * step / steps
                };
                written.push(if step == steps {
                    format!("{{ \"share\": {} }}", share(weight))
                } else {
                    format!(
                        "{{ \"share\": {}, \"hold\": \"{}\" }}",
                        share(weight),
                        format_duration(hold)
                    )
                });
            }
        }
        _ => {
            written.push(format!("{{ \"share\": {} }}", share(from)));
            written.push(format!(
                "{{ \"share\": {}, \"over\": \"{}\" }}",
                share(to),
                format_duration(duration)
            ));
        }
    }
    Some(format!(
        "{{ \"version\": {version:?}, \"start\": \"{}\", \"steps\": [ {} ] }}",
        format_rfc3339_ms(start),
        written.join(", ")
    ))
}

/// A duration in the largest unit that writes it whole: `"3m"`, `"90s"`, `"1500ms"`.
fn format_duration(ms: u64) -> String {
    match ms {
        0 => "0s".to_string(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    use crate::config::test_configs::errors_of;
    use crate::plan::Plan;
    use crate::split::rollout::{Hold, Step};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A route `r` with v1 (weight 100) and v2 (the rollout's, no weight), plus `fields`.
    fn route_with(fields: &str) -> String {
        format!(
            r#"{{ "routes": [ {{ "name": "r", {fields}
                 "destinations": [ {{ "version": "v1", "weight": 100 }}, {{ "version": "v2" }} ] }} ] }}"#
        )
    }

    fn compiled(fields: &str) -> Plan {
        compile(route_with(fields).as_bytes()).unwrap()
    }

    fn errors(fields: &str) -> Vec<String> {
        errors_of(&route_with(fields))
    }

    const ISSUE_EXAMPLE: &str = r#""rollout": { "version": "v2", "start": "2026-12-01T10:00:00Z",
        "steps": [ { "share": 1, "hold": "10m" }, { "share": 10, "hold": "10m" },
                   { "share": 50, "over": "20m", "hold": "until_config_change" },
                   { "share": 100 } ] },"#;

    #[test]
    fn the_issue_example_compiles() {
        let plan = compiled(ISSUE_EXAMPLE);
        let route = &plan.routes[0];
        let rollout = route.rollout.as_ref().unwrap();
        assert_eq!(rollout.destination, 1);
        assert_eq!(rollout.start_ms, 1_796_119_200_000);
        assert_eq!(
            rollout.steps,
            [
                Step {
                    share: 10_000,
                    over_ms: 0,
                    hold: Hold::For(600_000)
                },
                Step {
                    share: 100_000,
                    over_ms: 0,
                    hold: Hold::For(600_000)
                },
                Step {
                    share: 500_000,
                    over_ms: 1_200_000,
                    hold: Hold::UntilConfigChange
                },
                Step {
                    share: 1_000_000,
                    over_ms: 0,
                    hold: Hold::For(0)
                },
            ]
        );
        assert_eq!(route.configured_weights(), [100, 0]);
        let fine = compiled(
            r#""rollout": { "version": "v2", "start": "2026-12-01T10:00:00+01:00",
                 "steps": [ { "share": 0.0001 }, { "share": 33.3333, "over": "1h" } ] },"#,
        );
        let steps = &fine.routes[0].rollout.as_ref().unwrap().steps;
        assert_eq!((steps[0].share, steps[1].share), (1, 333_333));
    }

    #[test]
    fn rollout_errors_name_their_field() {
        assert_eq!(
            errors(r#""rollout": {},"#),
            [
                "routes[0].destinations[1].weight: required: an integer from 0 to 1000000",
                "routes[0].rollout.version: required: the version whose share moves",
                "routes[0].rollout.start: required: an RFC 3339 time such as \"2026-12-01T10:00:00Z\"",
                "routes[0].rollout.steps: required: a list of steps such as [{ \"share\": 10, \"hold\": \"10m\" }, { \"share\": 100 }]",
            ]
        );
        assert_eq!(
            errors(
                r#""rollout": { "version": "v3", "start": "2026-12-01", "steps": [
                   { "share": 101, "over": "0.5s", "hold": "forever" },
                   { "share": -1, "hold": "8761h" },
                   { "share": 12.34567 },
                   { "over": "1m", "hold": "until_config_change" } ] },"#
            ),
            [
                "routes[0].destinations[1].weight: required: an integer from 0 to 1000000",
                "routes[0].rollout.version: expected one of the route's versions (v1, v2), got \"v3\"",
                "routes[0].rollout.start: expected an RFC 3339 time such as \"2026-12-01T10:00:00Z\" or \"2026-12-01T11:00:00+01:00\", got \"2026-12-01\"",
                "routes[0].rollout.steps[0].share: expected a percentage from 0 to 100 with at most four decimals, got 101",
                "routes[0].rollout.steps[0].over: \"0.5s\" is shorter than the minimum of 1s",
                "routes[0].rollout.steps[0].hold: expected a duration such as \"10m\" or \"until_config_change\", got \"forever\"",
                "routes[0].rollout.steps[1].share: expected a percentage from 0 to 100 with at most four decimals, got -1",
                "routes[0].rollout.steps[1].hold: \"8761h\" is longer than the maximum of 8760h (a year)",
                "routes[0].rollout.steps[2].share: expected a percentage with at most four decimals, got 12.34567",
                "routes[0].rollout.steps[3].share: required: a percentage from 0 to 100 with at most four decimals",
                "routes[0].rollout.steps[3].hold: the last step holds its share until the config changes; leave hold out",
            ]
        );
        assert_eq!(
            errors(
                r#""rollout": { "version": "v2", "start": "2026-12-01T10:00:00Z", "steps": [] },"#
            ),
            ["routes[0].rollout.steps: expected 1 to 100 steps, got 0"]
        );
        assert_eq!(
            errors(
                r#""rollout": { "version": "v2", "start": "2026-12-01T10:00:00Z", "steps": { "share": 5 } },"#
            ),
            ["routes[0].rollout.steps: expected a list, got an object"]
        );
    }

    #[test]
    fn the_rollout_version_has_no_weight_and_the_others_must_have_some() {
        let with_weight = r#"{ "routes": [ { "name": "r", "rollout": { "version": "v2",
            "start": "2026-12-01T10:00:00Z", "steps": [ { "share": 100 } ] },
            "destinations": [ { "version": "v1", "weight": 1 }, { "version": "v2", "weight": 3 } ] } ] }"#;
        assert_eq!(
            errors_of(with_weight),
            ["routes[0].destinations[1].weight: the rollout sets this version's share; leave weight out"]
        );
        let nothing_else = with_weight
            .replace("\"weight\": 1", "\"weight\": 0")
            .replace(", \"weight\": 3", "");
        assert_eq!(
            errors_of(&nothing_else),
            ["routes[0].rollout: no other version of the route has weight: nothing would take the rest of the route, nor the route when the rollout halts; give a stable version a weight"]
        );
    }

    #[test]
    fn the_old_ramp_is_refused_with_the_rollout_that_replaces_it() {
        let refused = errors(
            r#""ramp": { "version": "v2", "from": 0, "to": 100, "start": "2026-12-01T10:00:00Z",
                 "duration": "30m", "steps": 2 },"#,
        );
        assert_eq!(
            refused,
            [
                r#"routes[0].ramp: "ramp" is replaced by "rollout", which moves the version's share of the route in percent while the other versions split the rest by weight; this ramp as a rollout: "rollout": { "version": "v2", "start": "2026-12-01T10:00:00Z", "steps": [ { "share": 0, "hold": "15m" }, { "share": 33.3333, "hold": "15m" }, { "share": 50 } ] }"#
            ]
        );
        let linear = errors(
            r#""ramp": { "version": "v2", "from": 0, "to": 300, "start": "2026-12-01T10:00:00Z",
                 "duration": "1h" },"#,
        );
        assert!(
            linear[0].ends_with(r#""steps": [ { "share": 0 }, { "share": 75, "over": "1h" } ] }"#),
            "{linear:?}"
        );
        let unreadable = errors(r#""ramp": { "version": "v2" },"#);
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        assert!(
            unreadable[0].contains(r#""rollout": { "version": "v2", "start""#),
            "{unreadable:?}"
        );
    }

    #[test]
    fn a_rollout_and_a_guard_latch_the_rollout_version_until_the_rollout_changes() {
        let latches = |share: u32| {
            let plan = compiled(&format!(
                r#""guard": {{ "max_error_ratio": 0.1, "cooldown": "1m" }},
                   "rollout": {{ "version": "v2", "start": "2026-12-01T10:00:00Z",
                                 "steps": [ {{ "share": {share} }} ] }},"#
            ));
            plan.routes[0].guard.as_ref().unwrap().latches.clone()
        };
        let latched = latches(10);
        assert!(latched[0].is_none() && latched[1].is_some(), "{latched:?}");
        assert_eq!(latched, latches(10));
        assert_ne!(
            latched[1],
            latches(20)[1],
            "a changed rollout releases its version"
        );
    }
}
