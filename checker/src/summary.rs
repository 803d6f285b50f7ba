//! One line per route of a compiled plan: what it matches, and for each version its weight,
//! its share of the route's traffic, the cluster written for it and its deadline; then how
//! the route is sticky or overridden, and a ramp's schedule, step by step.

use traffic_split::plan::{
    Destination, HeaderRule, PathMatch, Plan, Route, RouteMatch, Sticky, StickyKey,
};
use traffic_split::split::guard::{Guard, UNTIL_CONFIG_CHANGE};
use traffic_split::split::ramp::Ramp;
use traffic_split::units::timestamp::format_rfc3339_ms;

/// A ramp's schedule is printed whole up to this many lines; a longer one, its first and last
/// `SCHEDULE_ENDS` steps.
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
        if let Some(ramp) = &route.ramp {
            lines.extend(describe_ramp(route, ramp));
        }
    }
    lines
}

/// What a trip does on this route: how long it keeps a version out, and whether it latches
/// (a ramp with a guard is a rollout, halted by a trip of its version).
fn describe_guard(route: &Route, guard: &Guard) -> String {
    let version = |index: usize| {
        route
            .destinations
            .get(index)
            .map_or("?", |destination| destination.version.as_str())
    };
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
    match &route.ramp {
        Some(ramp) if guard.cooldown_ms != UNTIL_CONFIG_CHANGE => line.push_str(&format!(
            "; a trip of {} halts this rollout until the config changes; a trip of another version keeps it out {until}",
            version(ramp.destination)
        )),
        Some(ramp) => line.push_str(&format!(
            "; a trip of {} halts this rollout until the config changes, as a trip of any version keeps it out {until}",
            version(ramp.destination)
        )),
        None => line.push_str(&format!("; a trip keeps a version out {until}")),
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
            describe_destination(destination, total, route.ramp.as_ref(), index)
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

/// The ramp's heading, and a line per step: when it starts, the ramped version's weight and
/// its share of the route from then on.
fn describe_ramp(route: &Route, ramp: &Ramp) -> Vec<String> {
    let version = route
        .destinations
        .get(ramp.destination)
        .map_or("?", |destination| destination.version.as_str());
    let others: u64 = route
        .destinations
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != ramp.destination)
        .map(|(_, destination)| u64::from(destination.weight))
        .sum();
    let how = match ramp.steps {
        Some(1) => "in 1 step".to_string(),
        Some(steps) => format!("in {steps} equal steps"),
        None => "linearly (shown at each quarter)".to_string(),
    };
    let mut lines = vec![format!(
        "  ramp of {version}: weight {} -> {} over {} from {} to {}, {how}:",
        ramp.from,
        ramp.to,
        describe_millis(ramp.duration_ms),
        format_rfc3339_ms(ramp.start_ms),
        format_rfc3339_ms(ramp.end_ms()),
    )];
    let schedule = ramp.schedule();
    let step_line = |(at, weight): &(i64, u32)| {
        format!(
            "    {}  {version} weight {weight} ({})",
            format_rfc3339_ms(*at),
            share(*weight, others + u64::from(*weight))
        )
    };
    if schedule.len() <= MAX_SCHEDULE_LINES {
        lines.extend(schedule.iter().map(step_line));
    } else {
        lines.extend(schedule.iter().take(SCHEDULE_ENDS).map(step_line));
        lines.push(format!(
            "    ... {} more steps ...",
            schedule.len() - 2 * SCHEDULE_ENDS
        ));
        lines.extend(
            schedule
                .iter()
                .skip(schedule.len() - SCHEDULE_ENDS)
                .map(step_line),
        );
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

/// A ramped route's shares change with time: its schedule shows them, its line does not.
fn describe_destination(
    destination: &Destination,
    total_weight: u64,
    ramp: Option<&Ramp>,
    index: usize,
) -> String {
    let weight = match ramp {
        Some(ramp) if ramp.destination == index => format!(
            "{} weight {} -> {} (ramp)",
            destination.version, ramp.from, ramp.to
        ),
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
    fn sticky_override_and_a_ramps_schedule_are_described() {
        let plan = plan(
            r#"{"routes": [{"name": "hello", "override_header": "x-canary-version",
                "sticky": {"cookie": "session", "set_cookie": {"max_age": "24h"}},
                "ramp": {"version": "v2", "from": 0, "to": 50, "start": "2026-12-01T11:00:00+01:00",
                         "duration": "30m", "steps": 5},
                "destinations": [{"version": "v1", "weight": 50}, {"version": "v2"}]}]}"#,
        );
        assert_eq!(
            describe_plan(&plan),
            [
                "writes x-split-version",
                "route hello [any request]: v1 weight 50, no deadline | \
                 v2 weight 0 -> 50 (ramp), no deadline; \
                 sticky by cookie session, set when missing (Path=/; Max-Age=86400; HttpOnly; SameSite=Lax); \
                 override by header x-canary-version",
                "  ramp of v2: weight 0 -> 50 over 30m from 2026-12-01T10:00:00Z to 2026-12-01T10:30:00Z, in 5 equal steps:",
                "    2026-12-01T10:00:00Z  v2 weight 0 (0%)",
                "    2026-12-01T10:06:00Z  v2 weight 10 (16.7%)",
                "    2026-12-01T10:12:00Z  v2 weight 20 (28.6%)",
                "    2026-12-01T10:18:00Z  v2 weight 30 (37.5%)",
                "    2026-12-01T10:24:00Z  v2 weight 40 (44.4%)",
                "    2026-12-01T10:30:00Z  v2 weight 50 (50%)",
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
        let ramp = r#""ramp": {"version": "v2", "from": 0, "to": 100, "start": "2026-12-01T10:00:00Z", "duration": "1h"},"#;
        assert_eq!(
            guarded(ramp, "2m"),
            "  guard: out above 5% errors of at least 20 requests in 30s; a trip of v2 halts this rollout until the config changes; a trip of another version keeps it out for 2m, probed with 1% of the route"
        );
    }

    #[test]
    fn long_and_linear_ramps_are_shortened() {
        let stepped = plan(
            r#"{"routes": [{"name": "r", "sticky": {"header": "x-user"},
                "ramp": {"version": "v2", "from": 100, "to": 0, "start": "2026-12-01T10:00:00Z",
                         "duration": "100s", "steps": 100},
                "destinations": [{"version": "v1", "weight": 100}, {"version": "v2"}]}]}"#,
        );
        let lines = describe_plan(&stepped);
        assert!(
            lines[1].ends_with("; sticky by header x-user"),
            "{}",
            lines[1]
        );
        assert_eq!(lines.len(), 2 + 1 + 10 + 1 + 10, "{lines:#?}");
        assert_eq!(lines[13], "    ... 81 more steps ...");
        assert_eq!(lines[23], "    2026-12-01T10:01:40Z  v2 weight 0 (0%)");
        let linear = plan(
            r#"{"routes": [{"name": "r",
                "ramp": {"version": "v2", "from": 0, "to": 1000, "start": "2026-12-01T10:00:00Z", "duration": "1h"},
                "destinations": [{"version": "v1", "weight": 1000}, {"version": "v2"}]}]}"#,
        );
        let lines = describe_plan(&linear);
        assert_eq!(
            lines[2],
            "  ramp of v2: weight 0 -> 1000 over 1h from 2026-12-01T10:00:00Z to 2026-12-01T11:00:00Z, linearly (shown at each quarter):"
        );
        assert_eq!(lines[4], "    2026-12-01T10:15:00Z  v2 weight 250 (20%)");
        assert_eq!(lines.len(), 3 + 5);
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
