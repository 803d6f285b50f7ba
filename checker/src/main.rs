//! `traffic-split-check FILE_OR_FOLDER...`: prints `ok` and a line per route for each valid
//! plugin config, or every error with its path; exits 1 when any config is invalid (or none
//! was found), 2 on a usage error.

use std::process::ExitCode;
use traffic_split_check::Report;

const USAGE: &str = "\
usage: traffic-split-check FILE_OR_FOLDER...

Checks traffic-split plugin configs with the filter's own compiler:
  *.json          a plugin config, as in Envoy's `configuration` StringValue
  *.yaml, *.yml   Kubernetes documents; the spec.pluginConfig of every Istio WasmPlugin
                  is checked as Istio hands it to the filter (numbers as doubles)
  a folder        every such file in it, recursively

Prints `ok` and one line per route for a valid config, or every error with its path.
Exit status: 0 all valid, 1 an invalid config (or none found), 2 usage error.";

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if paths.is_empty() || paths.iter().any(|arg| arg.starts_with('-')) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let report = Report::check(&paths);
    print!("{report}");
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
