//! Requests held by a delay fault. Envoy's filter scheduler runs an event on the stream's worker
//! as soon as it can; the wait itself is this module's: one thread for the process keeps the
//! held requests by release time and, when one is due, commits its scheduler (which Envoy
//! allows from any thread, and ignores for a stream that has ended meanwhile). The worker then
//! resumes the request (`on_http_filter_scheduled`). The worker never blocks.

use crate::abi;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The event id a release is committed with.
pub const RELEASE_EVENT: u64 = 1;

/// A scheduler Envoy made for one held stream; only the delay thread uses it after the hold.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduler(usize);

#[derive(Default)]
struct Held {
    /// By release time, earliest first.
    queue: Mutex<BinaryHeap<Reverse<(Instant, Scheduler)>>>,
    changed: Condvar,
    /// Whether the thread that releases them runs.
    running: bool,
}

fn held() -> &'static Held {
    static HELD: OnceLock<Held> = OnceLock::new();
    HELD.get_or_init(|| {
        // The thread lives as long as the process (Envoy never unloads a module it could
        // still call into while a held request waits).
        let spawned = std::thread::Builder::new()
            .name("traffic-split-delays".into())
            .spawn(release_when_due);
        if let Err(error) = &spawned {
            log::error!("delay faults: no thread to release held requests, none is held: {error}");
        }
        Held {
            running: spawned.is_ok(),
            ..Held::default()
        }
    })
}

/// Holds the stream of `scheduler` for `delay`. Returns false when the delay thread could not
/// start: the caller then lets the request go at once.
pub fn hold(scheduler: abi::SchedulerPtr, delay: Duration) -> bool {
    let held = held();
    if !held.running {
        return false;
    }
    let release = Instant::now() + delay;
    let mut queue = held.queue.lock().unwrap_or_else(|p| p.into_inner());
    queue.push(Reverse((release, Scheduler(scheduler as usize))));
    held.changed.notify_one();
    true
}

fn release_when_due() {
    let held = held();
    let mut queue = held.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        while let Some(Reverse((release, _))) = queue.peek() {
            if *release > now {
                break;
            }
            if let Some(Reverse((_, Scheduler(scheduler)))) = queue.pop() {
                let scheduler = scheduler as abi::SchedulerPtr;
                // SAFETY: a scheduler Envoy made; committed once, then deleted, only here.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_scheduler_commit(
                        scheduler,
                        RELEASE_EVENT,
                    );
                    abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler);
                }
            }
        }
        queue = match queue.peek() {
            Some(Reverse((release, _))) => {
                let wait = release.saturating_duration_since(now);
                held.changed
                    .wait_timeout(queue, wait)
                    .map(|(queue, _)| queue)
                    .unwrap_or_else(|p| p.into_inner().0)
            }
            None => held.changed.wait(queue).unwrap_or_else(|p| p.into_inner()),
        };
    }
}
