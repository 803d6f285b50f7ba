//! `make watch`: the demo of `make run`, live. Starts Envoy with `envoy/envoy.yaml` and the
//! release module, sends 50 requests a second to `/hello` for a minute, and shows
//! `traffic-split top` in front of it: v1 at 70%, v2 at 30%, and every v2 request cut by the
//! route's 2 ms deadline (v2 answers in 5 ms). q quits and stops Envoy.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../tests/top_support/mod.rs"]
mod top_support;

use std::process::ExitCode;
use std::time::Duration;
use support::{Envoy, EnvoyConfig};
use top_support::Traffic;
use traffic_split_check::top::admin::{Admin, Poller};
use traffic_split_check::top::options::StatsForm;
use traffic_split_check::top::terminal;

const REQUESTS_PER_SECOND: u32 = 50;
const TRAFFIC_FOR: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let envoy = Envoy::start(EnvoyConfig::shipped());
    let admin = format!("http://{}", envoy.admin);
    // The traffic stops after a minute; the view stays until q.
    let traffic = Traffic::start_for(envoy.front, REQUESTS_PER_SECOND, Some(TRAFFIC_FOR));
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
