//! The proxy-wasm adapter: reads the plugin configuration, defines the metrics once, and for
//! each request asks the [`Plan`] what to do. Everything that needs thought lives in the core.

mod stream;

use crate::config::{compile, describe_errors};
use crate::metrics::{DestinationMetricNames, UNMATCHED};
use crate::plan::Plan;
use proxy_wasm::hostcalls::define_metric;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel, MetricType, Status};
use std::rc::Rc;
use stream::SplitStream;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(SplitRoot::default()) });
}}

/// The metric ids of one route and version, defined at configure time.
pub(crate) struct DestinationMetrics {
    pub requests: u32,
    /// Indexed by `CodeClass::index`.
    pub responses: [u32; 4],
    pub timeouts: u32,
    pub duration: u32,
}

/// What a configuration compiles to: the plan, and metric ids laid out like its routes.
pub(crate) struct Active {
    pub plan: Plan,
    /// `metrics[route][destination]`, parallel to `plan.routes[route].destinations`.
    pub metrics: Vec<Vec<DestinationMetrics>>,
    pub unmatched: u32,
}

#[derive(Default)]
struct SplitRoot {
    /// `None` until a configuration has been accepted. A refused reconfiguration keeps the
    /// previous one: requests already flowing are never disturbed.
    active: Option<Rc<Active>>,
}

impl Context for SplitRoot {}

impl RootContext for SplitRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let json = self.get_plugin_configuration().unwrap_or_default();
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
        match define_metrics(plan) {
            Ok(active) => {
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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SplitStream::new(self.active.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn define_metrics(plan: Plan) -> Result<Active, Status> {
    let unmatched = define_metric(MetricType::Counter, UNMATCHED)?;
    let mut metrics = Vec::with_capacity(plan.routes.len());
    for route in &plan.routes {
        let mut route_metrics = Vec::with_capacity(route.destinations.len());
        for destination in &route.destinations {
            route_metrics.push(define_destination_metrics(&destination.metric_names)?);
        }
        metrics.push(route_metrics);
    }
    Ok(Active {
        plan,
        metrics,
        unmatched,
    })
}

fn define_destination_metrics(
    names: &DestinationMetricNames,
) -> Result<DestinationMetrics, Status> {
    let [success, redirect, client_error, server_error] = &names.responses;
    Ok(DestinationMetrics {
        requests: define_metric(MetricType::Counter, &names.requests)?,
        responses: [
            define_metric(MetricType::Counter, success)?,
            define_metric(MetricType::Counter, redirect)?,
            define_metric(MetricType::Counter, client_error)?,
            define_metric(MetricType::Counter, server_error)?,
        ],
        timeouts: define_metric(MetricType::Counter, &names.timeouts)?,
        duration: define_metric(MetricType::Histogram, &names.duration)?,
    })
}
