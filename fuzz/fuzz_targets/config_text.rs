//! The plugin configuration as arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traffic_split_fuzz_checks::check_config_text;

fuzz_target!(|bytes: &[u8]| check_config_text(bytes));
