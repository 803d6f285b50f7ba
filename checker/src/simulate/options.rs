//! The command line of `traffic-split simulate`.

use std::path::PathBuf;
use traffic_split::sim::{Behaviour, Push, Scenario};
use traffic_split::units::duration::{parse_duration_ms, DurationRange};
use traffic_split::units::timestamp::parse_rfc3339_ms;

pub(super) const USAGE: &str = "\
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

/// The default length of a run, and the least one `--for` left out gives.
pub(super) const HOUR_MS: u64 = 3_600_000;

/// A duration on the command line: 0 to a year.
const ANY_DURATION: DurationRange = DurationRange {
    min_ms: 0,
    max_ms: 366 * 24 * 3_600_000,
    min_text: "0s",
    max_text: "366 days",
    why_whole_ms: "",
};

pub(super) struct Options {
    pub config: PathBuf,
    pub scenario: Scenario,
    /// Which of `--start`, `--for`, `--path`, `--method` were given.
    pub start_given: bool,
    pub duration_given: bool,
    pub path_given: bool,
    pub method_given: bool,
    pub json: bool,
    pub png: Option<PathBuf>,
}

pub(super) fn parse(args: &[String]) -> Result<Options, String> {
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
