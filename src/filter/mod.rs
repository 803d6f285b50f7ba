//! The proxy-wasm adapter, on the proxy-wasm Rust SDK: glue between the SDK's callbacks and the
//! core's [`Worker`]. The root context hands its configuration and its timer to the worker; each
//! HTTP context hands its stream to the worker with [`host::EnvoyHost`] as its host.
//! Everything that needs thought lives in the core (`crate::worker`, `crate::request`).

mod host;

use crate::config::limits::check_config_size;
use crate::plan;
use crate::request::{Stream, Verdict};
use crate::worker::{self, Capabilities, DefinedMetrics, Timer, Worker};
use host::{EnvoyHost, WasmWorkerHost};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(SplitRoot { context_id, ..SplitRoot::default() })
    });
}}

thread_local! {
    /// Every metric this VM has defined: once per VM, across root contexts and pushes.
    static DEFINED_METRICS: RefCell<DefinedMetrics> = RefCell::new(DefinedMetrics::default());
}

/// What this module can serve: the module without the response path refuses configs that
/// need it.
const CAPABILITIES: Capabilities = Capabilities {
    response_path: !cfg!(feature = "requests-only"),
    // A panic in Wasm is a trap: the VM is gone, nothing could count it.
    catches_panics: false,
};

/// One per plugin configuration (several plugins may share a VM, each with its own root).
#[derive(Default)]
struct SplitRoot {
    /// `None` until a configuration has been accepted. A refused reconfiguration keeps the
    /// previous one: requests already flowing are never disturbed.
    worker: Option<Rc<Worker>>,
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
        let plugin = hostcalls::get_property(vec!["plugin_name"])
            .ok()
            .flatten()
            .and_then(|name| String::from_utf8(name).ok())
            .unwrap_or_default();
        let host = WasmWorkerHost;
        let configured = DEFINED_METRICS.with(|defined| match defined.try_borrow_mut() {
            Ok(mut defined) => Worker::configure(&json, &plugin, CAPABILITIES, &host, &mut defined),
            Err(_) => Err(worker::Refused("metrics are being defined".into())),
        });
        match configured {
            Ok(configured) => {
                proxy_wasm::set_log_level(sdk_log_level(configured.plan().log_level));
                log::info!(
                    "configured {} route(s); VM memory {} KiB",
                    configured.plan().routes.len(),
                    vm_memory_kib()
                );
                self.timer
                    .set_needs(configured.tick_needs(), worker::now_ms(&host), &host);
                self.worker = Some(Rc::new(configured));
                true
            }
            Err(refused) => {
                log::error!("{refused}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SplitStream {
            worker: self.worker.clone(),
            stream: Stream::default(),
            context_id,
            timer: Rc::clone(&self.timer),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        let host = WasmWorkerHost;
        if let Some(worker) = &self.worker {
            worker.tick(&host);
        }
        let now_ms = worker::now_ms(&host);
        let due = self.timer.due(now_ms);
        for stream in &due {
            // A stream that ended meanwhile was forgotten; one the host no longer knows is
            // skipped (BadArgument), never resumed blindly.
            let Ok(context_id) = u32::try_from(*stream) else {
                continue;
            };
            if hostcalls::set_effective_context(context_id).is_ok() {
                let _ = hostcalls::resume_http_request();
            }
        }
        if !due.is_empty() {
            let _ = hostcalls::set_effective_context(self.context_id);
        }
        self.timer.arm(now_ms, &host);
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
    worker: Option<Rc<Worker>>,
    stream: Stream,
    context_id: u32,
    timer: Rc<Timer>,
}

impl Drop for SplitStream {
    /// A held request whose client left is released from the timer, never resumed.
    fn drop(&mut self) {
        self.timer.forget(u64::from(self.context_id));
    }
}

impl Context for SplitStream {}

impl HttpContext for SplitStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        #[cfg(feature = "trap-on-marked-request")]
        if self.get_http_request_header(TRAP_HEADER).is_some() {
            core::arch::wasm32::unreachable();
        }
        let Some(worker) = &self.worker else {
            worker::on_unconfigured_request(&mut EnvoyHost::unconfigured());
            return Action::Continue;
        };
        let mut host = EnvoyHost::new(worker.metrics());
        match worker.on_request_headers(&mut self.stream, &mut host) {
            Verdict::Continue => Action::Continue,
            // The local reply is on its way; the request goes no further.
            Verdict::Answered => Action::Pause,
            Verdict::Held { delay_ms } => {
                let root = WasmWorkerHost;
                let now_ms = worker::now_ms(&root);
                self.timer.hold(
                    u64::from(self.context_id),
                    now_ms.saturating_add(delay_ms),
                    now_ms,
                    &root,
                );
                Action::Pause
            }
        }
    }

    /// Only a stream owing its client a sticky cookie does anything here. (Not in the module
    /// without the response path, which Envoy never enters here: leaving it out leaves out
    /// the code only it reaches.)
    #[cfg(not(feature = "requests-only"))]
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(worker) = &self.worker {
            worker.on_response_headers(&mut self.stream, &mut EnvoyHost::new(worker.metrics()));
        }
        Action::Continue
    }

    /// The stream's end, at Envoy's access log: the response code and flags are final.
    #[cfg(not(feature = "requests-only"))]
    fn on_log(&mut self) {
        if let Some(worker) = &self.worker {
            worker.on_end(&self.stream, &mut EnvoyHost::new(worker.metrics()));
        }
    }
}
