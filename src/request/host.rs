//! The host calls one stream needs, as a small trait: the adapter implements it with proxy-wasm
//! host calls (`crate::filter`), the tests with a scripted host. Every failure is a value the
//! stream handles by failing towards safety.

use crate::metrics::{DestinationMetric, PluginMetric};

/// A host call that did not succeed; the host's status code, for the log of a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError(pub u32);

/// What the stream counts: a row of one of the metric tables ([`crate::metrics`]), and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// A metric of the destination a request was sent to.
    Destination(Chosen, DestinationMetric),
    /// A routed request whose override header named no version of this route: the route's
    /// [`DestinationMetric::Overrides`] under [`crate::metrics::UNKNOWN_VERSION`].
    UnknownOverride { route: usize },
    /// One of the plugin's own metrics.
    Plugin(PluginMetric),
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
    /// a rollout stands.
    fn now_nanos(&mut self) -> u64;
    fn count(&mut self, what: Count);
    /// Sets the gauge of a destination's weight in force.
    fn set_weight(&mut self, destination: Chosen, weight: u32);
    /// Sets the gauge of a destination's share of its route in force, in millionths.
    fn set_share(&mut self, destination: Chosen, share: u32);
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
