//! Polling for a condition, instead of sleeping for a guessed time.

use std::time::{Duration, Instant};

/// Tries `attempt` every `interval` until it gives a value, for at most `within`; `None`
/// when time ran out.
pub fn poll_until<T>(
    within: Duration,
    interval: Duration,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// Like [`poll_until`] every 20 ms, failing the test with `what` (and `context()`) when time
/// runs out.
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    context: impl Fn() -> String,
    attempt: impl FnMut() -> Option<T>,
) -> T {
    poll_until(within, Duration::from_millis(20), attempt)
        .unwrap_or_else(|| panic!("{what} within {within:?}\n{}", context()))
}
