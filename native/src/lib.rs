//! traffic-split as an Envoy dynamic module (`libtraffic_split.so`): the same core as the Wasm
//! module, hosted on Envoy's dynamic-module C ABI instead of proxy-wasm.
//!
//! - [`abi`]: the ABI's types and callbacks this module uses, declared by hand;
//! - `host`, `worker_host`: the core's `StreamHost` and `WorkerHost` over the ABI
//!   (`metric_id`: the worker's metric ids on Envoy's);
//! - `shared`: the guard's shared state, in process memory;
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
mod entry;
mod host;
mod logger;
mod metric_id;
mod shared;
mod timer;
mod worker_host;

use abi::{ConfigEnvoyPtr, EnvoyBuffer, FilterEnvoyPtr, HeadersStatus};
use entry::guarded;
use host::EnvoyStreamHost;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::time::Duration;
use traffic_split::config::limits::check_config_size;
use traffic_split::plan;
use traffic_split::request::{Stream, Verdict};
use traffic_split::worker::{
    self, Capabilities, DefinedMetrics, HandedOutcomes, TickNeeds, Worker, GUARD_TICK, ROLLOUT_TICK,
};
use worker_host::NativeWorkerHost;

/// What this host serves: the response path, and a panic caught at every hook (counted).
const NATIVE_CAPABILITIES: Capabilities = Capabilities {
    response_path: true,
    catches_panics: true,
};

/// The request header that makes the test-only panic build panic.
#[cfg(feature = "panic-on-marked-request")]
const PANIC_HEADER: &str = "x-traffic-split-test-panic";

/// A configuration Envoy created, shared by Envoy's threads: its JSON, which each worker thread
/// configures its own [`Worker`] from, and the worker of Envoy's main thread.
struct Config {
    /// Envoy's side of it (`ConfigEnvoyPtr`): metrics are defined and counted through it.
    envoy: usize,
    json: Vec<u8>,
    plugin_name: String,
    /// This configuration's metric ids by name, defined on the main thread when Envoy created
    /// it; each worker's configure finds its ids here.
    defined: Mutex<DefinedMetrics>,
    /// The main thread's worker, ticked by the timer thread: gauges follow rollouts and the guard
    /// also while no request comes.
    main: Mutex<Worker>,
    /// Each worker thread's guard outcomes, handed over stream by stream (a guarded
    /// configuration only): the main thread's tick takes them in and merges them, so that a
    /// worker thread that goes quiet holds none back (it ticks only when a stream comes).
    handed: Mutex<Vec<Weak<Mutex<HandedOutcomes>>>>,
    /// How often a worker of this configuration ticks, if ever.
    tick_period: Option<Duration>,
    /// The configuration's scheduler, if it ticks (0 otherwise).
    scheduler: usize,
    /// Names this configuration in the workers' thread-local state.
    serial: u64,
}

impl Config {
    fn host(&self) -> NativeWorkerHost {
        NativeWorkerHost {
            config: self.envoy as ConfigEnvoyPtr,
        }
    }
}

impl Drop for Config {
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

/// How often a configuration's workers tick, if ever.
fn tick_period(needs: TickNeeds) -> Option<Duration> {
    [
        needs.guarded.then_some(GUARD_TICK),
        needs.rollouts.then_some(ROLLOUT_TICK),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// What one worker thread keeps for one configuration: its [`Worker`], when it ticks, and where
/// its streams hand their guard outcomes over.
struct WorkerSlot {
    worker: Rc<Worker>,
    /// `None` for a configuration without a guard.
    handed: Option<Arc<Mutex<HandedOutcomes>>>,
    host: NativeWorkerHost,
    period_ms: Option<u64>,
    /// When the next tick is due, in ms since the epoch.
    next_tick_ms: Cell<u64>,
}

impl WorkerSlot {
    /// Ticks the worker if its tick is due: on the request path, since Envoy gives an HTTP
    /// filter's worker thread no timer of its own.
    fn tick_if_due(&self) {
        let Some(period_ms) = self.period_ms else {
            return;
        };
        let now_ms = worker::now_ms(&self.host);
        if now_ms < self.next_tick_ms.get() {
            return;
        }
        self.next_tick_ms.set(now_ms.saturating_add(period_ms));
        if let Some(handed) = &self.handed {
            self.worker.take_in_outcomes(&mut lock(handed));
        }
        self.worker.tick(&self.host);
    }

    /// Hands the guard outcomes of the stream that just ended over, for whichever tick comes
    /// first: this worker's own, or the main thread's.
    fn hand_over(&self) {
        if let Some(handed) = &self.handed {
            self.worker.hand_over_outcomes(&mut lock(handed));
        }
    }
}

/// A lock whose holder panicked (caught and logged) still holds usable data: outcomes and
/// states as the panic left them.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A worker's slot of one configuration, with the configuration's serial and itself.
struct SlotOf {
    serial: u64,
    config: Weak<Config>,
    slot: Rc<WorkerSlot>,
}

thread_local! {
    /// This worker thread's slots, newest first: a thread serves one or two configurations at
    /// a time (two while a push drains the old listener), so a scan beats hashing the serial on
    /// every stream. A configuration Envoy destroyed is dropped here when the thread next
    /// configures one.
    static WORKERS: RefCell<Vec<SlotOf>> = const { RefCell::new(Vec::new()) };
}

/// This worker thread's slot of a configuration, configured on its first stream.
fn worker_slot(config: &Arc<Config>) -> Option<Rc<WorkerSlot>> {
    WORKERS
        .try_with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            if let Some(found) = slots.iter().find(|slot| slot.serial == config.serial) {
                return Some(Rc::clone(&found.slot));
            }
            slots.retain(|slot| slot.config.strong_count() > 0);
            let host = config.host();
            let mut defined = lock(&config.defined);
            let configured = Worker::configure(
                &config.json,
                &config.plugin_name,
                NATIVE_CAPABILITIES,
                &host,
                &mut defined,
            );
            drop(defined);
            let worker = match configured {
                Ok(worker) => worker,
                // Never: the main thread configured the same JSON.
                Err(refused) => {
                    log::error!("{refused}");
                    return None;
                }
            };
            let handed = worker.tick_needs().guarded.then(|| {
                let handed = Arc::new(Mutex::new(worker.handed_outcomes()));
                let mut registered = lock(&config.handed);
                registered.retain(|handed| handed.strong_count() > 0);
                registered.push(Arc::downgrade(&handed));
                handed
            });
            let slot = Rc::new(WorkerSlot {
                worker: Rc::new(worker),
                handed,
                host,
                period_ms: config
                    .tick_period
                    .map(|period| u64::try_from(period.as_millis()).unwrap_or(u64::MAX)),
                next_tick_ms: Cell::new(0),
            });
            slots.insert(
                0,
                SlotOf {
                    serial: config.serial,
                    config: Arc::downgrade(config),
                    slot: Rc::clone(&slot),
                },
            );
            Some(slot)
        })
        .ok()
        .flatten()
}

/// One stream's filter.
struct Filter {
    slot: Option<Rc<WorkerSlot>>,
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

fn level_filter(level: plan::LogLevel) -> log::LevelFilter {
    match level {
        plan::LogLevel::Trace => log::LevelFilter::Trace,
        plan::LogLevel::Debug => log::LevelFilter::Debug,
        plan::LogLevel::Info => log::LevelFilter::Info,
        plan::LogLevel::Warn => log::LevelFilter::Warn,
        plan::LogLevel::Error | plan::LogLevel::Critical => log::LevelFilter::Error,
    }
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

/// Compiles a configuration on Envoy's main thread; null (Envoy then refuses the
/// configuration) with the reason logged in one line.
fn new_config(envoy: ConfigEnvoyPtr, name: &[u8], json: &[u8]) -> Option<Config> {
    static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
    if let Some(too_large) = check_config_size(json.len()) {
        logger::critical(&format!("configuration refused: {too_large}"));
        return None;
    }
    let host = NativeWorkerHost { config: envoy };
    let plugin_name = String::from_utf8_lossy(name).into_owned();
    let mut defined = DefinedMetrics::default();
    let main = match Worker::configure(json, &plugin_name, NATIVE_CAPABILITIES, &host, &mut defined)
    {
        Ok(main) => main,
        Err(refused) => {
            logger::critical(&refused.to_string());
            return None;
        }
    };
    log::set_max_level(level_filter(main.plan().log_level));
    log::info!("configured {} route(s)", main.plan().routes.len());
    let tick_period = tick_period(main.tick_needs());
    let mut scheduler = std::ptr::null_mut();
    if let Some(period) = tick_period {
        // SAFETY: Envoy's config, in its config_new.
        scheduler =
            unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(envoy) };
        if !scheduler.is_null() {
            timer::tick_every(scheduler, period);
        }
    }
    Some(Config {
        envoy: envoy as usize,
        json: json.to_vec(),
        plugin_name,
        defined: Mutex::new(defined),
        main: Mutex::new(main),
        handed: Mutex::new(Vec::new()),
        tick_period,
        scheduler: scheduler as usize,
        serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
    })
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded(
        "config new",
        std::ptr::null(),
        || {},
        || {
            // SAFETY: Envoy lends the name and config for this hook.
            let (name, json) = unsafe { (bytes(name), bytes(config)) };
            match new_config(envoy, name, json) {
                Some(config) => Box::into_raw(Box::new(Arc::new(config))) as *const c_void,
                None => std::ptr::null(),
            }
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
                drop(unsafe { Box::from_raw(config as *mut Arc<Config>) });
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
            let Some(config) = (unsafe { (config as *const Arc<Config>).as_ref() }) else {
                return;
            };
            if event_id == timer::TICK_EVENT {
                // A tick that panicked (caught and logged) poisoned the lock: the next ticks
                // go on with the states as it left them, as the workers' do.
                let main = match config.main.try_lock() {
                    Ok(main) => main,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => return,
                };
                for handed in lock(&config.handed).iter().filter_map(Weak::upgrade) {
                    main.take_in_outcomes(&mut lock(&handed));
                }
                main.tick(&config.host());
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
            let config = unsafe { (config as *const Arc<Config>).as_ref() };
            let filter = Filter {
                slot: config.and_then(worker_slot),
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

/// After a stream hook panicked: the stream goes on without the filter, and the panic is
/// counted in its configuration's `traffic_split_panics_total`.
fn bypass_counting(envoy: FilterEnvoyPtr, filter: *const c_void) {
    bypass(filter);
    // SAFETY: as in the hook that panicked.
    if let Some(filter) = unsafe { (filter as *const Filter).as_ref() } {
        if let Some(slot) = &filter.slot {
            let mut host = EnvoyStreamHost::new(envoy, Some(slot.worker.metrics()));
            traffic_split::request::StreamHost::count(
                &mut host,
                traffic_split::request::Count::Plugin(traffic_split::metrics::PluginMetric::Panics),
            );
        }
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
        || bypass_counting(envoy, filter),
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
        let pairs = EnvoyStreamHost::new(envoy, None)
            .request_header_pairs()
            .unwrap_or_default();
        if HeaderPairs::new(&pairs).get(PANIC_HEADER).is_some() {
            #[allow(clippy::panic)] // the point of this test-only build
            {
                panic!("test-only panic on a request marked {PANIC_HEADER}");
            }
        }
    }
    let Some(slot) = &filter.slot else {
        let mut host = EnvoyStreamHost::new(envoy, None);
        worker::on_unconfigured_request(&mut host);
        host.resolve_route_again();
        return abi::HEADERS_CONTINUE;
    };
    slot.tick_if_due();
    let mut host = EnvoyStreamHost::new(envoy, Some(slot.worker.metrics()));
    let verdict = slot
        .worker
        .on_request_headers(&mut filter.stream, &mut host);
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
        || bypass_counting(envoy, filter),
        || {
            // SAFETY: Envoy's filter of this stream, in one of its hooks.
            if let Some(filter) = unsafe { filter_of(filter) } {
                if let Some(slot) = &filter.slot {
                    let mut host = EnvoyStreamHost::new(envoy, Some(slot.worker.metrics()));
                    slot.worker
                        .on_response_headers(&mut filter.stream, &mut host);
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
        || bypass_counting(envoy, filter),
        || {
            // SAFETY: Envoy's filter of this stream, in one of its hooks.
            let Some(filter) = (unsafe { filter_of(filter) }) else {
                return;
            };
            if let Some(slot) = &filter.slot {
                let mut host = EnvoyStreamHost::new(envoy, Some(slot.worker.metrics()));
                slot.worker.on_end(&filter.stream, &mut host);
                slot.hand_over();
                slot.tick_if_due();
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
