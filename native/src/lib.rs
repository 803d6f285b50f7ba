//! traffic-split as an Envoy dynamic module (`libtraffic_split.so`): the same core as the Wasm
//! module, hosted on Envoy's dynamic-module C ABI instead of proxy-wasm.
//!
//! - [`abi`]: the ABI's types and callbacks this module uses, declared by hand;
//! - `config`: one filter configuration, compiled on Envoy's main thread;
//! - `host`: the core's `StreamHost` over the ABI;
//! - `shared`: the guard's shared state, in process memory;
//! - `tick`: what a worker does over time (the guard's merges, ramps, gauges);
//! - `timer`: the one thread that waits: held requests and each configuration's ticks;
//! - `entry`, `logger`: no panic crosses into Envoy; `log` into Envoy's log.
//!
//! Envoy creates a configuration once, on its main thread, and each stream's filter on a worker
//! thread; every hook below is a few lines handing over to the core, inside
//! [`entry::guarded`]. The hooks are `unsafe`: Envoy passes the pointers the ABI documents.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// Each hook's safety contract is the ABI's: Envoy passes the pointers abi.h documents.
#![allow(clippy::missing_safety_doc)]

pub mod abi;
mod config;
mod entry;
mod host;
mod logger;
mod shared;
mod tick;
mod timer;

use abi::{ConfigEnvoyPtr, EnvoyBuffer, FilterEnvoyPtr, HeadersStatus};
use config::NativeConfig;
use entry::guarded;
use host::EnvoyStreamHost;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use traffic_split::plan::{DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
use traffic_split::request::{Stream, Verdict};
use traffic_split::state::RouteState;

/// The request header that makes the test-only panic build panic.
#[cfg(feature = "panic-on-marked-request")]
const PANIC_HEADER: &str = "x-traffic-split-test-panic";

/// What the module gives Envoy for a configuration: the configuration, and a serial number that
/// names it in the workers' thread-local state.
struct ConfigHandle {
    config: Arc<NativeConfig>,
    serial: u64,
    /// The route states of Envoy's main thread, ticked by the timer thread through
    /// `scheduler`, so that gauges follow ramps and the guard also while no request comes.
    main_states: Mutex<Vec<RouteState>>,
    /// The configuration's scheduler, if it ticks (null otherwise).
    scheduler: usize,
}

impl Drop for ConfigHandle {
    fn drop(&mut self) {
        let scheduler = self.scheduler as abi::SchedulerPtr;
        if !scheduler.is_null() {
            timer::stop_ticks(scheduler);
            // SAFETY: made by config_new, never committed again after stop_ticks.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler)
            };
        }
    }
}

/// What one worker thread keeps for one configuration.
struct WorkerState {
    config: Arc<NativeConfig>,
    states: RefCell<Vec<RouteState>>,
    /// When this worker's next tick is due, in ms since the epoch (`u64::MAX`: never).
    next_tick_ms: Cell<u64>,
}

impl WorkerState {
    /// Ticks this worker if its tick is due: on the request path, since Envoy gives a worker
    /// thread no timer of its own.
    fn tick_if_due(&self) {
        let now_ms = host::clock_nanos() / 1_000_000;
        if now_ms < self.next_tick_ms.get() {
            return;
        }
        if let Some(period) = tick::period(&self.config.plan) {
            let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
            self.next_tick_ms.set(now_ms.saturating_add(period_ms));
        }
        if let Ok(mut states) = self.states.try_borrow_mut() {
            tick::tick(&self.config, &mut states);
        }
    }
}

/// A worker's state of each configuration, by serial, with the configuration it is of.
type WorkerStates = HashMap<u64, (Weak<NativeConfig>, Rc<WorkerState>)>;

thread_local! {
    /// This worker's state of each configuration, by serial; a configuration Envoy destroyed
    /// is dropped here when the worker next creates one.
    static WORKERS: RefCell<WorkerStates> = RefCell::new(HashMap::new());
}

/// This worker's state of a configuration, made on its first stream.
fn worker_state(handle: &ConfigHandle) -> Option<Rc<WorkerState>> {
    WORKERS
        .try_with(|workers| {
            let mut workers = workers.try_borrow_mut().ok()?;
            if let Some((_, state)) = workers.get(&handle.serial) {
                return Some(Rc::clone(state));
            }
            workers.retain(|_, (config, _)| config.strong_count() > 0);
            let state = Rc::new(WorkerState {
                states: RefCell::new(tick::fresh_states(&handle.config)),
                config: Arc::clone(&handle.config),
                next_tick_ms: Cell::new(match tick::period(&handle.config.plan) {
                    Some(_) => 0,
                    None => u64::MAX,
                }),
            });
            workers.insert(
                handle.serial,
                (Arc::downgrade(&handle.config), Rc::clone(&state)),
            );
            Some(state)
        })
        .ok()
        .flatten()
}

/// One stream's filter.
struct Filter {
    worker: Option<Rc<WorkerState>>,
    stream: Stream,
    /// A hook of this stream panicked: the filter does nothing more for it.
    bypassed: bool,
}

/// # Safety
/// `buffer` must be a buffer Envoy lent for the current hook.
unsafe fn bytes<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { buffer.bytes() }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guarded(
        "program init",
        std::ptr::null(),
        || {},
        || {
            logger::install();
            let missing = abi::missing_callbacks();
            if !missing.is_empty() {
                log::error!(
                "refusing to load: this module is built for Envoy's dynamic-module ABI {} (Envoy 1.40), and this Envoy lacks {}",
                abi::ABI_VERSION,
                missing.join(", ")
            );
                return std::ptr::null();
            }
            abi::ABI_VERSION_C.as_ptr().cast()
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
    guarded(
        "config new",
        std::ptr::null(),
        || {},
        || {
            // SAFETY: Envoy lends the name and config for this hook.
            let (name, json) = unsafe { (bytes(name), bytes(config)) };
            let name = String::from_utf8_lossy(name);
            let Some(config) = NativeConfig::new(envoy, &name, json) else {
                return std::ptr::null();
            };
            let main_states = Mutex::new(tick::fresh_states(&config));
            let mut scheduler = std::ptr::null_mut();
            if let Some(period) = tick::period(&config.plan) {
                // SAFETY: Envoy's config, in its config_new.
                scheduler = unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(envoy)
                };
                if !scheduler.is_null() {
                    timer::tick_every(scheduler, period);
                }
            }
            let handle = ConfigHandle {
                config: Arc::new(config),
                serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
                main_states,
                scheduler: scheduler as usize,
            };
            Box::into_raw(Box::new(handle)) as *const c_void
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    guarded(
        "config destroy",
        (),
        || {},
        || {
            if !config.is_null() {
                // SAFETY: a handle `config_new` made, destroyed once by Envoy.
                drop(unsafe { Box::from_raw(config as *mut ConfigHandle) });
            }
        },
    )
}

/// A configuration's tick, on Envoy's main thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _envoy: ConfigEnvoyPtr,
    config: *const c_void,
    event_id: u64,
) {
    guarded(
        "config tick",
        (),
        || {},
        || {
            // SAFETY: a handle `config_new` made; Envoy runs this before destroying it.
            let Some(handle) = (unsafe { (config as *const ConfigHandle).as_ref() }) else {
                return;
            };
            if event_id == timer::TICK_EVENT {
                if let Ok(mut states) = handle.main_states.try_lock() {
                    tick::tick(&handle.config, &mut states);
                }
            }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter: FilterEnvoyPtr,
) -> *const c_void {
    guarded(
        "filter new",
        std::ptr::null(),
        || {},
        || {
            // SAFETY: a handle `config_new` made, alive while Envoy creates its filters.
            let handle = unsafe { (config as *const ConfigHandle).as_ref() };
            let filter = Filter {
                worker: handle.and_then(worker_state),
                stream: Stream::default(),
                bypassed: false,
            };
            Box::into_raw(Box::new(filter)) as *const c_void
        },
    )
}

/// The filter of a hook, unless a hook of its stream panicked.
///
/// # Safety
/// `filter` must be a filter `filter_new` made and Envoy has not destroyed.
unsafe fn filter_of<'a>(filter: *const c_void) -> Option<&'a mut Filter> {
    // SAFETY: the caller's contract; Envoy calls one stream's hooks one at a time.
    unsafe { (filter as *mut Filter).as_mut() }.filter(|filter| !filter.bypassed)
}

/// Marks a stream's filter bypassed after a panic.
fn bypass(filter: *const c_void) {
    // SAFETY: as in the hook that panicked.
    if let Some(filter) = unsafe { (filter as *mut Filter).as_mut() } {
        filter.bypassed = true;
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> HeadersStatus {
    guarded(
        "request headers",
        abi::HEADERS_CONTINUE,
        || bypass(filter),
        || {
            // SAFETY: Envoy's filter of this stream, in one of its hooks.
            let Some(filter) = (unsafe { filter_of(filter) }) else {
                return abi::HEADERS_CONTINUE;
            };
            on_request_headers(envoy, filter)
        },
    )
}

fn on_request_headers(envoy: FilterEnvoyPtr, filter: &mut Filter) -> HeadersStatus {
    #[cfg(feature = "panic-on-marked-request")]
    {
        use traffic_split::request::headers::HeaderPairs;
        use traffic_split::request::StreamHost;
        let pairs = EnvoyStreamHost::new(envoy, &Default::default())
            .request_header_pairs()
            .unwrap_or_default();
        if HeaderPairs::new(&pairs).get(PANIC_HEADER).is_some() {
            #[allow(clippy::panic)] // the point of this test-only build
            {
                panic!("test-only panic on a request marked {PANIC_HEADER}");
            }
        }
    }
    let Some(worker) = &filter.worker else {
        // Not configured: still never let a client choose the cluster or version.
        let no_metrics = config::MetricIds::default();
        let mut host = EnvoyStreamHost::new(envoy, &no_metrics);
        host.remove_request_header_anyway(DEFAULT_VERSION_HEADER);
        host.remove_request_header_anyway(DEFAULT_CLUSTER_HEADER);
        host.resolve_route_again();
        return abi::HEADERS_CONTINUE;
    };
    worker.tick_if_due();
    let config = &worker.config;
    let mut host = EnvoyStreamHost::new(envoy, &config.metrics);
    let verdict = match worker.states.try_borrow_mut() {
        Ok(mut states) => filter
            .stream
            .on_request_headers(&config.plan, &mut states, &mut host),
        Err(_) => filter
            .stream
            .on_request_headers(&config.plan, &mut [], &mut host),
    };
    host.resolve_route_again();
    match verdict {
        Verdict::Continue => abi::HEADERS_CONTINUE,
        Verdict::Answered => abi::HEADERS_STOP_ITERATION,
        Verdict::Held { delay_ms } => {
            // SAFETY: this stream's filter pointer, in one of its hooks.
            let scheduler =
                unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_new(envoy) };
            if scheduler.is_null() {
                return abi::HEADERS_CONTINUE;
            }
            if !timer::hold(scheduler, Duration::from_millis(delay_ms)) {
                // SAFETY: made above, never committed.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler)
                };
                return abi::HEADERS_CONTINUE;
            }
            abi::HEADERS_STOP_ITERATION
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    event_id: u64,
) {
    guarded(
        "scheduled",
        (),
        || {},
        || {
            if event_id == timer::RELEASE_EVENT {
                // SAFETY: this stream's filter pointer, in one of its hooks.
                unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_decoding(envoy) };
            }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> HeadersStatus {
    guarded(
        "response headers",
        abi::HEADERS_CONTINUE,
        || bypass(filter),
        || {
            // SAFETY: Envoy's filter of this stream, in one of its hooks.
            if let Some(filter) = unsafe { filter_of(filter) } {
                if let Some(worker) = &filter.worker {
                    let mut host = EnvoyStreamHost::new(envoy, &worker.config.metrics);
                    filter.stream.on_response_headers(&mut host);
                }
            }
            abi::HEADERS_CONTINUE
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
) {
    guarded(
        "stream complete",
        (),
        || bypass(filter),
        || {
            // SAFETY: Envoy's filter of this stream, in one of its hooks.
            let Some(filter) = (unsafe { filter_of(filter) }) else {
                return;
            };
            if let Some(worker) = &filter.worker {
                let config = &worker.config;
                let mut host = EnvoyStreamHost::new(envoy, &config.metrics);
                match worker.states.try_borrow_mut() {
                    Ok(mut states) => filter.stream.on_end(&config.plan, &mut states, &mut host),
                    Err(_) => filter.stream.on_end(&config.plan, &mut [], &mut host),
                }
                worker.tick_if_due();
            }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    guarded(
        "filter destroy",
        (),
        || {},
        || {
            if !filter.is_null() {
                // SAFETY: a filter `filter_new` made, destroyed once by Envoy.
                drop(unsafe { Box::from_raw(filter as *mut Filter) });
            }
        },
    )
}

// The hooks Envoy requires but this filter has no use for: each lets the stream go on.

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    0
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *mut c_void,
    _headers_size: usize,
    _body_chunks: *mut c_void,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _headers: *mut c_void,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _data: *const c_void,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _trailers: *mut c_void,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}
