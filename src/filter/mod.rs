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
use crate::metrics::{
    DefinedWhen, DestinationMetric, MetricKind, PluginDefinedWhen, PluginMetric, UNKNOWN_VERSION,
};
use crate::plan::{
    self, Destination, MetricsMode, Plan, Route, StickyKey, DEFAULT_CLUSTER_HEADER,
    DEFAULT_VERSION_HEADER,
};
use crate::request::{follow_ramp, Stream, Verdict};
use crate::state::RouteState;
use host::EnvoyHost;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MetricType, Status};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use timer::Timer;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(SplitRoot { context_id, ..SplitRoot::default() })
    });
}}

/// The metric ids of one route and version, by row of [`DestinationMetric`]'s table; `None`
/// for a metric the route's config does not define.
pub(crate) struct DestinationMetrics([Option<u32>; DestinationMetric::COUNT]);

impl DestinationMetrics {
    pub fn id(&self, metric: DestinationMetric) -> Option<u32> {
        self.0.get(metric.index()).copied().flatten()
    }
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
    /// By row of [`PluginMetric`]'s table.
    pub plugin: [Option<u32>; PluginMetric::COUNT],
}

impl Active {
    /// The id of a plugin metric, if this configuration defines it.
    pub fn plugin_id(&self, metric: PluginMetric) -> Option<u32> {
        self.plugin.get(metric.index()).copied().flatten()
    }
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
            log::error!("configuration refused: {too_large}");
            return false;
        }
        let json = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(json) => json.unwrap_or_default(),
            Err(status) => {
                log::error!("configuration refused: reading it failed: {status:?}");
                return false;
            }
        };
        let plan = match compile(&json) {
            Ok(plan) => plan,
            Err(errors) => {
                let errors = describe_errors(&errors);
                let Some(plan) = pass_through_plan(&json) else {
                    log::error!("configuration refused: {errors}");
                    return false;
                };
                // Loud, and at error level so no log_level silences it.
                log::error!("configuration INVALID, accepted as on_invalid_config: pass_through asks: no request is split, each loses the version and cluster headers and is counted in traffic_split_invalid_config_requests_total: {errors}");
                plan
            }
        };
        // The module without the response path (`make build`'s traffic_split_requests.wasm)
        // refuses what it could not do, rather than serve it half.
        #[cfg(feature = "requests-only")]
        if let Some(needs) = plan.response_path_use() {
            log::error!("configuration refused: {needs}; this module (traffic_split_requests.wasm) has no response path: use traffic_split.wasm");
            return false;
        }
        let level = plan.log_level;
        match define_metrics(plan) {
            Ok(active) => {
                // Every ramp where the clock has it, before the gauges are first set.
                follow_ramps(&active);
                proxy_wasm::set_log_level(sdk_log_level(level));
                log::info!(
                    "configured {} route(s); VM memory {} KiB",
                    active.plan.routes.len(),
                    vm_memory_kib()
                );
                let plugin = hostcalls::get_property(vec!["plugin_name"])
                    .ok()
                    .flatten()
                    .and_then(|name| String::from_utf8(name).ok())
                    .unwrap_or_default();
                self.guard_keys = RouteState::guard_keys(&plugin, &active.plan);
                guard::load_all(&active, &self.guard_keys);
                let ramped = active.plan.routes.iter().any(|route| route.ramp.is_some());
                self.timer
                    .set_periodic(self.guard_keys.iter().any(Option::is_some), ramped);
                guard::publish_weights(&active);
                self.active = Some(Rc::new(active));
                true
            }
            Err(status) => {
                log::error!("configuration refused: defining metrics failed: {status:?}");
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

    /// Only a stream owing its client a sticky cookie does anything here. (Not in the module
    /// without the response path, which Envoy never enters here: leaving it out leaves out
    /// the code only it reaches.)
    #[cfg(not(feature = "requests-only"))]
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(active) = &self.active {
            self.stream.on_response_headers(&mut EnvoyHost::new(active));
        }
        Action::Continue
    }

    /// The stream's end, at Envoy's access log: the response code and flags are final.
    #[cfg(not(feature = "requests-only"))]
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

thread_local! {
    /// Every metric this VM has defined, by kind and name. Envoy never frees a metric id while
    /// the VM lives and keeps the name each time one is defined, so a config push that defined
    /// its metrics again would grow Envoy's memory with every push: each name is defined once
    /// per VM, and later root contexts and pushes reuse its id.
    static DEFINED_METRICS: RefCell<HashMap<(MetricType, String), u32>> = RefCell::new(HashMap::new());
}

/// The id of the metric `name`, defined in this VM the first time it is asked for.
fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    let key = (kind, name.to_string());
    if let Some(id) = DEFINED_METRICS.with(|defined| defined.borrow().get(&key).copied()) {
        return Ok(id);
    }
    let id = hostcalls::define_metric(kind, name)?;
    DEFINED_METRICS.with(|defined| defined.borrow_mut().insert(key, id));
    Ok(id)
}

fn define_metrics(plan: Plan) -> Result<Active, Status> {
    let mut plugin = [None; PluginMetric::COUNT];
    for (slot, metric) in plugin.iter_mut().zip(PluginMetric::ALL) {
        if metric.defined_when() == PluginDefinedWhen::Always || plan.pass_through {
            *slot = Some(define(metric.row().kind, metric.name())?);
        }
    }
    let mut metrics = Vec::with_capacity(plan.routes.len());
    let mut unknown_overrides = Vec::with_capacity(plan.routes.len());
    for route in &plan.routes {
        let mut route_metrics = Vec::with_capacity(route.destinations.len());
        for destination in &route.destinations {
            route_metrics.push(define_destination_metrics(
                plan.metrics,
                route,
                destination,
            )?);
        }
        metrics.push(route_metrics);
        let unknown = DestinationMetric::Overrides;
        unknown_overrides.push(match route.override_header {
            Some(_) => Some(define(
                unknown.row().kind,
                &unknown.name(&route.name, UNKNOWN_VERSION),
            )?),
            None => None,
        });
    }
    Ok(Active {
        states: RefCell::new(RouteState::for_plan(&plan)),
        plan,
        metrics,
        unknown_overrides,
        plugin,
    })
}

fn define(kind: MetricKind, name: &str) -> Result<u32, Status> {
    let kind = match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Histogram => MetricType::Histogram,
    };
    define_metric(kind, name)
}

/// Defines every row of the destination table that the route's config needs.
fn define_destination_metrics(
    mode: MetricsMode,
    route: &Route,
    destination: &Destination,
) -> Result<DestinationMetrics, Status> {
    let fault_kinds = destination
        .fault
        .as_ref()
        .map(|fault| fault.kinds())
        .unwrap_or_default();
    let mut ids = [None; DestinationMetric::COUNT];
    for (slot, metric) in ids.iter_mut().zip(DestinationMetric::ALL) {
        let defined = match metric.defined_when() {
            DefinedWhen::Always => true,
            DefinedWhen::FullMetrics => mode == MetricsMode::Full,
            DefinedWhen::Guard => route.guard.is_some(),
            DefinedWhen::Fault(kind) => fault_kinds.contains(&kind),
            DefinedWhen::Sticky => route.sticky.is_some(),
            // Only the sources the route's key can come from: a header-keyed route never
            // counts a cookie, and the reverse.
            DefinedWhen::StickyByHeader => route
                .sticky
                .as_ref()
                .is_some_and(|sticky| matches!(sticky.key, StickyKey::Header(_))),
            DefinedWhen::StickyByCookie => route
                .sticky
                .as_ref()
                .is_some_and(|sticky| matches!(sticky.key, StickyKey::Cookie(_))),
            DefinedWhen::OverrideHeader => route.override_header.is_some(),
        };
        if defined {
            *slot = Some(define(
                metric.row().kind,
                &metric.name(&route.name, &destination.version),
            )?);
        }
    }
    Ok(DestinationMetrics(ids))
}
