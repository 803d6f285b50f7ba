//! The serialized header map the host hands over, as arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traffic_split_fuzz_checks::check_header_map;

fuzz_target!(|bytes: &[u8]| check_header_map(bytes));
