//! One filter configuration: compiled once on Envoy's main thread (`config_new`), its metrics
//! defined there, and shared by the streams of every worker. What changes while routes serve
//! is kept per worker thread (`crate::worker_state`).

use crate::abi::{self, ConfigEnvoyPtr, ModuleBuffer};
use crate::logger;
use traffic_split::config::limits::check_config_size;
use traffic_split::config::pass_through::pass_through_plan;
use traffic_split::config::{compile, describe_errors};
use traffic_split::metrics::{
    DefinedWhen, DestinationMetric, MetricKind, PluginDefinedWhen, PluginMetric, UNKNOWN_VERSION,
};
use traffic_split::plan::{Destination, MetricsMode, Plan, Route, StickyKey};
use traffic_split::request::{Chosen, Count};
use traffic_split::state::RouteState;

/// A configuration Envoy created, as the module holds it.
pub struct NativeConfig {
    /// Envoy's side of it: metrics are defined, and counted outside a stream, through it.
    pub envoy: usize,
    pub plan: Plan,
    pub metrics: MetricIds,
    /// Where each guarded route keeps its state in the process's shared store.
    pub guard_keys: Vec<Option<String>>,
}

/// The metric ids of a configuration, laid out like its routes.
#[derive(Default)]
pub struct MetricIds {
    /// `destinations[route][destination][row]`.
    destinations: Vec<Vec<[Option<usize>; DestinationMetric::COUNT]>>,
    unknown_overrides: Vec<Option<usize>>,
    plugin: [Option<usize>; PluginMetric::COUNT],
}

impl MetricIds {
    pub fn destination(&self, chosen: Chosen, metric: DestinationMetric) -> Option<usize> {
        self.destinations
            .get(chosen.route)?
            .get(chosen.destination)?
            .get(metric.index())
            .copied()
            .flatten()
    }

    pub fn of_count(&self, what: Count) -> Option<usize> {
        match what {
            Count::Destination(chosen, metric) => self.destination(chosen, metric),
            Count::UnknownOverride { route } => {
                self.unknown_overrides.get(route).copied().flatten()
            }
            Count::Plugin(metric) => self.plugin.get(metric.index()).copied().flatten(),
        }
    }

    pub fn weight(&self, chosen: Chosen) -> Option<usize> {
        self.destination(chosen, DestinationMetric::Weight)
    }

    pub fn duration(&self, chosen: Chosen) -> Option<usize> {
        self.destination(chosen, DestinationMetric::Duration)
    }
}

impl NativeConfig {
    /// Compiles `json`; `None` (with every reason logged, in one line) when it is refused.
    pub fn new(envoy: ConfigEnvoyPtr, plugin_name: &str, json: &[u8]) -> Option<NativeConfig> {
        if let Some(too_large) = check_config_size(json.len()) {
            logger::critical(&format!("configuration refused: {too_large}"));
            return None;
        }
        let plan = match compile(json) {
            Ok(plan) => plan,
            Err(errors) => {
                // Every error in one line, as the Wasm module logs them.
                let errors = describe_errors(&errors);
                let Some(plan) = pass_through_plan(json) else {
                    logger::critical(&format!("configuration refused: {errors}"));
                    return None;
                };
                log::error!("configuration INVALID, accepted as on_invalid_config: pass_through asks: no request is split, each loses the version and cluster headers and is counted in traffic_split_invalid_config_requests_total: {errors}");
                plan
            }
        };
        let metrics = match define_metrics(envoy, &plan) {
            Ok(metrics) => metrics,
            Err(name) => {
                logger::critical(&format!(
                    "configuration refused: defining metric {name} failed"
                ));
                return None;
            }
        };
        log::set_max_level(level_filter(plan.log_level));
        log::info!("configured {} route(s)", plan.routes.len());
        Some(NativeConfig {
            envoy: envoy as usize,
            guard_keys: RouteState::guard_keys(plugin_name, &plan),
            plan,
            metrics,
        })
    }
}

fn level_filter(level: traffic_split::plan::LogLevel) -> log::LevelFilter {
    use traffic_split::plan::LogLevel;
    match level {
        LogLevel::Trace => log::LevelFilter::Trace,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
    }
}

/// Defines one metric on Envoy's config; `Err(name)` when Envoy refuses.
fn define(envoy: ConfigEnvoyPtr, kind: MetricKind, name: &str) -> Result<usize, String> {
    let define = match kind {
        MetricKind::Counter => abi::envoy_dynamic_module_callback_http_filter_config_define_counter,
        MetricKind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
        MetricKind::Histogram => {
            abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
        }
    };
    let mut id = 0usize;
    // SAFETY: Envoy reads the name and writes the id, within the call; no labels.
    let result = unsafe {
        define(
            envoy,
            ModuleBuffer::of(name.as_bytes()),
            std::ptr::null_mut(),
            0,
            &mut id,
        )
    };
    if result == abi::METRICS_SUCCESS {
        Ok(id)
    } else {
        Err(name.to_string())
    }
}

fn define_metrics(envoy: ConfigEnvoyPtr, plan: &Plan) -> Result<MetricIds, String> {
    let mut ids = MetricIds::default();
    for (slot, metric) in ids.plugin.iter_mut().zip(PluginMetric::ALL) {
        if metric.defined_when() == PluginDefinedWhen::Always || plan.pass_through {
            *slot = Some(define(envoy, metric.row().kind, metric.name())?);
        }
    }
    for route in &plan.routes {
        let mut route_ids = Vec::with_capacity(route.destinations.len());
        for destination in &route.destinations {
            route_ids.push(define_destination(envoy, plan.metrics, route, destination)?);
        }
        ids.destinations.push(route_ids);
        let unknown = DestinationMetric::Overrides;
        ids.unknown_overrides.push(match route.override_header {
            Some(_) => Some(define(
                envoy,
                unknown.row().kind,
                &unknown.name(&route.name, UNKNOWN_VERSION),
            )?),
            None => None,
        });
    }
    Ok(ids)
}

fn define_destination(
    envoy: ConfigEnvoyPtr,
    mode: MetricsMode,
    route: &Route,
    destination: &Destination,
) -> Result<[Option<usize>; DestinationMetric::COUNT], String> {
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
                envoy,
                metric.row().kind,
                &metric.name(&route.name, &destination.version),
            )?);
        }
    }
    Ok(ids)
}

/// A configuration is shared by the worker threads of Envoy.
const _: fn() = || {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<NativeConfig>();
};
