//! Hostile requests (paths, methods, header names and values, cookies, owned headers, failing
//! host calls) through the whole stream path against the sample configs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traffic_split_fuzz_checks::{check_streams, HostileStreams};

fuzz_target!(|case: HostileStreams| check_streams(&case));
