//! `make envoy-up CONFIG=file.json` (and `make run`, `make watch`): writes the local Envoy's
//! bootstrap for a plugin config, `envoy/envoy.yaml` with the config in its filter and a route
//! and demo upstream for every cluster it names (`traffic_split_check::local_envoy`).
//!
//! usage: local_envoy CONFIG.json OUTPUT.yaml
//!
//! The Makefile runs the checker on CONFIG first; this refuses an invalid config as well.

use std::path::Path;
use std::process::ExitCode;
use traffic_split::config::{compile, describe_errors};
use traffic_split_check::local_envoy::{bootstrap, curl_line, named_clusters, sample_requests};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, output] = args.as_slice() else {
        eprintln!("usage: local_envoy CONFIG.json OUTPUT.yaml");
        return ExitCode::from(2);
    };
    match write(Path::new(config), Path::new(output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{config}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn write(config: &Path, output: &Path) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let base = std::fs::read_to_string(root.join("envoy/envoy.yaml"))
        .map_err(|error| format!("envoy/envoy.yaml: {error}"))?;
    let bytes = std::fs::read(config).map_err(|error| error.to_string())?;
    let plan = compile(&bytes).map_err(|errors| describe_errors(&errors))?;
    // The filter took these bytes; JSON is UTF-8, so they are text.
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let yaml = bootstrap(&base, &text, &plan)?;
    std::fs::write(output, yaml).map_err(|error| format!("{}: {error}", output.display()))?;
    let served = ["springbootapp-v1", "springbootapp-v2"];
    let demo: Vec<String> = named_clusters(&plan)
        .into_iter()
        .filter(|cluster| !served.contains(&cluster.as_str()))
        .collect();
    println!(
        "{}: envoy/envoy.yaml with {}",
        output.display(),
        config.display()
    );
    println!("  springbootapp-v1 answers at once, springbootapp-v2 after 5 ms");
    if !demo.is_empty() {
        println!("  demo upstreams that answer at once: {}", demo.join(", "));
    }
    println!("  requests no route of the config takes go to springbootapp-v1");
    for sample in sample_requests(&plan) {
        match sample {
            Ok(sample) => println!("  route {}: {}", sample.route, curl_line(&sample)),
            Err(no) => println!("  route {}: {}", no.route, no.reason),
        }
    }
    Ok(())
}
