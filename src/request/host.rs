//! The host calls one stream needs, as a small trait: the adapter implements it with proxy-wasm
//! host calls (`crate::filter`), the tests with a scripted host. Every failure is a value the
//! stream handles by failing towards safety.

use crate::metrics::{CodeClass, KeySource};
use crate::split::fault::FaultKind;

/// A host call that did not succeed; the host's status code, for the log of a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError(pub u32);

/// What the stream counts, by route and destination index into the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// A request sent to this destination with every owned header written.
    Routed(Chosen),
    /// A request no route matched.
    Unmatched,
    /// A request under the pass-through plan of a refused config ([`crate::plan::Plan::pass_through`]).
    InvalidConfig,
    /// A host call that failed while handling a request.
    HostError,
    /// The class of the response to a routed request.
    Response(Chosen, CodeClass),
    /// Envoy's own deadline (or a per-try deadline) cut a routed request.
    Timeout(Chosen),
    /// A fault was injected into a routed request.
    Fault(Chosen, FaultKind),
    /// A routed request of a sticky route, by where its key came from.
    Sticky(Chosen, KeySource),
    /// A routed request sent where its override header said.
    Override(Chosen),
    /// A routed request whose override header named no version of this route.
    UnknownOverride { route: usize },
}

/// The route and destination a request was sent to, as indexes into the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub route: usize,
    pub destination: usize,
}

/// The host calls a stream needs.
pub trait StreamHost {
    /// Every request header, serialized as proxy-wasm serializes a header map
    /// ([`crate::request::headers`]), in one host call.
    fn request_header_pairs(&mut self) -> Result<Vec<u8>, HostError>;
    /// Sets a request header, replacing every value it had.
    fn replace_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Adds a request header the request does not have (cheaper for Envoy than a replace).
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Adds a response header (a `Set-Cookie`).
    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Fills `bytes` from the host's secure random source (a sticky cookie's fresh key).
    fn random_bytes(&mut self, bytes: &mut [u8]) -> Result<(), HostError>;
    /// The response's status code, if there was a response.
    fn response_code(&mut self) -> Result<Option<i64>, HostError>;
    /// Envoy's `response.flags` bit set.
    fn response_flags(&mut self) -> Result<Option<u64>, HostError>;
    /// The proxy's clock, in nanoseconds since the Unix epoch: a request's duration, and where
    /// a ramp stands.
    fn now_nanos(&mut self) -> u64;
    fn count(&mut self, what: Count);
    /// Sets the gauge of a destination's weight in force.
    fn set_weight(&mut self, destination: Chosen, weight: u32);
    /// Answers the request with a local reply (a status, a body, one header).
    fn send_local_reply(
        &mut self,
        status: u16,
        body: &str,
        header: (&str, &str),
    ) -> Result<(), HostError>;
    /// Records a routed request's duration in the latency histogram, in microseconds.
    fn record_duration_us(&mut self, chosen: Chosen, microseconds: u64);
}
