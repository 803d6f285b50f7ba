//! `make watch`: the demo of `make run`, live. Starts Envoy with `envoy/envoy.yaml` (or, after
//! `make watch CONFIG=file.json`, the bootstrap `make` wrote for that plugin config, named by
//! `TRAFFIC_SPLIT_ENVOY_CONFIG`) and the release module, sends 50 requests a second for a
//! minute, in turn to each route it finds a request for, and shows `traffic-split top` in front
//! of it. With the shipped config: v1 at 70%, v2 at 30%, and every v2 request cut by the
//! route's 2 ms deadline (v2 answers in 5 ms). q quits and stops Envoy.

use traffic_split_e2e as support;
#[path = "../tests/top_support/mod.rs"]
mod top_support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use support::{Envoy, EnvoyConfig};
use top_support::Traffic;
use traffic_split::config::{compile, describe_errors};
use traffic_split_check::local_envoy::sample_requests;
use traffic_split_check::top::admin::{Admin, Poller};
use traffic_split_check::top::options::StatsForm;
use traffic_split_check::top::terminal;

const REQUESTS_PER_SECOND: u32 = 50;
const TRAFFIC_FOR: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let path = std::env::var_os("TRAFFIC_SPLIT_ENVOY_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo_root().join("envoy/envoy.yaml"));
    // Envoy's timers read a clock that steps with the kernel's tick (4 ms), which cuts some
    // answers well within a 2 ms deadline; this makes them read a precise one, so the demo's
    // counts do not depend on where the ticks fall (docs/metrics.md, "Deadlines").
    std::env::set_var("EVENT_PRECISE_TIMER", "1");
    let mut config = EnvoyConfig::from_file(&path);
    let requests = match compile(config.plugin_config().as_bytes()) {
        Ok(plan) => sample_requests(&plan).into_iter().flatten().collect(),
        Err(errors) => {
            eprintln!("{}: {}", path.display(), describe_errors(&errors));
            return ExitCode::FAILURE;
        }
    };
    let envoy = Envoy::start(config);
    let admin = format!("http://{}", envoy.admin);
    // The traffic stops after a minute; the view stays until q.
    let traffic = Traffic::start_requests(
        envoy.front,
        REQUESTS_PER_SECOND,
        Some(TRAFFIC_FOR),
        requests,
    );
    let poller = Poller::new(Admin::new(&admin, StatsForm::Prometheus));
    let result = terminal::run(poller, Duration::from_secs(1), &admin);
    drop(traffic);
    drop(envoy);
    match result {
        Ok(()) => {
            println!(
                "Envoy stopped. To watch another Envoy (a sidecar through kubectl port-forward):"
            );
            println!("  cargo run -p traffic-split-check --bin traffic-split -- top --admin http://127.0.0.1:15000");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("traffic-split top: {error}");
            ExitCode::FAILURE
        }
    }
}
