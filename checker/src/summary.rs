//! One line per route of a compiled plan: what it matches, and for each version its weight,
//! its share of the route's traffic, the cluster written for it and its deadline.

use traffic_split::plan::{Destination, HeaderRule, PathMatch, Plan, Route, RouteMatch};

/// The lines that describe a plan: the headers it writes, then one line per route.
pub fn describe_plan(plan: &Plan) -> Vec<String> {
    let mut lines = vec![format!(
        "writes {} and {}",
        plan.version_header, plan.cluster_header
    )];
    lines.extend(plan.routes.iter().map(describe_route));
    lines
}

/// `route hello [GET, prefix /hello]: v1 weight 70 (70%), cluster springbootapp-v1, ...`
pub fn describe_route(route: &Route) -> String {
    let total: u64 = route.destinations.iter().map(|d| u64::from(d.weight)).sum();
    let destinations: Vec<String> = route
        .destinations
        .iter()
        .map(|destination| describe_destination(destination, total))
        .collect();
    format!(
        "route {} [{}]: {}",
        route.name,
        describe_match(&route.matcher),
        destinations.join(" | ")
    )
}

fn describe_destination(destination: &Destination, total_weight: u64) -> String {
    let mut parts = vec![format!(
        "{} weight {} ({})",
        destination.version,
        destination.weight,
        share(destination.weight, total_weight)
    )];
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
fn share(weight: u32, total_weight: u64) -> String {
    if total_weight == 0 {
        return "0%".to_string();
    }
    let percent = f64::from(weight) * 100.0 / total_weight as f64;
    let text = format!("{percent:.1}");
    format!("{}%", text.strip_suffix(".0").unwrap_or(&text))
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
