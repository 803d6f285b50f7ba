//! The proxy-wasm adapter: reads the plugin configuration, defines the metrics once, and for
//! each request asks the [`Plan`] what to do. Everything that needs thought lives in the core.
//!
//! The module speaks the ABI directly ([`abi`]) rather than through the Rust SDK, so that Envoy
//! enters it only for the callbacks a request needs (see `abi` for the measured reason).
//! Envoy runs one VM per worker thread; within it calls are never concurrent, so the state
//! below lives in thread-locals.

mod abi;
mod stream;

use crate::config::{compile, describe_errors};
use crate::metrics::{DestinationMetricNames, UNMATCHED};
use crate::plan::Plan;
use abi::{define_metric, log, LogLevel, MetricKind};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use stream::SplitStream;

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

/// Context ids are small integers Envoy hands out in sequence: hashing them with SipHash (and
/// seeding it from WASI's random source) buys nothing. A multiplicative hash spreads them.
#[derive(Default)]
struct ContextIdHasher(u64);

impl Hasher for ContextIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u32(u32::from(byte));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = (self.0 ^ u64::from(id)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type ById<T> = HashMap<u32, T, BuildHasherDefault<ContextIdHasher>>;

/// Every context Envoy created in this VM and has not deleted yet.
#[derive(Default)]
struct Contexts {
    /// Root contexts, one per plugin configuration sharing this VM. `None` until a
    /// configuration has been accepted; a refused reconfiguration keeps the previous one, so
    /// requests already flowing are never disturbed.
    roots: ById<Option<Rc<Active>>>,
    streams: ById<SplitStream>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// A root context (`root_context_id == 0`) or an HTTP stream of the root `root_context_id`.
#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    CONTEXTS.with_borrow_mut(|contexts| {
        if root_context_id == 0 {
            contexts.roots.insert(context_id, None);
        } else {
            let active = contexts.roots.get(&root_context_id).cloned().flatten();
            contexts
                .streams
                .insert(context_id, SplitStream::new(active));
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, configuration_size: usize) -> u32 {
    let json = abi::plugin_configuration(configuration_size);
    let plan = match compile(&json) {
        Ok(plan) => plan,
        Err(errors) => {
            log(
                LogLevel::Error,
                &format!(
                    "traffic-split: configuration refused: {}",
                    describe_errors(&errors)
                ),
            );
            return 0;
        }
    };
    let active = match define_metrics(plan) {
        Ok(active) => active,
        Err(status) => {
            log(
                LogLevel::Error,
                &format!(
                    "traffic-split: configuration refused: defining metrics failed (host status {status})"
                ),
            );
            return 0;
        }
    };
    log(
        LogLevel::Info,
        &format!(
            "traffic-split: configured {} route(s)",
            active.plan.routes.len()
        ),
    );
    CONTEXTS.with_borrow_mut(|contexts| {
        contexts
            .roots
            .insert(root_context_id, Some(Rc::new(active)));
    });
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _num_headers: usize,
    _end_of_stream: u32,
) -> u32 {
    CONTEXTS.with_borrow_mut(|contexts| {
        let Contexts { roots, streams } = contexts;
        // Envoy always creates a stream before its headers arrive; should a host not, the
        // stream still gets the filter (or, if the VM's roots leave the choice open, at least
        // the removal of the default owned headers), never a pass with a client's own choice.
        let stream = streams.entry(context_id).or_insert_with(|| {
            let only_root = match roots.len() {
                1 => roots.values().next().cloned().flatten(),
                _ => None,
            };
            SplitStream::new(only_root)
        });
        stream.on_request_headers();
    });
    abi::ACTION_CONTINUE
}

/// The end of a stream (Envoy calls it when it destroys the filter, after the response and the
/// access log): count the response and record the duration, then forget the stream.
#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    let stream = CONTEXTS.with_borrow_mut(|contexts| {
        let stream = contexts.streams.remove(&context_id);
        if stream.is_none() {
            contexts.roots.remove(&context_id);
        }
        stream
    });
    if let Some(stream) = stream {
        stream.on_delete();
    }
}

fn define_metrics(plan: Plan) -> Result<Active, u32> {
    let unmatched = define_metric(MetricKind::Counter, UNMATCHED)?;
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

fn define_destination_metrics(names: &DestinationMetricNames) -> Result<DestinationMetrics, u32> {
    let [success, redirect, client_error, server_error] = &names.responses;
    Ok(DestinationMetrics {
        requests: define_metric(MetricKind::Counter, &names.requests)?,
        responses: [
            define_metric(MetricKind::Counter, success)?,
            define_metric(MetricKind::Counter, redirect)?,
            define_metric(MetricKind::Counter, client_error)?,
            define_metric(MetricKind::Counter, server_error)?,
        ],
        timeouts: define_metric(MetricKind::Counter, &names.timeouts)?,
        duration: define_metric(MetricKind::Histogram, &names.duration)?,
    })
}
