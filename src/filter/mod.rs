//! The proxy-wasm adapter, on the proxy-wasm Rust SDK: the root context reads the plugin
//! configuration, compiles it into a [`Plan`], defines the metrics once and keeps the routes'
//! state ([`RouteState`]) beside the plan; each HTTP context hands its request to
//! [`crate::request::Stream`] with [`host::EnvoyHost`] as its host.
//! Everything that needs thought lives in the core.

mod guard;
mod host;
mod timer;

use crate::config::limits::check_config_size;
use crate::config::pass_through::pass_through_plan;
use crate::config::{compile, describe_errors};
use crate::metrics::{DestinationMetricNames, HOST_ERRORS, INVALID_CONFIG_REQUESTS, UNMATCHED};
use crate::plan::{self, MetricsMode, Plan, Route, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
use crate::request::{follow_ramp, Stream, Verdict};
use crate::split::fault::FaultKind;
use crate::state::RouteState;
use host::EnvoyHost;
use proxy_wasm::hostcalls::{self, define_metric};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MetricType, Status};
use std::cell::RefCell;
use std::rc::Rc;
use timer::Timer;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(SplitRoot { context_id, ..SplitRoot::default() })
    });
}}

/// The metric ids of one route and version, defined at configure time.
pub(crate) struct DestinationMetrics {
    pub requests: u32,
    /// Defined only with full metrics, so that `requests` mode shows no counters that stay 0.
    pub responses: Option<ResponseMetrics>,
    /// Gauge: the weight requests are split by now.
    pub weight: u32,
    /// Defined only on routes with a guard.
    pub guard: Option<GuardMetrics>,
    /// Injected faults, indexed by `FaultKind::index`; defined for the kinds configured.
    pub faults: [Option<u32>; 2],
    /// By `KeySource::index`; only on sticky routes.
    pub sticky: Option<[u32; 3]>,
    /// Only on routes with an override header.
    pub overrides: Option<u32>,
}

pub(crate) struct GuardMetrics {
    pub trips: u32,
    pub ejected: u32,
    pub held: u32,
}

pub(crate) struct ResponseMetrics {
    /// Indexed by `CodeClass::index`.
    pub classes: [u32; 4],
    pub timeouts: u32,
    pub duration: u32,
}

/// What a configuration compiles to: the plan, and metric ids laid out like its routes.
pub(crate) struct Active {
    pub plan: Plan,
    /// What changes while the routes serve, parallel to `plan.routes`. Borrowed only within
    /// one callback, never across a host call that could re-enter the module.
    pub states: RefCell<Vec<RouteState>>,
    /// `metrics[route][destination]`, parallel to `plan.routes[route].destinations`.
    pub metrics: Vec<Vec<DestinationMetrics>>,
    /// Per route: the counter of overrides naming no version, on routes with an override header.
    pub unknown_overrides: Vec<Option<u32>>,
    pub unmatched: u32,
    pub host_errors: u32,
    /// Defined only for the pass-through plan of a refused config.
    pub invalid_config: Option<u32>,
}

/// One per plugin configuration (several plugins may share a VM, each with its own root).
#[derive(Default)]
struct SplitRoot {
    /// `None` until a configuration has been accepted. A refused reconfiguration keeps the
    /// previous one: requests already flowing are never disturbed.
    active: Option<Rc<Active>>,
    /// Where this plugin's guards keep their state in the proxy's shared data.
    guard_keys: Vec<Option<String>>,
    context_id: u32,
    /// Shared with this root's streams, which hold requests on it (delay faults).
    timer: Rc<Timer>,
}

impl Context for SplitRoot {}

impl RootContext for SplitRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        // Refused unread: reading it would grow the VM's memory for good.
        if let Some(too_large) = check_config_size(plugin_configuration_size) {
            log::error!("traffic-split: configuration refused: {too_large}");
            return false;
        }
        let json = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(json) => json.unwrap_or_default(),
            Err(status) => {
                log::error!("traffic-split: configuration refused: reading it failed: {status:?}");
                return false;
            }
        };
        let plan = match compile(&json) {
            Ok(plan) => plan,
            Err(errors) => {
                let errors = describe_errors(&errors);
                let Some(plan) = pass_through_plan(&json) else {
                    log::error!("traffic-split: configuration refused: {errors}");
                    return false;
                };
                // Loud, and at error level so no log_level silences it.
                log::error!("traffic-split: configuration INVALID, accepted as on_invalid_config: pass_through asks: no request is split, each loses the version and cluster headers and is counted in traffic_split_invalid_config_requests_total: {errors}");
                plan
            }
        };
        let level = plan.log_level;
        match define_metrics(plan) {
            Ok(active) => {
                // Every ramp where the clock has it, before the gauges are first set.
                follow_ramps(&active);
                proxy_wasm::set_log_level(sdk_log_level(level));
                log::info!(
                    "traffic-split: configured {} route(s); VM memory {} KiB",
                    active.plan.routes.len(),
                    vm_memory_kib()
                );
                let plugin = hostcalls::get_property(vec!["plugin_name"])
                    .ok()
                    .flatten()
                    .and_then(|name| String::from_utf8(name).ok())
                    .unwrap_or_default();
                self.guard_keys = RouteState::guard_keys(&plugin, &active.plan);
                let ramped = active.plan.routes.iter().any(|route| route.ramp.is_some());
                self.timer
                    .set_periodic(self.guard_keys.iter().any(Option::is_some), ramped);
                guard::publish_weights(&active);
                self.active = Some(Rc::new(active));
                true
            }
            Err(status) => {
                log::error!(
                    "traffic-split: configuration refused: defining metrics failed: {status:?}"
                );
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SplitStream {
            active: self.active.clone(),
            stream: Stream::default(),
            context_id,
            timer: Rc::clone(&self.timer),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        if let Some(active) = &self.active {
            guard::merge_all(active, &self.guard_keys);
            // A ramp's gauges move on time on a route without requests.
            if let Ok(mut states) = active.states.try_borrow_mut() {
                let now_nanos = host::proxy_clock_nanos();
                let mut host = EnvoyHost::new(active);
                for (index, (route, state)) in
                    active.plan.routes.iter().zip(states.iter_mut()).enumerate()
                {
                    follow_ramp(index, route, state, now_nanos, &mut host);
                }
            }
        }
        let now_ms = timer::now_ms();
        let due = self.timer.due(now_ms);
        for context_id in &due {
            // A stream that ended meanwhile was forgotten; one the host no longer knows is
            // skipped (BadArgument), never resumed blindly.
            if hostcalls::set_effective_context(*context_id).is_ok() {
                let _ = hostcalls::resume_http_request();
            }
        }
        if !due.is_empty() {
            let _ = hostcalls::set_effective_context(self.context_id);
        }
        self.timer.arm(now_ms);
    }
}

/// The VM's linear memory: it grows to the peak of compiling a config and never shrinks, so
/// this is what a config costs each worker (`make bench-scale` reads it from the log).
fn vm_memory_kib() -> usize {
    const WASM_PAGE_KIB: usize = 64;
    core::arch::wasm32::memory_size(0) * WASM_PAGE_KIB
}

fn sdk_log_level(level: plan::LogLevel) -> LogLevel {
    match level {
        plan::LogLevel::Trace => LogLevel::Trace,
        plan::LogLevel::Debug => LogLevel::Debug,
        plan::LogLevel::Info => LogLevel::Info,
        plan::LogLevel::Warn => LogLevel::Warn,
        plan::LogLevel::Error => LogLevel::Error,
        plan::LogLevel::Critical => LogLevel::Critical,
    }
}

/// The request header that makes the test-only trap build trap.
#[cfg(feature = "trap-on-marked-request")]
const TRAP_HEADER: &str = "x-traffic-split-test-trap";

/// One HTTP stream: its configuration as of when it began (a later reconfiguration applies to
/// later streams) and what the core decided for it.
struct SplitStream {
    active: Option<Rc<Active>>,
    stream: Stream,
    context_id: u32,
    timer: Rc<Timer>,
}

impl Drop for SplitStream {
    /// A held request whose client left is released from the timer, never resumed.
    fn drop(&mut self) {
        self.timer.forget(self.context_id);
    }
}

impl Context for SplitStream {}

impl HttpContext for SplitStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        #[cfg(feature = "trap-on-marked-request")]
        if self.get_http_request_header(TRAP_HEADER).is_some() {
            core::arch::wasm32::unreachable();
        }
        let Some(active) = &self.active else {
            // Not configured (Envoy does not run a filter whose configuration failed):
            // still never let a client choose the cluster or version.
            host::remove_request_header_anyway(DEFAULT_VERSION_HEADER);
            host::remove_request_header_anyway(DEFAULT_CLUSTER_HEADER);
            return Action::Continue;
        };
        let mut host = EnvoyHost::new(active);
        let verdict = match active.states.try_borrow_mut() {
            Ok(mut states) => self
                .stream
                .on_request_headers(&active.plan, &mut states, &mut host),
            // Never (the state is borrowed only within one callback); without it no route is
            // taken, and the owned headers still go.
            Err(_) => self
                .stream
                .on_request_headers(&active.plan, &mut [], &mut host),
        };
        match verdict {
            Verdict::Continue => Action::Continue,
            // The local reply is on its way; the request goes no further.
            Verdict::Answered => Action::Pause,
            Verdict::Held { delay_ms } => {
                let now_ms = timer::now_ms();
                self.timer
                    .hold(self.context_id, now_ms.saturating_add(delay_ms), now_ms);
                Action::Pause
            }
        }
    }

    /// Only a stream owing its client a sticky cookie does anything here.
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(active) = &self.active {
            self.stream.on_response_headers(&mut EnvoyHost::new(active));
        }
        Action::Continue
    }

    /// The stream's end, at Envoy's access log: the response code and flags are final.
    fn on_log(&mut self) {
        if let Some(active) = &self.active {
            let mut host = EnvoyHost::new(active);
            match active.states.try_borrow_mut() {
                Ok(mut states) => self.stream.on_end(&active.plan, &mut states, &mut host),
                // Never, as above; the response is still counted, only the guard misses it.
                Err(_) => self.stream.on_end(&active.plan, &mut [], &mut host),
            }
        }
    }
}

/// Brings every ramp to the proxy's clock (the gauges are set after).
fn follow_ramps(active: &Active) {
    let now_nanos = host::proxy_clock_nanos();
    if let Ok(mut states) = active.states.try_borrow_mut() {
        for (route, state) in active.plan.routes.iter().zip(states.iter_mut()) {
            state.follow_ramp(route, now_nanos);
        }
    }
}

fn define_metrics(plan: Plan) -> Result<Active, Status> {
    let unmatched = define_metric(MetricType::Counter, UNMATCHED)?;
    let host_errors = define_metric(MetricType::Counter, HOST_ERRORS)?;
    let mut metrics = Vec::with_capacity(plan.routes.len());
    let mut unknown_overrides = Vec::with_capacity(plan.routes.len());
    for route in &plan.routes {
        let mut route_metrics = Vec::with_capacity(route.destinations.len());
        for destination in &route.destinations {
            let fault_kinds = destination
                .fault
                .as_ref()
                .map(|fault| fault.kinds())
                .unwrap_or_default();
            route_metrics.push(define_destination_metrics(
                &destination.metric_names,
                plan.metrics,
                route.guard.is_some(),
                &fault_kinds,
                route,
            )?);
        }
        metrics.push(route_metrics);
        unknown_overrides.push(match route.override_header {
            Some(_) => Some(define_metric(
                MetricType::Counter,
                &route.metric_names.unknown_overrides,
            )?),
            None => None,
        });
    }
    let invalid_config = if plan.pass_through {
        Some(define_metric(MetricType::Counter, INVALID_CONFIG_REQUESTS)?)
    } else {
        None
    };
    Ok(Active {
        states: RefCell::new(RouteState::for_plan(&plan)),
        plan,
        metrics,
        unknown_overrides,
        unmatched,
        host_errors,
        invalid_config,
    })
}

fn define_destination_metrics(
    names: &DestinationMetricNames,
    mode: MetricsMode,
    guarded: bool,
    fault_kinds: &[FaultKind],
    route: &Route,
) -> Result<DestinationMetrics, Status> {
    let mut faults = [None, None];
    for kind in fault_kinds {
        if let (Some(slot), Some(name)) =
            (faults.get_mut(kind.index()), names.faults.get(kind.index()))
        {
            *slot = Some(define_metric(MetricType::Counter, name)?);
        }
    }
    let requests = define_metric(MetricType::Counter, &names.requests)?;
    let weight = define_metric(MetricType::Gauge, &names.weight)?;
    let guard = if guarded {
        Some(GuardMetrics {
            trips: define_metric(MetricType::Counter, &names.guard_trips)?,
            ejected: define_metric(MetricType::Gauge, &names.guard_ejected)?,
            held: define_metric(MetricType::Counter, &names.guard_held)?,
        })
    } else {
        None
    };
    let responses = match mode {
        MetricsMode::Requests => None,
        MetricsMode::Full => {
            let [success, redirect, client_error, server_error] = &names.responses;
            Some(ResponseMetrics {
                classes: [
                    define_metric(MetricType::Counter, success)?,
                    define_metric(MetricType::Counter, redirect)?,
                    define_metric(MetricType::Counter, client_error)?,
                    define_metric(MetricType::Counter, server_error)?,
                ],
                timeouts: define_metric(MetricType::Counter, &names.timeouts)?,
                duration: define_metric(MetricType::Histogram, &names.duration)?,
            })
        }
    };
    let sticky = match route.sticky {
        Some(_) => {
            let [header, cookie, none] = &names.sticky;
            Some([
                define_metric(MetricType::Counter, header)?,
                define_metric(MetricType::Counter, cookie)?,
                define_metric(MetricType::Counter, none)?,
            ])
        }
        None => None,
    };
    let overrides = match route.override_header {
        Some(_) => Some(define_metric(MetricType::Counter, &names.overrides)?),
        None => None,
    };
    Ok(DestinationMetrics {
        requests,
        responses,
        weight,
        guard,
        faults,
        sticky,
        overrides,
    })
}
