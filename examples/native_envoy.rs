//! Writes an Envoy config with traffic-split's filter as the native module: every
//! `traffic-split` filter of the input (a Wasm filter, as in envoy/envoy.yaml) becomes the
//! dynamic-module filter with the same plugin config, as the end-to-end harness does
//! (tests/support/module.rs). `make envoy-up MODULE=native` runs its output:
//!
//! ```sh
//! cargo run --example native_envoy -- envoy/envoy.yaml build/envoy-native.yaml
//! ```

use traffic_split_e2e as support;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: native_envoy <envoy.yaml> <out.yaml>");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(input) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("native_envoy: {input}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut document: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(document) => document,
        Err(error) => {
            eprintln!("native_envoy: {input}: {error}");
            return ExitCode::FAILURE;
        }
    };
    support::module::to_native_document(&mut document);
    let written = serde_yaml::to_string(&document)
        .map_err(|error| error.to_string())
        .and_then(|yaml| std::fs::write(output, yaml).map_err(|error| error.to_string()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("native_envoy: {output}: {error}");
            ExitCode::FAILURE
        }
    }
}
