//! Every event hook Envoy calls runs inside [`guarded`]: a panic never unwinds into Envoy. It is
//! caught, counted, logged in one line, and the hook returns what lets the request through
//! without the filter (as `on_invalid_config: pass_through` would).

use crate::logger::take_panic_message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// Panics caught in this process, for the log line.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Runs `hook`; should it panic, logs the panic and returns `fallback` (then `on_panic`, which
/// must not panic itself: it is not guarded).
pub fn guarded<T>(what: &str, fallback: T, on_panic: impl FnOnce(), hook: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(hook)) {
        Ok(value) => value,
        Err(_) => {
            let count = PANICS.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            let message = take_panic_message();
            // Logging can allocate and so fail only by aborting; it cannot unwind.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                log::error!("panic in {what} (caught, {count} so far): the request goes on without the filter: {message}");
            }));
            let _ = catch_unwind(AssertUnwindSafe(on_panic));
            fallback
        }
    }
}
