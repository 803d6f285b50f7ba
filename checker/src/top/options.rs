//! The command line of `traffic-split top`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use traffic_split::units::duration::parse_timeout_ms;

pub const USAGE: &str = "\
usage: traffic-split top [--admin URL] [--stats prometheus|json] [--interval DURATION]
                         [--once] [--json] [--serve ADDRESS]

Shows the split as Envoy's stats count it, per route and version, health first: the 5xx
ratio, timeouts, p99 against the version's deadline, the guard's state (ejected, for how long
yet), then the weight the filter applies, requests per second, 2xx/4xx/5xx, p50, and the share
of the last interval and since Envoy started as bars (the first to go on a narrow terminal);
above each route, where its ramp stands. It reads Envoy's admin stats, and the filter's config
from /config_dump for deadlines, ramps and the guard's cooldown, so it works against any Envoy
running the filter: a local one, or a sidecar reached through `kubectl port-forward`.

  --admin URL          Envoy's admin endpoint: a URL, HOST:PORT or PORT (default
                       http://127.0.0.1:9901)
  --stats FORM         prometheus: /stats/prometheus, labels from the stats_tags of
                       docs/metrics.md (default); json: /stats?format=json, which needs no
                       stats_tags
  --interval DURATION  time between readings: 1s (default), 500ms, ...
  --once               print one frame (two readings an interval apart) and exit; as wide as
                       the terminal, or $COLUMNS, or 160 columns
  --json               print the frames as JSON (one document with --once, else a line each)
  --serve ADDRESS      serve the numbers as a web page at ADDRESS: PORT (on 127.0.0.1),
                       localhost:PORT or HOST:PORT (port 0 picks a free one, printed on
                       start); the page has no authentication, so it warns beyond loopback

In the terminal, q (or Esc, or Ctrl-C) quits.
Exit status: 0 done, 1 Envoy's stats could not be read (--once, --json), 2 usage error.";

pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:9901";

/// Which form of Envoy's stats to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsForm {
    Prometheus,
    Json,
}

/// What to do with the frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Draw them in the terminal until the user quits.
    Terminal,
    /// Print one frame, as text or JSON, and exit.
    Once { json: bool },
    /// Print a JSON line per frame until stopped.
    JsonLines,
    /// Serve them as a web page.
    Serve(SocketAddr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The admin URL without a trailing slash.
    pub admin: String,
    pub stats: StatsForm,
    pub interval: Duration,
    pub output: Output,
}

/// Reads the arguments after `top`; `Ok(None)` asks for the usage text.
pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut admin = DEFAULT_ADMIN.to_string();
    let mut stats = StatsForm::Prometheus;
    let mut interval = Duration::from_secs(1);
    let (mut once, mut json, mut serve) = (false, false, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "--admin" => admin = admin_url(&value()?)?,
            "--stats" => {
                stats = match value()?.as_str() {
                    "prometheus" => StatsForm::Prometheus,
                    "json" => StatsForm::Json,
                    other => {
                        return Err(format!(
                            "--stats: expected prometheus or json, got {other:?}"
                        ))
                    }
                }
            }
            "--interval" => {
                let text = value()?;
                let millis =
                    parse_timeout_ms(&text).map_err(|error| format!("--interval: {error}"))?;
                interval = Duration::from_millis(millis);
            }
            "--once" => once = true,
            "--json" => json = true,
            "--serve" => serve = Some(serve_address(&value()?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
        if inline_value.is_some() && matches!(flag, "--once" | "--json") {
            return Err(format!("{flag} takes no value"));
        }
    }
    let output = match (serve, once, json) {
        (Some(_), true, _) | (Some(_), _, true) => {
            return Err("--serve cannot be combined with --once or --json".into())
        }
        (Some(address), false, false) => Output::Serve(address),
        (None, true, json) => Output::Once { json },
        (None, false, true) => Output::JsonLines,
        (None, false, false) => Output::Terminal,
    };
    Ok(Some(Options {
        admin,
        stats,
        interval,
        output,
    }))
}

/// Where `--serve` listens, as users give it: `PORT` (on 127.0.0.1), `localhost:PORT`,
/// `HOST:PORT` with an IP address or a name that resolves.
fn serve_address(text: &str) -> Result<SocketAddr, String> {
    let wrong = || {
        format!(
            "--serve: expected PORT, HOST:PORT or localhost:PORT such as 127.0.0.1:8089, got \
             {text:?}"
        )
    };
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
    let port: u16 = port.parse().map_err(|_| wrong())?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(wrong)
}

/// An admin URL as users give it: `http://host:port`, `host:port` alone, or a port (on
/// 127.0.0.1).
fn admin_url(text: &str) -> Result<String, String> {
    let url = if text.contains("://") {
        text.to_string()
    } else if text.parse::<u16>().is_ok() {
        format!("http://127.0.0.1:{text}")
    } else {
        format!("http://{text}")
    };
    if !url.starts_with("http://") {
        return Err(format!(
            "--admin: expected an http:// URL (Envoy's admin speaks plain HTTP), got {text:?}"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Option<Options>, String> {
        parse(&args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>())
    }

    fn options(args: &[&str]) -> Options {
        parse_args(args).expect("valid").expect("not --help")
    }

    #[test]
    fn defaults_read_the_local_admin_every_second_into_the_terminal() {
        assert_eq!(
            options(&[]),
            Options {
                admin: "http://127.0.0.1:9901".into(),
                stats: StatsForm::Prometheus,
                interval: Duration::from_secs(1),
                output: Output::Terminal,
            }
        );
    }

    #[test]
    fn every_option() {
        let parsed = options(&[
            "--admin",
            "localhost:15000/",
            "--stats=json",
            "--interval",
            "250ms",
            "--once",
            "--json",
        ]);
        assert_eq!(parsed.admin, "http://localhost:15000");
        assert_eq!(parsed.stats, StatsForm::Json);
        assert_eq!(parsed.interval, Duration::from_millis(250));
        assert_eq!(parsed.output, Output::Once { json: true });
        assert_eq!(options(&["--json"]).output, Output::JsonLines);
        assert_eq!(
            options(&["--serve", "127.0.0.1:8089"]).output,
            Output::Serve("127.0.0.1:8089".parse().expect("address"))
        );
        assert_eq!(parse_args(&["--help"]), Ok(None));
    }

    #[test]
    fn serve_and_admin_take_a_port_a_host_and_port_or_localhost() {
        let loopback = |port| Output::Serve(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(options(&["--serve", "8089"]).output, loopback(8089));
        assert_eq!(
            options(&["--serve", "localhost:8090"]).output,
            loopback(8090)
        );
        assert_eq!(
            options(&["--serve", "0.0.0.0:8091"]).output,
            Output::Serve("0.0.0.0:8091".parse().expect("address"))
        );
        assert_eq!(
            options(&["--admin", "15000"]).admin,
            "http://127.0.0.1:15000"
        );
        assert_eq!(
            options(&["--admin", "localhost:15000"]).admin,
            "http://localhost:15000"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (args, expected) in [
            (&["--admin"][..], "--admin needs a value"),
            (&["--admin", "https://x"], "expected an http:// URL"),
            (&["--stats", "xml"], "expected prometheus or json"),
            (&["--interval", "0s"], "--interval: "),
            (&["--interval", "soon"], "--interval: "),
            (&["--serve", "port"], "expected PORT, HOST:PORT"),
            (&["--serve", "localhost:http"], "expected PORT, HOST:PORT"),
            (&["--serve", "127.0.0.1:1", "--once"], "cannot be combined"),
            (&["--once=yes"], "takes no value"),
            (&["--watch"], "unknown argument \"--watch\""),
        ] {
            let error = parse_args(args).expect_err("refused");
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }
}
