//! The module's one timer thread. Envoy's schedulers run an event on a given thread as soon as
//! they can; the waiting is this thread's. It keeps, by due time:
//! - requests held by a delay fault: when one is due, it commits the stream's scheduler (Envoy
//!   allows that from any thread, and ignores it for a stream that has ended), and the worker
//!   resumes the request (`on_http_filter_scheduled`);
//! - each configuration's tick: it commits the configuration's scheduler, and Envoy's main
//!   thread brings ramps and gauges up to the clock and takes in the guard's decisions
//!   (`on_http_filter_config_scheduled`), also while no request comes.
//!
//! No thread of Envoy's ever waits here.

use crate::abi;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The event id a held request's release is committed with.
pub const RELEASE_EVENT: u64 = 1;
/// The event id of a configuration's tick.
pub const TICK_EVENT: u64 = 2;

/// What is due at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// A held stream's scheduler: committed once, then deleted here.
    Release(usize),
    /// A configuration's scheduler, committed every `period`; deleted by its configuration.
    Tick { scheduler: usize, period: Duration },
}

#[derive(Default)]
struct Timer {
    /// By due time; a sequence number keeps entries due at the same instant apart.
    queue: Mutex<BTreeMap<(Instant, u64), Due>>,
    changed: Condvar,
    /// Whether the thread runs.
    running: bool,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        // The thread lives as long as the process.
        let spawned = std::thread::Builder::new()
            .name("traffic-split-timer".into())
            .spawn(run);
        if let Err(error) = &spawned {
            log::error!("no timer thread: delay faults let requests go at once, and ramps and the guard move only with requests: {error}");
        }
        Timer {
            running: spawned.is_ok(),
            ..Timer::default()
        }
    })
}

fn lock(timer: &Timer) -> MutexGuard<'_, BTreeMap<(Instant, u64), Due>> {
    timer.queue.lock().unwrap_or_else(|p| p.into_inner())
}

fn push(queue: &mut BTreeMap<(Instant, u64), Due>, at: Instant, due: Due) {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    queue.insert((at, sequence), due);
}

/// Holds the stream of `scheduler` for `delay`. False when there is no timer thread: the
/// caller then lets the request go at once (and deletes the scheduler).
pub fn hold(scheduler: abi::SchedulerPtr, delay: Duration) -> bool {
    let timer = timer();
    if !timer.running {
        return false;
    }
    push(
        &mut lock(timer),
        Instant::now() + delay,
        Due::Release(scheduler as usize),
    );
    timer.changed.notify_one();
    true
}

/// Commits the configuration scheduler `scheduler` every `period` from now on.
pub fn tick_every(scheduler: abi::SchedulerPtr, period: Duration) {
    let timer = timer();
    let due = Due::Tick {
        scheduler: scheduler as usize,
        period,
    };
    push(&mut lock(timer), Instant::now() + period, due);
    timer.changed.notify_one();
}

/// Stops the ticks of `scheduler`; once this returns, the thread never commits it again, and
/// the caller may delete it.
pub fn stop_ticks(scheduler: abi::SchedulerPtr) {
    let scheduler = scheduler as usize;
    lock(timer())
        .retain(|_, due| !matches!(due, Due::Tick { scheduler: s, .. } if *s == scheduler));
}

fn run() {
    let timer = timer();
    let mut queue = lock(timer);
    loop {
        let now = Instant::now();
        while let Some(entry) = queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let due = entry.remove();
            // Committed under the lock, so that `stop_ticks` and a commit never overlap.
            match due {
                Due::Release(scheduler) => {
                    let scheduler = scheduler as abi::SchedulerPtr;
                    // SAFETY: a scheduler Envoy made for a held stream, committed once and
                    // deleted, only here.
                    unsafe {
                        abi::envoy_dynamic_module_callback_http_filter_scheduler_commit(
                            scheduler,
                            RELEASE_EVENT,
                        );
                        abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler);
                    }
                }
                Due::Tick { scheduler, period } => {
                    // SAFETY: a configuration's scheduler, deleted only after `stop_ticks`.
                    unsafe {
                        abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
                            scheduler as abi::SchedulerPtr,
                            TICK_EVENT,
                        );
                    }
                    push(&mut queue, now + period, due);
                }
            }
        }
        queue = match queue.first_key_value() {
            Some(((at, _), _)) => {
                let wait = at.saturating_duration_since(now);
                timer
                    .changed
                    .wait_timeout(queue, wait)
                    .map(|(queue, _)| queue)
                    .unwrap_or_else(|p| p.into_inner().0)
            }
            None => timer.changed.wait(queue).unwrap_or_else(|p| p.into_inner()),
        };
    }
}
