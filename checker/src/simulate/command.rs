//! The run: options in, the config's defaults filled in, the simulation, its report out.

use super::chart::draw_png;
use super::options::{parse, HOUR_MS, USAGE};
use super::report::{json, text};
use std::process::ExitCode;
use traffic_split::plan::{PathMatch, Plan};
use traffic_split::sim::{run, Scenario};

/// The clock at the start without `--start` or a ramp: 2026-12-01T10:00:00Z.
const DEFAULT_START_MS: u64 = 1_796_119_200_000;

pub fn run_command(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("traffic-split simulate: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut scenario = options.scenario;
    if let Ok(plan) = traffic_split::config::compile(&scenario.config) {
        if !options.start_given {
            scenario.start_ms = earliest_ramp_start(&plan).unwrap_or(DEFAULT_START_MS);
        }
        if !options.path_given {
            scenario.traffic.path = first_route_path(&plan);
        }
        if !options.method_given {
            scenario.traffic.methods = vec![first_route_method(&plan)];
        }
    }
    if !options.duration_given {
        scenario.duration_ms = long_enough(&scenario);
    }
    let result = match run(&scenario) {
        Ok(result) => result,
        Err(errors) => {
            println!("error: {}: {errors}", options.config.display());
            return ExitCode::from(1);
        }
    };
    if options.json {
        println!("{}", json(&options.config, &scenario, &result));
    } else {
        print!("{}", text(&options.config, &scenario, &result));
    }
    for route in result.routes_without_requests() {
        eprintln!("{}", unreached_warning(&route, &scenario));
    }
    if let Some(png) = &options.png {
        if let Err(message) = draw_png(png, &result) {
            eprintln!("traffic-split simulate: --png: {message}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// The earliest `start` of the config's ramps, so that a ramp is simulated from its start.
fn earliest_ramp_start(plan: &Plan) -> Option<u64> {
    plan.routes
        .iter()
        .filter_map(|route| route.ramp.as_ref())
        .filter_map(|ramp| u64::try_from(ramp.start_ms).ok())
        .min()
}

/// The path requests take by default: the first route's prefix or exact path (a regex's
/// literal start, if that matches), so that a config's first route is reached without
/// `--path`.
fn first_route_path(plan: &Plan) -> String {
    let path = plan
        .routes
        .first()
        .and_then(|route| route.matcher.path.as_ref());
    match path {
        Some(PathMatch::Prefix(path) | PathMatch::Exact(path)) => path.clone(),
        Some(PathMatch::Regex(regex)) if regex.matches(regex.literal_prefix().as_bytes()) => {
            regex.literal_prefix().to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// GET, unless the first route takes only other methods: then its first.
fn first_route_method(plan: &Plan) -> String {
    let methods = plan
        .routes
        .first()
        .map(|route| route.matcher.methods.as_slice())
        .unwrap_or_default();
    match methods.first() {
        Some(first) if !methods.iter().any(|m| m == "GET") => first.clone(),
        _ => "GET".to_owned(),
    }
}

/// An hour, or longer when the scenario has something later to show: the end of a ramp (of
/// the config or a pushed one), a push, a failure window's end; then one period more, so that
/// the last step shows in a row of its own, rounded up to whole periods.
fn long_enough(scenario: &Scenario) -> u64 {
    let after_start = |at_ms: i64| {
        u64::try_from(at_ms)
            .unwrap_or(0)
            .saturating_sub(scenario.start_ms)
    };
    let configs =
        std::iter::once(&scenario.config).chain(scenario.pushes.iter().map(|p| &p.config));
    let ramp_ends = configs
        .filter_map(|config| traffic_split::config::compile(config).ok())
        .flat_map(|plan| {
            plan.routes
                .iter()
                .filter_map(|route| route.ramp.as_ref())
                .map(|ramp| after_start(ramp.end_ms()))
                .collect::<Vec<_>>()
        });
    let pushes = scenario.pushes.iter().map(|push| push.at_ms);
    let windows = scenario
        .behaviours
        .iter()
        .flat_map(|b| [b.from_ms, b.until_ms])
        .filter(|ms| *ms != u64::MAX);
    let last = ramp_ends.chain(pushes).chain(windows).max().unwrap_or(0);
    let period = scenario.period_ms.max(1);
    let wanted = last.saturating_add(period).max(HOUR_MS);
    wanted.div_ceil(period).saturating_mul(period)
}

/// The warning for a route no request reached, with the requests it was sent and how to
/// change them.
fn unreached_warning(route: &str, scenario: &Scenario) -> String {
    let traffic = &scenario.traffic;
    let headers: String = traffic
        .headers
        .iter()
        .map(|(name, value)| format!(", {name}: {value}"))
        .collect();
    format!(
        "warning: route {route:?} got no request: it matches none of the requests sent \
         ({} {}, :authority {}{headers}); reach it with --path, --method, --header or --authority",
        traffic.methods.join(","),
        traffic.path,
        traffic.authority
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_split::config::compile;
    use traffic_split::sim::Push;

    fn plan(routes: &str) -> Plan {
        compile(format!(r#"{{ "routes": [ {routes} ] }}"#).as_bytes()).unwrap()
    }

    fn route(name: &str, matcher: &str) -> String {
        format!(
            r#"{{ "name": "{name}", "match": {matcher},
                 "destinations": [ {{ "version": "v1", "weight": 1 }} ] }}"#
        )
    }

    #[test]
    fn requests_take_the_first_routes_path_and_a_method_it_takes() {
        let prefixed = plan(&route(
            "a",
            r#"{ "prefix": "/api", "methods": ["POST", "PUT"] }"#,
        ));
        assert_eq!(first_route_path(&prefixed), "/api");
        assert_eq!(first_route_method(&prefixed), "POST");
        let exact = plan(&route(
            "a",
            r#"{ "exact": "/health", "methods": ["HEAD", "GET"] }"#,
        ));
        assert_eq!(first_route_path(&exact), "/health");
        assert_eq!(first_route_method(&exact), "GET");
        let regex = plan(&route("a", r#"{ "regex": "/v[0-9]+/items" }"#));
        assert_eq!(
            first_route_path(&regex),
            "/",
            "its literal start /v does not match"
        );
        let regex = plan(&route("a", r#"{ "regex": "/api.*" }"#));
        assert_eq!(first_route_path(&regex), "/api");
        let any = plan(&route("a", "{}"));
        assert_eq!(
            (first_route_path(&any), first_route_method(&any)),
            ("/".to_owned(), "GET".to_owned())
        );
    }

    #[test]
    fn a_run_lasts_past_the_last_ramp_push_or_window_by_a_period() {
        let ramp = |start: &str, duration: &str| {
            format!(
                r#"{{ "routes": [ {{ "name": "r",
                     "ramp": {{ "version": "v2", "from": 0, "to": 10, "start": "{start}", "duration": "{duration}" }},
                     "destinations": [ {{ "version": "v1", "weight": 1 }}, {{ "version": "v2" }} ] }} ] }}"#
            )
        };
        let mut scenario = Scenario::new(ramp("2026-12-01T10:00:00Z", "90m").as_bytes());
        scenario.start_ms = DEFAULT_START_MS;
        scenario.period_ms = 60_000;
        assert_eq!(long_enough(&scenario), 91 * 60_000);
        scenario.period_ms = 7 * 60_000;
        assert_eq!(long_enough(&scenario), 14 * 7 * 60_000, "whole periods");
        scenario.period_ms = 60_000;
        scenario.pushes.push(Push {
            at_ms: 100 * 60_000,
            config: ramp("2026-12-01T12:00:00Z", "1h").into_bytes(),
        });
        assert_eq!(
            long_enough(&scenario),
            181 * 60_000,
            "the pushed ramp's end"
        );
        let short = Scenario::new(ramp("2026-12-01T10:00:00Z", "5m").as_bytes());
        assert_eq!(long_enough(&short), HOUR_MS, "at least an hour");
    }
}
