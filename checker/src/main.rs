//! `traffic-split-check FILE_OR_FOLDER...`: the config checker on its own, the same command as
//! `traffic-split check` ([`traffic_split_check::check_command`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    traffic_split_check::check_command::run("traffic-split-check", &args)
}
