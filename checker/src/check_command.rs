//! The `check` command, shared by `traffic-split-check` and `traffic-split check`: prints `ok`
//! and a line per route for each valid plugin config, or every error with its path; exits 1
//! when any config is invalid (or none was found), 2 on a usage error.

use crate::Report;
use std::process::ExitCode;

fn usage(program: &str) -> String {
    format!(
        "\
usage: {program} FILE_OR_FOLDER...

Checks traffic-split plugin configs with the filter's own compiler:
  *.json          a plugin config, as in Envoy's `configuration` StringValue
  *.yaml, *.yml   Kubernetes documents; the spec.pluginConfig of every Istio WasmPlugin
                  is checked as Istio hands it to the filter (numbers as doubles)
  a folder        every such file in it, recursively

Prints `ok` and one line per route for a valid config, or every error with its path.
Exit status: 0 all valid, 1 an invalid config (or none found), 2 usage error."
    )
}

/// Runs the check on `args` (the paths, without the program name); `program` is how the
/// usage text names the command.
pub fn run(program: &str, args: &[String]) -> ExitCode {
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{}", usage(program));
        return ExitCode::SUCCESS;
    }
    if args.is_empty() || args.iter().any(|arg| arg.starts_with('-')) {
        eprintln!("{}", usage(program));
        return ExitCode::from(2);
    }
    let report = Report::check(args);
    print!("{report}");
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
