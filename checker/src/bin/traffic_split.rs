//! `traffic-split`: the host tool. `traffic-split check` checks plugin configs (the same
//! command as `traffic-split-check`); `traffic-split top` shows the split live from Envoy's
//! stats; `traffic-split simulate` runs a config over virtual time.

use std::process::ExitCode;

const USAGE: &str = "\
usage: traffic-split COMMAND [ARGS...]

  check FILE_OR_FOLDER...   check plugin configs with the filter's own compiler
  top [OPTIONS]             show the split per route and version, live, from Envoy's stats
  simulate CONFIG [OPTIONS] what CONFIG does over time: rollouts, guard trips, pushes, simulated

`traffic-split COMMAND --help` describes a command.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((command, rest)) if command == "check" => {
            traffic_split_check::check_command::run("traffic-split check", rest)
        }
        Some((command, rest)) if command == "top" => traffic_split_check::top::run(rest),
        Some((command, rest)) if command == "simulate" => {
            traffic_split_check::simulate::run_command(rest)
        }
        Some((help, _)) if help == "-h" || help == "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
