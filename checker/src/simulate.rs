//! `traffic-split simulate CONFIG`: what a config will do over time, before it reaches a mesh.
//! It runs the filter's own core in virtual time ([`traffic_split::sim`]), behind a model of
//! Envoy's router (deadlines, retries), under the traffic, failures and pushes given on the
//! command line, and prints per period the weights in force, shares, errors, timeouts,
//! retries, trips, returns and probes (`--json` for the same as JSON, `--png` for a chart drawn
//! by gnuplot). It warns of a route no request reached.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use traffic_split::plan::{PathMatch, Plan};
use traffic_split::sim::{run, Behaviour, Push, Row, Run, Scenario};
use traffic_split::units::duration::{parse_duration_ms, DurationRange};
use traffic_split::units::timestamp::{format_rfc3339_ms, parse_rfc3339_ms};

const USAGE: &str = "\
usage: traffic-split simulate CONFIG [OPTIONS]

Runs the filter's own core over virtual time on CONFIG (a plugin config, JSON), behind a
model of Envoy's router (deadlines, retries), and prints, per period, each route's versions:
weight in force, share, errors, timeouts, retries, trips, returns, probes.

  --rate N/s              requests per second (also N/m), evenly spaced (default 100/s)
  --for DURATION          how long to simulate (default: 1h, or past the end of the last
                          ramp, push or failure window, by one period)
  --workers N             Envoy workers, each with its own state (default 2)
  --every DURATION        the length of a printed period (default 1m)
  --start TIME            the clock at the start, RFC 3339 (default: the earliest ramp's
                          start, else 2026-12-01T10:00:00Z)
  --fail V=P%[@FROM..TO]  version V answers P% of its requests 503 (from/to: durations
                          from the start; either may be left out)
  --reset V=P%[@FROM..TO] version V resets P% of its requests without a response
  --latency V=D[@FROM..TO] version V answers after D
  --push FILE@TIME        push another config at TIME after the start
  --path PATH             the requests' path (default: the first route's prefix or path,
                          else /)
  --authority HOST        the requests' :authority (default service)
  --method M[,M...]       the requests' methods, drawn at random (default: GET, or the first
                          route's first method if it takes no GET)
  --header NAME=VALUE     a header every request carries (repeatable)
  --sticky HEADER=N       send a sticky key in HEADER, one of N keys drawn at random
  --conflicts P%          the share of merges another worker's merge lands in (default 0%)
  --seed N                the seed; the same seed gives the same run (default 1)
  --json                  print the periods and the guard's events as JSON
  --png FILE              also draw shares and error ratios over time (needs gnuplot)";

const DEFAULT_START_MS: u64 = 1_796_119_200_000;
const HOUR_MS: u64 = 3_600_000;

/// A duration on the command line: 0 to a year.
const ANY_DURATION: DurationRange = DurationRange {
    min_ms: 0,
    max_ms: 366 * 24 * 3_600_000,
    min_text: "0s",
    max_text: "366 days",
    why_whole_ms: "",
};

struct Options {
    config: PathBuf,
    scenario: Scenario,
    /// Which of `--start`, `--for`, `--path`, `--method` were given.
    start_given: bool,
    duration_given: bool,
    path_given: bool,
    method_given: bool,
    json: bool,
    png: Option<PathBuf>,
}

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

fn parse(args: &[String]) -> Result<Options, String> {
    let mut config = None;
    let mut scenario = Scenario::new(b"");
    scenario.duration_ms = HOUR_MS;
    scenario.keep_requests = false;
    let mut start_given = false;
    let mut duration_given = false;
    let mut path_given = false;
    let mut method_given = false;
    let mut json = false;
    let mut png = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--rate" => scenario.traffic.rate_per_s = rate(value("--rate")?)?,
            "--for" => {
                scenario.duration_ms = duration(value("--for")?)?;
                duration_given = true;
            }
            "--every" => scenario.period_ms = duration(value("--every")?)?.max(1),
            "--workers" => {
                scenario.workers = number(value("--workers")?)?.clamp(1, 64) as usize;
            }
            "--seed" => scenario.seed = number(value("--seed")?)?,
            "--start" => {
                let ms = parse_rfc3339_ms(value("--start")?)?;
                scenario.start_ms = u64::try_from(ms).map_err(|_| "--start before 1970")?;
                start_given = true;
            }
            "--fail" | "--reset" | "--latency" => {
                scenario.behaviours.push(behaviour(arg, value(arg)?)?);
            }
            "--push" => {
                let text = value("--push")?;
                let (file, at) = text
                    .rsplit_once('@')
                    .ok_or_else(|| format!("--push {text:?}: expected FILE@TIME"))?;
                let config = std::fs::read(file).map_err(|e| format!("--push {file}: {e}"))?;
                scenario.pushes.push(Push {
                    at_ms: duration(at)?,
                    config,
                });
            }
            "--path" => {
                scenario.traffic.path = value("--path")?.to_owned();
                path_given = true;
            }
            "--authority" => scenario.traffic.authority = value("--authority")?.to_owned(),
            "--method" => {
                scenario.traffic.methods =
                    value("--method")?.split(',').map(str::to_owned).collect();
                method_given = true;
            }
            "--header" => scenario.traffic.headers.push(header(value("--header")?)?),
            "--sticky" => {
                let text = value("--sticky")?;
                let (header, keys) = text
                    .split_once('=')
                    .ok_or_else(|| format!("--sticky {text:?}: expected HEADER=N"))?;
                let keys = u32::try_from(number(keys)?).map_err(|_| "--sticky: too many keys")?;
                scenario.traffic.sticky_header = Some((header.to_ascii_lowercase(), keys));
            }
            "--conflicts" => scenario.conflict_ratio = percent(value("--conflicts")?)?,
            "--json" => json = true,
            "--png" => png = Some(PathBuf::from(value("--png")?)),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            path if config.is_none() => config = Some(PathBuf::from(path)),
            extra => return Err(format!("one CONFIG only, got another: {extra}")),
        }
    }
    let config = config.ok_or("a CONFIG is needed")?;
    scenario.config = std::fs::read(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    Ok(Options {
        config,
        scenario,
        start_given,
        duration_given,
        path_given,
        method_given,
        json,
        png,
    })
}

fn number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("expected a whole number, got {text:?}"))
}

fn duration(text: &str) -> Result<u64, String> {
    parse_duration_ms(text, ANY_DURATION)
}

fn percent(text: &str) -> Result<f64, String> {
    let number = text
        .strip_suffix('%')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| (0.0..=100.0).contains(n))
        .ok_or_else(|| format!("expected a percentage such as 50%, got {text:?}"))?;
    Ok(number / 100.0)
}

fn rate(text: &str) -> Result<f64, String> {
    let (number, per) = match text.split_once('/') {
        Some((number, "s")) => (number, 1.0),
        Some((number, "m")) => (number, 60.0),
        None => (text, 1.0),
        Some(_) => return Err(format!("--rate {text:?}: expected N/s or N/m")),
    };
    let number: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| *n > 0.0 && n.is_finite())
        .ok_or_else(|| format!("--rate {text:?}: expected a positive number"))?;
    Ok(number / per)
}

/// `V=VALUE[@FROM..TO]`, for `--fail`, `--reset` and `--latency`.
fn behaviour(option: &str, text: &str) -> Result<Behaviour, String> {
    let bad = || format!("{option} {text:?}: expected VERSION=VALUE[@FROM..TO]");
    let (version, rest) = text.split_once('=').ok_or_else(bad)?;
    let (value, window) = match rest.split_once('@') {
        Some((value, window)) => (value, Some(window)),
        None => (rest, None),
    };
    let (from_ms, until_ms) = match window {
        None => (0, u64::MAX),
        Some(window) => {
            let (from, to) = window.split_once("..").ok_or_else(bad)?;
            let from_ms = if from.is_empty() { 0 } else { duration(from)? };
            let until_ms = if to.is_empty() {
                u64::MAX
            } else {
                duration(to)?
            };
            (from_ms, until_ms)
        }
    };
    let mut behaviour = Behaviour {
        version: version.to_owned(),
        from_ms,
        until_ms,
        error_ratio: 0.0,
        reset_ratio: 0.0,
        latency_ms: 0,
    };
    match option {
        "--fail" => behaviour.error_ratio = percent(value)?,
        "--reset" => behaviour.reset_ratio = percent(value)?,
        _ => behaviour.latency_ms = duration(value)?,
    }
    Ok(behaviour)
}

/// `NAME=VALUE` for `--header`: a lower-case name, not a pseudo-header (those have options
/// of their own).
fn header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("--header {text:?}: expected NAME=VALUE"))?;
    if name.starts_with(':') {
        return Err(format!(
            "--header {text:?}: set {name} with --path, --method or --authority"
        ));
    }
    Ok((name.to_ascii_lowercase(), value.to_owned()))
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

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn minutes(ms: u64) -> String {
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

fn text(config: &Path, scenario: &Scenario, result: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} requests/s for {} on {} worker(s) from {}, seed {}, requests {} {}",
        config.display(),
        scenario.traffic.rate_per_s,
        minutes(scenario.duration_ms),
        scenario.workers,
        format_rfc3339_ms(i64::try_from(scenario.start_ms).unwrap_or(0)),
        scenario.seed,
        scenario.traffic.methods.join(","),
        scenario.traffic.path
    );
    let _ = writeln!(
        out,
        "{:<11} {:<12} {:<10} {:>9} {:>7} {:>9} {:>7} {:>8} {:>7} {:>5} {:>7} {:>6}  state",
        "period",
        "route",
        "version",
        "weight",
        "share",
        "requests",
        "errors",
        "timeouts",
        "retries",
        "trips",
        "returns",
        "probes"
    );
    for row in &result.rows {
        let total: u64 = row.versions.iter().map(|v| v.requests).sum();
        let period = format!("{}-{}", minutes(row.from_ms), minutes(row.until_ms));
        for version in &row.versions {
            let _ = writeln!(
                out,
                "{:<11} {:<12} {:<10} {:>9} {:>6.1}% {:>9} {:>6.1}% {:>7.1}% {:>7} {:>5} {:>7} {:>6}  {}",
                period,
                row.route,
                version.version,
                version.weight,
                share(version.requests, total),
                version.requests,
                share(version.errors, version.requests),
                share(version.timeouts, version.requests),
                version.retries,
                version.trips,
                version.returns,
                version.probes,
                match (version.ejected, version.latched) {
                    (true, true) => "latched",
                    (true, false) => "out",
                    _ => "in",
                }
            );
        }
    }
    let routed: u64 = result.routed.values().sum();
    let _ = writeln!(
        out,
        "total: {routed} routed, {} unmatched, {} guard event(s), {} merge(s) refused by the store",
        result.unmatched,
        result.guard_events.len(),
        result.failed_merges
    );
    out
}

#[derive(serde::Serialize)]
struct JsonEvent<'a> {
    at_ms: u64,
    worker: usize,
    route: &'a str,
    version: &'a str,
    event: &'static str,
}

#[derive(serde::Serialize)]
struct JsonRun<'a> {
    config: String,
    rate_per_s: f64,
    duration_ms: u64,
    workers: usize,
    seed: u64,
    start: String,
    periods: &'a [Row],
    events: Vec<JsonEvent<'a>>,
    routed: u64,
    unmatched: u64,
}

fn json(config: &Path, scenario: &Scenario, result: &Run) -> String {
    use traffic_split::split::guard::GuardEvent;
    let events = result
        .guard_events
        .iter()
        .map(|record| JsonEvent {
            at_ms: record.at_ms,
            worker: record.worker,
            route: &record.route,
            version: &record.version,
            event: match record.event {
                GuardEvent::Tripped { .. } => "tripped",
                GuardEvent::Returned { early: true, .. } => "returned early",
                GuardEvent::Returned { .. } => "returned",
                GuardEvent::Held { .. } => "held",
            },
        })
        .collect();
    let run = JsonRun {
        config: config.display().to_string(),
        rate_per_s: scenario.traffic.rate_per_s,
        duration_ms: scenario.duration_ms,
        workers: scenario.workers,
        seed: scenario.seed,
        start: format_rfc3339_ms(i64::try_from(scenario.start_ms).unwrap_or(0)),
        periods: &result.rows,
        events,
        routed: result.routed.values().sum(),
        unmatched: result.unmatched,
    };
    serde_json::to_string_pretty(&run).unwrap_or_default()
}

/// Shares (lines) and error ratios (dashed) per version over time, by gnuplot. The file name
/// never enters gnuplot's script: gnuplot writes the PNG to its standard output, and the file
/// is written here.
fn draw_png(path: &Path, result: &Run) -> Result<(), String> {
    let png = render_png(&gnuplot_script(result)?)?;
    std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
}

/// The script that draws the chart to standard output.
fn gnuplot_script(result: &Run) -> Result<String, String> {
    let mut series: Vec<(String, String)> = Vec::new();
    for row in &result.rows {
        let total: u64 = row.versions.iter().map(|v| v.requests).sum();
        for version in &row.versions {
            let name = format!("{} {}", row.route, version.version);
            let line = format!(
                "{} {:.3} {:.3}\n",
                row.until_ms as f64 / 60_000.0,
                share(version.requests, total),
                share(version.errors, version.requests)
            );
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, data)) => data.push_str(&line),
                None => series.push((name, line)),
            }
        }
    }
    let mut data = String::new();
    let mut plots = Vec::new();
    for (index, (name, lines)) in series.iter().enumerate() {
        data.push_str(lines);
        data.push_str("\n\n");
        let title = gnuplot_string(name);
        plots.push(format!(
            "$d index {index} using 1:2 with lines lw 2 title '{title} share'"
        ));
        plots.push(format!(
            "$d index {index} using 1:3 with lines dt 2 title '{title} errors'"
        ));
    }
    if plots.is_empty() {
        return Err("nothing to draw: no periods".to_owned());
    }
    Ok(format!(
        "set terminal png size 1000,500\n\
         set xlabel 'minutes'\nset ylabel '%'\nset yrange [0:100]\nset key outside\n\
         $d << EOD\n{data}EOD\nplot {}\n",
        plots.join(", ")
    ))
}

/// Text inside a single-quoted gnuplot string: a quote doubled (gnuplot's one escape there),
/// control characters (a newline would end the command) as spaces. Route and version names
/// come from the config.
fn gnuplot_string(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('\'', "''")
}

/// Runs gnuplot on the script; the PNG it wrote to its standard output.
fn render_png(script: &str) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new("gnuplot")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running gnuplot (`make apt-tools` installs it): {e}"))?;
    // Written whole, then closed, before reading: the script is small, and gnuplot reads all
    // of it before it draws.
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(script.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("gnuplot: {e}"))?;
    if let Some(Err(e)) = written {
        return Err(format!("gnuplot: {e}"));
    }
    if !output.status.success() || !output.stdout.starts_with(b"\x89PNG") {
        return Err(format!(
            "gnuplot failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output.stdout)
}
