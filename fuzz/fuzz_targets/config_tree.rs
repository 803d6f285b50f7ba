//! The plugin configuration as a JSON tree shaped like the config, as text and as a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traffic_split_fuzz_checks::{check_config_tree, JsonTree};

fuzz_target!(|tree: JsonTree| check_config_tree(&tree));
