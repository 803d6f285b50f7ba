//! The proxy-wasm adapter, on the proxy-wasm Rust SDK: the root context reads the plugin
//! configuration, compiles it into a [`Plan`] and defines the metrics once; each HTTP context
//! hands its request to [`crate::stream::Stream`] with [`host::EnvoyHost`] as its host.
//! Everything that needs thought lives in the core.

mod host;

use crate::config::{compile, describe_errors};
use crate::metrics::{DestinationMetricNames, HOST_ERRORS, UNMATCHED};
use crate::plan::{self, MetricsMode, Plan, Route, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
use crate::stream::Stream;
use host::EnvoyHost;
use proxy_wasm::hostcalls::{self, define_metric};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MetricType, Status};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(SplitRoot::default()) });
}}

/// The metric ids of one route and version, defined at configure time.
pub(crate) struct DestinationMetrics {
    pub requests: u32,
    /// Defined only with full metrics, so that `requests` mode shows no counters that stay 0.
    pub responses: Option<ResponseMetrics>,
    /// The gauge of the weight in force.
    pub weight: u32,
    /// By `KeySource::index`; only on sticky routes.
    pub sticky: Option<[u32; 3]>,
    /// Only on routes with an override header.
    pub overrides: Option<u32>,
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
    /// `metrics[route][destination]`, parallel to `plan.routes[route].destinations`.
    pub metrics: Vec<Vec<DestinationMetrics>>,
    /// Per route: the counter of overrides naming no version, on routes with an override header.
    pub unknown_overrides: Vec<Option<u32>>,
    pub unmatched: u32,
    pub host_errors: u32,
}

/// How often a root context with a ramp brings its ramps and weight gauges up to the clock, so
/// that the gauges move on time on a route that sees no request.
const RAMP_TICK_MS: u32 = 1_000;

/// One per plugin configuration (several plugins may share a VM, each with its own root).
#[derive(Default)]
struct SplitRoot {
    /// `None` until a configuration has been accepted. A refused reconfiguration keeps the
    /// previous one: requests already flowing are never disturbed.
    active: Option<Rc<Active>>,
}

impl Context for SplitRoot {}

impl RootContext for SplitRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
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
                log::error!(
                    "traffic-split: configuration refused: {}",
                    describe_errors(&errors)
                );
                return false;
            }
        };
        let level = plan.log_level;
        match define_metrics(plan) {
            Ok(active) => {
                show_weights(&active);
                let has_ramp = active.plan.routes.iter().any(|route| route.ramp.is_some());
                if let Err(status) =
                    host::set_tick_period_ms(if has_ramp { RAMP_TICK_MS } else { 0 })
                {
                    // Requests still follow the ramp; only an idle route's gauge lags.
                    log::warn!("traffic-split: no timer for the ramps' gauges: {status:?}");
                }
                proxy_wasm::set_log_level(sdk_log_level(level));
                log::info!(
                    "traffic-split: configured {} route(s)",
                    active.plan.routes.len()
                );
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

    /// Only with a ramp: moves each ramp that is due and sets its gauge.
    fn on_tick(&mut self) {
        let Some(active) = &self.active else {
            return;
        };
        let now_nanos = host::proxy_clock_nanos();
        for (route, metrics) in active.plan.routes.iter().zip(&active.metrics) {
            if let Some((destination, weight)) = route.follow_ramp(now_nanos) {
                if let Some(metrics) = metrics.get(destination) {
                    let _ = hostcalls::record_metric(metrics.weight, u64::from(weight));
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SplitStream {
            active: self.active.clone(),
            stream: Stream::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
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

/// One HTTP stream: its configuration as of when it began (a later reconfiguration applies to
/// later streams) and what the core decided for it.
struct SplitStream {
    active: Option<Rc<Active>>,
    stream: Stream,
}

impl Context for SplitStream {}

impl HttpContext for SplitStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match &self.active {
            Some(active) => self
                .stream
                .on_request_headers(&active.plan, &mut EnvoyHost::new(active)),
            None => {
                // Not configured (Envoy does not run a filter whose configuration failed):
                // still never let a client choose the cluster or version.
                host::remove_request_header_anyway(DEFAULT_VERSION_HEADER);
                host::remove_request_header_anyway(DEFAULT_CLUSTER_HEADER);
            }
        }
        Action::Continue
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
            self.stream
                .on_end(&active.plan, &mut EnvoyHost::new(active));
        }
    }
}

/// Brings every ramp to the proxy's clock and sets every weight gauge: the gauges read right
/// from the moment a configuration is in force, before any request.
fn show_weights(active: &Active) {
    let now_nanos = host::proxy_clock_nanos();
    for (route, metrics) in active.plan.routes.iter().zip(&active.metrics) {
        route.follow_ramp(now_nanos);
        for (weight, destination) in route.picker.weights().zip(metrics) {
            let _ = hostcalls::record_metric(destination.weight, u64::from(weight));
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
            route_metrics.push(define_destination_metrics(
                &destination.metric_names,
                plan.metrics,
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
    Ok(Active {
        plan,
        metrics,
        unknown_overrides,
        unmatched,
        host_errors,
    })
}

fn define_destination_metrics(
    names: &DestinationMetricNames,
    mode: MetricsMode,
    route: &Route,
) -> Result<DestinationMetrics, Status> {
    let requests = define_metric(MetricType::Counter, &names.requests)?;
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
        weight: define_metric(MetricType::Gauge, &names.weight)?,
        sticky,
        overrides,
    })
}
