//! [`StreamHost`] on Envoy's dynamic-module ABI: the host calls one stream makes, each a call
//! into Envoy with the stream's filter pointer. Every failure is a value the core handles by
//! failing towards safety.

use crate::abi::{self, FilterEnvoyPtr, ModuleBuffer};
use crate::metric_id::{self, EnvoyMetric};
use crate::worker_host::clock_nanos;
use traffic_split::metrics::{DestinationMetric, MetricKind};
use traffic_split::request::headers::serialize_pair_slices;
use traffic_split::request::{Chosen, Count, HostError, StreamHost};
use traffic_split::worker::MetricIds;

/// The details Envoy logs for the filter's local reply (`%RESPONSE_CODE_DETAILS%`), as the Wasm
/// module's.
const LOCAL_REPLY_DETAILS: &str = "traffic_split_fault_abort";

/// How many request headers are read into a buffer on the stack (more go to the heap).
const HEADERS_ON_STACK: usize = 64;

/// A failed header call (Envoy says only that it failed).
const HEADER_CALL_FAILED: HostError = HostError(1);

/// The host for one hook of one stream.
pub struct EnvoyStreamHost<'a> {
    filter: FilterEnvoyPtr,
    /// `None` for a stream without a configuration.
    metrics: Option<&'a MetricIds>,
    /// Whether a request header was written, added or removed: the route must then be
    /// resolved again (Envoy's dynamic-module `set_header` does not clear the route cache
    /// itself, unlike proxy-wasm's).
    pub wrote_request_headers: bool,
}

fn header_result(ok: bool) -> Result<(), HostError> {
    if ok {
        Ok(())
    } else {
        Err(HEADER_CALL_FAILED)
    }
}

impl<'a> EnvoyStreamHost<'a> {
    pub fn new(filter: FilterEnvoyPtr, metrics: Option<&'a MetricIds>) -> Self {
        EnvoyStreamHost {
            filter,
            metrics,
            wrote_request_headers: false,
        }
    }

    fn set_header(&mut self, kind: abi::HeaderType, name: &str, value: ModuleBuffer) -> bool {
        // SAFETY: Envoy only reads the two buffers, within the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                kind,
                ModuleBuffer::of(name.as_bytes()),
                value,
            )
        }
    }

    fn add_header(&mut self, kind: abi::HeaderType, name: &str, value: &str) -> bool {
        // SAFETY: Envoy only reads the two buffers, within the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_add_header(
                self.filter,
                kind,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        }
    }

    fn attribute(&mut self, attribute: abi::AttributeId) -> Option<u64> {
        let mut value = 0u64;
        // SAFETY: Envoy writes one u64 through the pointer, within the call.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_int(
                self.filter,
                attribute,
                &mut value,
            )
        };
        found.then_some(value)
    }

    /// A metric of Envoy's: one of the worker's ids, if it is of `kind`.
    fn envoy_metric(id: Option<u32>, kind: MetricKind) -> Option<usize> {
        id.and_then(metric_id::decode)
            .filter(|metric| metric.kind == kind)
            .map(|EnvoyMetric { id, .. }| id)
    }

    fn destination(&self, chosen: Chosen, metric: DestinationMetric) -> Option<u32> {
        self.metrics?
            .destination(chosen.route, chosen.destination, metric)
    }

    /// Has Envoy pick the route again, if a request header was written.
    pub fn resolve_route_again(&mut self) {
        if self.wrote_request_headers {
            // SAFETY: the stream's own filter pointer, within one of its hooks.
            unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(self.filter) };
        }
    }
}

impl EnvoyStreamHost<'_> {
    /// Sets a gauge of the destination a request went to (its weight, its share).
    fn set_gauge(&mut self, destination: Chosen, metric: DestinationMetric, value: u64) {
        let id = self.destination(destination, metric);
        if let Some(id) = Self::envoy_metric(id, MetricKind::Gauge) {
            // SAFETY: an id defined on this stream's config; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_set_gauge(
                    self.filter,
                    id,
                    std::ptr::null_mut(),
                    0,
                    value,
                )
            };
        }
    }
}

impl StreamHost for EnvoyStreamHost<'_> {
    fn request_header_pairs(&mut self) -> Result<Vec<u8>, HostError> {
        // SAFETY: the stream's own filter pointer, within one of its hooks.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers_size(
                self.filter,
                abi::REQUEST_HEADERS,
            )
        };
        // A request's headers fit on the stack, unless a client sent many.
        let mut on_stack = [abi::EnvoyHttpHeader::EMPTY; HEADERS_ON_STACK];
        let mut on_heap = Vec::new();
        let headers = if count <= HEADERS_ON_STACK {
            on_stack.get_mut(..count).unwrap_or_default()
        } else {
            on_heap.resize(count, abi::EnvoyHttpHeader::EMPTY);
            on_heap.as_mut_slice()
        };
        // SAFETY: room for `count` headers, which Envoy fills; the bytes they point to stay
        // valid until this hook ends or a header is written, and are copied before either.
        let read = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.filter,
                abi::REQUEST_HEADERS,
                headers.as_mut_ptr(),
            )
        };
        header_result(read || count == 0)?;
        let pairs = headers.iter().map(|header| {
            // SAFETY: as above.
            unsafe {
                (
                    abi::EnvoyBuffer {
                        ptr: header.key_ptr,
                        length: header.key_length,
                    }
                    .bytes(),
                    abi::EnvoyBuffer {
                        ptr: header.value_ptr,
                        length: header.value_length,
                    }
                    .bytes(),
                )
            }
        });
        Ok(serialize_pair_slices(pairs))
    }

    fn replace_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.wrote_request_headers = true;
        let value = ModuleBuffer::of(value.as_bytes());
        header_result(self.set_header(abi::REQUEST_HEADERS, name, value))
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.wrote_request_headers = true;
        header_result(self.add_header(abi::REQUEST_HEADERS, name, value))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.wrote_request_headers = true;
        header_result(self.set_header(abi::REQUEST_HEADERS, name, ModuleBuffer::NULL))
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        header_result(self.add_header(abi::RESPONSE_HEADERS, name, value))
    }

    fn random_bytes(&mut self, bytes: &mut [u8]) -> Result<(), HostError> {
        getrandom::getrandom(bytes).map_err(|error| HostError(error.code().get()))
    }

    fn response_code(&mut self) -> Result<Option<i64>, HostError> {
        Ok(self
            .attribute(abi::ATTRIBUTE_RESPONSE_CODE)
            .and_then(|code| i64::try_from(code).ok()))
    }

    fn response_flags(&mut self) -> Result<Option<u64>, HostError> {
        Ok(self.attribute(abi::ATTRIBUTE_RESPONSE_FLAGS))
    }

    fn now_nanos(&mut self) -> u64 {
        clock_nanos()
    }

    fn count(&mut self, what: Count) {
        let id = self.metrics.and_then(|metrics| metrics.resolve(what));
        if let Some(id) = Self::envoy_metric(id, MetricKind::Counter) {
            // SAFETY: an id defined on this stream's config; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.filter,
                    id,
                    std::ptr::null_mut(),
                    0,
                    1,
                )
            };
        }
    }

    fn set_weight(&mut self, destination: Chosen, weight: u32) {
        self.set_gauge(destination, DestinationMetric::Weight, u64::from(weight));
    }

    fn set_share(&mut self, destination: Chosen, share: u32) {
        self.set_gauge(destination, DestinationMetric::Share, u64::from(share));
    }

    fn send_local_reply(
        &mut self,
        status: u16,
        body: &str,
        header: (&str, &str),
    ) -> Result<(), HostError> {
        let mut headers = [abi::ModuleHttpHeader {
            key_ptr: header.0.as_ptr().cast(),
            key_length: header.0.len(),
            value_ptr: header.1.as_ptr().cast(),
            value_length: header.1.len(),
        }];
        // SAFETY: Envoy only reads the header, body and details, within the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.filter,
                u32::from(status),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body.as_bytes()),
                ModuleBuffer::of(LOCAL_REPLY_DETAILS.as_bytes()),
            )
        };
        Ok(())
    }

    fn record_duration_us(&mut self, chosen: Chosen, microseconds: u64) {
        let id = self.destination(chosen, DestinationMetric::Duration);
        if let Some(id) = Self::envoy_metric(id, MetricKind::Histogram) {
            // SAFETY: an id defined on this stream's config; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                    self.filter,
                    id,
                    std::ptr::null_mut(),
                    0,
                    microseconds,
                )
            };
        }
    }
}
