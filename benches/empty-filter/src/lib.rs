//! The floor of any proxy-wasm filter, for `make bench`: a root context that accepts any
//! configuration and an HTTP context whose callbacks all keep the SDK's default, Continue.
//! What Envoy spends on this module is the cost of a Wasm filter as such (the VM calls per
//! stream); what traffic-split spends beyond it is the cost of its own work.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(EmptyRoot) });
}}

struct EmptyRoot;

impl Context for EmptyRoot {}

impl RootContext for EmptyRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EmptyStream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct EmptyStream;

impl Context for EmptyStream {}

impl HttpContext for EmptyStream {}
