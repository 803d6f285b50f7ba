//! One line per route of a compiled plan: what it matches, and for each version its weight,
//! its share of the route's traffic, the cluster written for it and its deadline; then how
//! the route is sticky or overridden, what its guard does, and a rollout's schedule, step by
//! step, in percent of the route.

use traffic_split::plan::{
    Destination, HeaderRule, PathMatch, Plan, Route, RouteMatch, Sticky, StickyKey,
};
use traffic_split::split::guard::{Guard, UNTIL_CONFIG_CHANGE};
use traffic_split::split::rollout::{format_percent, Hold, Rollout, SHARE_SCALE};
use traffic_split::units::timestamp::format_rfc3339_ms;

/// A rollout's schedule is printed whole up to this many lines; a longer one, its first and
/// last `SCHEDULE_ENDS` steps.
const MAX_SCHEDULE_LINES: usize = 21;
const SCHEDULE_ENDS: usize = 10;

/// The lines that describe a plan: the headers it writes, then each route's lines.
pub fn describe_plan(plan: &Plan) -> Vec<String> {
    let names_a_cluster = plan
        .routes
        .iter()
        .flat_map(|route| &route.destinations)
        .any(|destination| destination.cluster.is_some());
    // The filter writes the cluster header only for a destination that names a cluster; it
    // removes a client's in any case.
    let mut lines = vec![if names_a_cluster {
        format!("writes {} and {}", plan.version_header, plan.cluster_header)
    } else {
        format!("writes {}", plan.version_header)
    }];
    for route in &plan.routes {
        lines.push(describe_route(route));
        if let Some(guard) = &route.guard {
            lines.push(describe_guard(route, guard));
        }
        if let Some(rollout) = &route.rollout {
            lines.extend(describe_rollout(route, rollout));
        }
    }
    lines
}

/// The version of a destination, by index.
fn version_of(route: &Route, index: usize) -> &str {
    route
        .destinations
        .get(index)
        .map_or("?", |destination| destination.version.as_str())
}

/// The versions other than a rollout's with a configured weight above 0.
fn weighted_versions(route: &Route) -> Vec<&str> {
    let rollout = route.rollout.as_ref().map(|rollout| rollout.destination);
    route
        .destinations
        .iter()
        .enumerate()
        .filter(|(index, destination)| Some(*index) != rollout && destination.weight > 0)
        .map(|(_, destination)| destination.version.as_str())
        .collect()
}

/// What a trip does on this route: how long it keeps a version out, whether it latches (a
/// trip of a rollout's version halts it), and where no other version could take the traffic.
fn describe_guard(route: &Route, guard: &Guard) -> String {
    let until = if guard.cooldown_ms == UNTIL_CONFIG_CHANGE {
        "until the config changes".to_owned()
    } else {
        format!("for {}", describe_millis(guard.cooldown_ms))
    };
    let mut line = format!(
        "  guard: out above {}% errors of at least {} requests in {}",
        guard.max_error_ratio * 100.0,
        guard.min_requests,
        describe_millis(guard.window_ms)
    );
    let stable = weighted_versions(route);
    match &route.rollout {
        Some(rollout) => {
            let version = version_of(route, rollout.destination);
            let keeps = if guard.probe_basis_points > 0 {
                format!("{version} keeps at most its probe share")
            } else {
                format!("{version} gets 0%")
            };
            let take = if stable.len() == 1 { "takes" } else { "take" };
            line.push_str(&format!(
                "; a trip of {version} halts this rollout at any step, 100% too, until a push \
                 changes the rollout: {keeps} and {} {take} the route",
                stable.join(", ")
            ));
            if guard.cooldown_ms == UNTIL_CONFIG_CHANGE {
                line.push_str(&format!(", as a trip of any version keeps it out {until}"));
            } else {
                line.push_str(&format!("; a trip of another version keeps it out {until}"));
            }
            if let [only] = stable[..] {
                line.push_str(&format!(
                    "; while {version} has 0% no other version could take {only}'s traffic: \
                     a trip of {only} is held then"
                ));
            }
        }
        None => {
            line.push_str(&format!("; a trip keeps a version out {until}"));
            if let [only] = stable[..] {
                line.push_str(&format!(
                    "; no other version could take {only}'s traffic: a trip of {only} is held"
                ));
            }
        }
    }
    if guard.probe_basis_points > 0 {
        line.push_str(&format!(
            ", probed with {}% of the route",
            f64::from(guard.probe_basis_points) / 100.0
        ));
    }
    line
}

/// `route hello [GET, prefix /hello]: v1 weight 70 (70%), cluster springbootapp-v1, ...`,
/// then `; sticky by ...` and `; override by ...` when the route has them.
pub fn describe_route(route: &Route) -> String {
    let total: u64 = route.destinations.iter().map(|d| u64::from(d.weight)).sum();
    let destinations: Vec<String> = route
        .destinations
        .iter()
        .enumerate()
        .map(|(index, destination)| {
            describe_destination(destination, total, route.rollout.as_ref(), index)
        })
        .collect();
    let mut line = format!(
        "route {} [{}]: {}",
        route.name,
        describe_match(&route.matcher),
        destinations.join(" | ")
    );
    if let Some(sticky) = &route.sticky {
        line.push_str(&format!("; {}", describe_sticky(sticky)));
    }
    if let Some(header) = &route.override_header {
        line.push_str(&format!("; override by header {header}"));
    }
    line
}

fn describe_sticky(sticky: &Sticky) -> String {
    match &sticky.key {
        StickyKey::Header(name) => format!("sticky by header {name}"),
        StickyKey::Cookie(name) => match &sticky.set_cookie {
            Some(set_cookie) => format!(
                "sticky by cookie {name}, set when missing ({})",
                set_cookie.after_key.trim_start_matches("; ")
            ),
            None => format!("sticky by cookie {name}"),
        },
    }
}

/// The rollout's heading, and a line per step: when it starts, the rollout version's share,
/// how it gets there and how long it holds it, and what the other versions have meanwhile.
fn describe_rollout(route: &Route, rollout: &Rollout) -> Vec<String> {
    let version = version_of(route, rollout.destination);
    let others: Vec<(&str, u64)> = route
        .destinations
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != rollout.destination)
        .map(|(_, destination)| (destination.version.as_str(), u64::from(destination.weight)))
        .collect();
    let others_total: u64 = others.iter().map(|(_, weight)| weight).sum::<u64>().max(1);
    let rest = |share: u32| {
        let rest = u64::from(SHARE_SCALE - share.min(SHARE_SCALE));
        let parts: Vec<String> = others
            .iter()
            .map(|(other, weight)| {
                let millionths = rest * weight / others_total;
                format!(
                    "{other} {}%",
                    format_percent(u32::try_from(millionths).unwrap_or(0))
                )
            })
            .collect();
        parts.join(", ")
    };
    let mut lines = vec![format!(
        "  rollout of {version} from {}, in percent of the route (the other versions split the rest by weight):",
        format_rfc3339_ms(rollout.start_ms)
    )];
    let times = rollout.step_times();
    let mut step_lines = Vec::with_capacity(rollout.steps.len());
    let mut before = 0;
    for (index, step) in rollout.steps.iter().enumerate() {
        let when = times.get(index).map_or_else(
            || format!("{:<20}", "after the gate opens"),
            |times| format_rfc3339_ms(times.starts_ms),
        );
        let share = format_percent(step.share);
        let how = if step.over_ms > 0 {
            format!(
                "{version} {}% -> {share}% over {}",
                format_percent(before),
                describe_millis(step.over_ms)
            )
        } else {
            format!("{version} {share}%")
        };
        let hold = match step.hold {
            _ if index + 1 == rollout.steps.len() => "for good".to_string(),
            Hold::UntilConfigChange => "held until a push changes the rollout (a gate)".to_string(),
            Hold::For(0) => "then the next step".to_string(),
            Hold::For(ms) => format!("held {}", describe_millis(ms)),
        };
        step_lines.push(format!(
            "    {when}  step {}: {how}, {hold} ({})",
            index + 1,
            rest(step.share)
        ));
        before = step.share;
    }
    if step_lines.len() <= MAX_SCHEDULE_LINES {
        lines.extend(step_lines);
    } else {
        let skipped = step_lines.len() - 2 * SCHEDULE_ENDS;
        lines.extend(step_lines.iter().take(SCHEDULE_ENDS).cloned());
        lines.push(format!("    ... {skipped} more steps ..."));
        lines.extend(step_lines.into_iter().skip(SCHEDULE_ENDS + skipped));
    }
    lines
}

/// A duration in the largest unit that divides it: `30m`, `90s`, `1500ms`.
fn describe_millis(millis: u64) -> String {
    match millis {
        0 => "0s".to_string(),
        _ if millis.is_multiple_of(3_600_000) => format!("{}h", millis / 3_600_000),
        _ if millis.is_multiple_of(60_000) => format!("{}m", millis / 60_000),
        _ if millis.is_multiple_of(1_000) => format!("{}s", millis / 1_000),
        _ => format!("{millis}ms"),
    }
}

/// A rollout's shares change with time: its schedule shows them, its line does not.
fn describe_destination(
    destination: &Destination,
    total_weight: u64,
    rollout: Option<&Rollout>,
    index: usize,
) -> String {
    let weight = match rollout {
        Some(rollout) if rollout.destination == index => {
            format!("{} rollout (below)", destination.version)
        }
        Some(_) => format!("{} weight {}", destination.version, destination.weight),
        None => format!(
            "{} weight {} ({})",
            destination.version,
            destination.weight,
            share(destination.weight, total_weight)
        ),
    };
    let mut parts = vec![weight];
    if let Some(cluster) = &destination.cluster {
        parts.push(format!("cluster {cluster}"));
    }
    parts.push(match destination.deadline_ms {
        Some(ms) => format!("deadline {ms}ms"),
        None => "no deadline".to_string(),
    });
    parts.join(", ")
}

/// A weight as a percentage of the route's total, to one decimal: `70%`, `33.3%`.
/// A weight as a percentage of the route's total, to one decimal (`70%`, `33.3%`), or to as
/// many as it takes, up to six, to tell a small weight from none and a large one from all
/// (`0.0001%`, `99.9999%` for 1 against 999,999).
fn share(weight: u32, total_weight: u64) -> String {
    if total_weight == 0 {
        return "0%".to_string();
    }
    let percent = f64::from(weight) * 100.0 / total_weight as f64;
    let is_part = weight > 0 && u64::from(weight) < total_weight;
    let mut text = String::new();
    for decimals in 1..=6 {
        text = format!("{percent:.decimals$}");
        let rounded: f64 = text.parse().unwrap_or(percent);
        if !is_part || (rounded > 0.0 && rounded < 100.0) {
            break;
        }
    }
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}%")
}

/// `GET|POST, prefix /hello, x-env = "prod"`, or `any request`.
pub fn describe_match(matcher: &RouteMatch) -> String {
    let mut parts = Vec::new();
    if !matcher.methods.is_empty() {
        parts.push(matcher.methods.join("|"));
    }
    match &matcher.path {
        Some(PathMatch::Prefix(prefix)) => parts.push(format!("prefix {prefix}")),
        Some(PathMatch::Exact(exact)) => parts.push(format!("path {exact}")),
        Some(PathMatch::Regex(regex)) => {
            parts.push(format!("path regex {:?}", unanchored(regex.as_str())))
        }
        None => {}
    }
    for header in &matcher.headers {
        parts.push(match &header.rule {
            HeaderRule::Exact(value) => format!("{} = {value:?}", header.name),
            HeaderRule::Prefix(value) => format!("{} prefix {value:?}", header.name),
            HeaderRule::Regex(regex) => {
                format!("{} regex {:?}", header.name, unanchored(regex.as_str()))
            }
            HeaderRule::Present => format!("{} present", header.name),
        });
    }
    if parts.is_empty() {
        "any request".to_string()
    } else {
        parts.join(", ")
    }
}

/// The pattern as the user wrote it: the compiler anchors it as `^(?:pattern)$`.
fn unanchored(pattern: &str) -> &str {
    pattern
        .strip_prefix("^(?:")
        .and_then(|rest| rest.strip_suffix(")$"))
        .unwrap_or(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_split::config::compile;

    fn plan(json: &str) -> Plan {
        compile(json.as_bytes()).expect("a valid config")
    }

    #[test]
    fn route_line_names_match_weights_shares_clusters_and_deadlines() {
        let plan = plan(
            r#"{"routes": [{"name": "hello", "timeout": "2ms",
                "match": {"prefix": "/hello", "methods": ["GET"]},
                "destinations": [
                  {"version": "v1", "cluster": "springbootapp-v1", "weight": 70},
                  {"version": "v2", "weight": 30, "timeout": "5s"}]}]}"#,
        );
        assert_eq!(
            describe_plan(&plan),
            [
                "writes x-split-version and x-split-cluster",
                "route hello [GET, prefix /hello]: \
                 v1 weight 70 (70%), cluster springbootapp-v1, deadline 2ms | \
                 v2 weight 30 (30%), deadline 5000ms",
            ]
        );
    }

    #[test]
    fn a_config_that_names_no_cluster_writes_only_the_version_header() {
        let plan = plan(
            r#"{"routes": [{"name": "hello", "destinations": [
                  {"version": "v1", "weight": 1}, {"version": "v2", "weight": 1}]}]}"#,
        );
        assert_eq!(describe_plan(&plan)[0], "writes x-split-version");
    }

    #[test]
    fn shares_are_rounded_to_one_decimal() {
        let plan = plan(
            r#"{"routes": [{"name": "thirds", "destinations": [
                {"version": "a", "weight": 1}, {"version": "b", "weight": 2},
                {"version": "c", "weight": 0}]}]}"#,
        );
        assert_eq!(
            describe_route(&plan.routes[0]),
            "route thirds [any request]: a weight 1 (33.3%), no deadline | \
             b weight 2 (66.7%), no deadline | c weight 0 (0%), no deadline"
        );
    }

    #[test]
    fn sticky_override_and_a_rollouts_schedule_are_described() {
        let plan = plan(
            r#"{"routes": [{"name": "hello", "override_header": "x-canary-version",
                "sticky": {"cookie": "session", "set_cookie": {"max_age": "24h"}},
                "rollout": {"version": "v2", "start": "2026-12-01T11:00:00+01:00", "steps": [
                    {"share": 1, "hold": "10m"}, {"share": 10, "hold": "10m"},
                    {"share": 50, "over": "20m", "hold": "until_config_change"},
                    {"share": 100}]},
                "destinations": [{"version": "v1", "weight": 3}, {"version": "v2"},
                                 {"version": "v3", "weight": 1}]}]}"#,
        );
        assert_eq!(
            describe_plan(&plan),
            [
                "writes x-split-version",
                "route hello [any request]: v1 weight 3, no deadline | \
                 v2 rollout (below), no deadline | v3 weight 1, no deadline; \
                 sticky by cookie session, set when missing (Path=/; Max-Age=86400; HttpOnly; SameSite=Lax); \
                 override by header x-canary-version",
                "  rollout of v2 from 2026-12-01T10:00:00Z, in percent of the route (the other versions split the rest by weight):",
                "    2026-12-01T10:00:00Z  step 1: v2 1%, held 10m (v1 74.25%, v3 24.75%)",
                "    2026-12-01T10:10:00Z  step 2: v2 10%, held 10m (v1 67.5%, v3 22.5%)",
                "    2026-12-01T10:20:00Z  step 3: v2 10% -> 50% over 20m, held until a push changes the rollout (a gate) (v1 37.5%, v3 12.5%)",
                "    after the gate opens  step 4: v2 100%, for good (v1 0%, v3 0%)",
            ]
        );
    }

    #[test]
    fn a_guard_says_how_long_a_trip_keeps_a_version_out_and_when_it_halts_a_rollout() {
        let guarded = |extra: &str, cooldown: &str| {
            let plan = plan(&format!(
                r#"{{"routes": [{{"name": "r", {extra}
                    "guard": {{"max_error_ratio": 0.05, "cooldown": "{cooldown}", "probe_percent": 1}},
                    "destinations": [{{"version": "v1", "weight": 100}}, {{"version": "v2"{}}}]}}]}}"#,
                if extra.is_empty() {
                    r#", "weight": 10"#
                } else {
                    ""
                }
            ));
            describe_plan(&plan)[2].clone()
        };
        assert_eq!(
            guarded("", "2m"),
            "  guard: out above 5% errors of at least 20 requests in 30s; a trip keeps a version out for 2m, probed with 1% of the route"
        );
        assert_eq!(
            guarded("", "until_config_change"),
            "  guard: out above 5% errors of at least 20 requests in 30s; a trip keeps a version out until the config changes, probed with 1% of the route"
        );
        let rollout = r#""rollout": {"version": "v2", "start": "2026-12-01T10:00:00Z", "steps": [{"share": 100, "over": "1h"}]},"#;
        assert_eq!(
            guarded(rollout, "2m"),
            "  guard: out above 5% errors of at least 20 requests in 30s; a trip of v2 halts this rollout at any step, 100% too, until a push changes the rollout: v2 keeps at most its probe share and v1 takes the route; a trip of another version keeps it out for 2m; while v2 has 0% no other version could take v1's traffic: a trip of v1 is held then, probed with 1% of the route"
        );
    }

    #[test]
    fn long_rollouts_are_shortened() {
        let steps: Vec<String> = (1..=30)
            .map(|step| format!(r#"{{"share": {step}, "hold": "1m"}}"#))
            .chain([r#"{"share": 100}"#.to_string()])
            .collect();
        let long = plan(&format!(
            r#"{{"routes": [{{"name": "r", "sticky": {{"header": "x-user"}},
                "rollout": {{"version": "v2", "start": "2026-12-01T10:00:00Z", "steps": [{}]}},
                "destinations": [{{"version": "v1", "weight": 100}}, {{"version": "v2"}}]}}]}}"#,
            steps.join(", ")
        ));
        let lines = describe_plan(&long);
        assert!(
            lines[1].ends_with("; sticky by header x-user"),
            "{}",
            lines[1]
        );
        assert_eq!(lines.len(), 2 + 1 + 10 + 1 + 10, "{lines:#?}");
        assert_eq!(lines[13], "    ... 11 more steps ...");
        assert_eq!(
            lines[23],
            "    2026-12-01T10:30:00Z  step 31: v2 100%, for good (v1 0%)"
        );
    }

    #[test]
    fn a_share_of_one_in_a_million_is_not_rounded_away() {
        assert_eq!(share(1, 1_000_000), "0.0001%");
        assert_eq!(share(999_999, 1_000_000), "99.9999%");
        assert_eq!(share(1, 10_000), "0.01%");
        assert_eq!(share(1, 3), "33.3%");
        assert_eq!(share(0, 3), "0%");
        assert_eq!(share(3, 3), "100%");
        assert_eq!(share(995, 1000), "99.5%");
        assert_eq!(share(1, 2), "50%");
    }

    #[test]
    fn header_and_regex_matches_read_as_written() {
        let plan = plan(
            r#"{"routes": [{"name": "r",
                "match": {"regex": "/hello/[0-9]+", "headers": [
                  {"name": "X-Env", "exact": "prod"},
                  {"name": ":authority", "prefix": "springbootapp"},
                  {"name": "x-canary", "regex": "yes|true"},
                  {"name": "x-debug", "present": true}]},
                "destinations": [{"version": "v2", "weight": 1}]}]}"#,
        );
        assert_eq!(
            describe_match(&plan.routes[0].matcher),
            "path regex \"/hello/[0-9]+\", x-env = \"prod\", \
             :authority prefix \"springbootapp\", x-canary regex \"yes|true\", x-debug present"
        );
    }
}
