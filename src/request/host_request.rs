//! The request as the stream reads and writes it: its headers fetched in one host call the
//! first time a route asks about them, then read in place; the owned headers written (or
//! removed) whatever the client sent; every failed host call noted, so that a request whose
//! write failed is never counted as routed.

use super::headers::{cookie_value, HeaderPairs};
use super::host::{Count, HostError, StreamHost};
use super::stream::Verdict;
use crate::metrics::PluginMetric;
use crate::plan::{
    Destination, Plan, RequestView, DEADLINE_HEADER, GRPC_RETRY_ON_HEADER,
    HEDGE_ON_PER_TRY_TIMEOUT_HEADER, MAX_RETRIES_HEADER, PER_TRY_TIMEOUT_HEADER,
    REMOVED_TIMEOUT_HEADERS, RETRIABLE_HEADER_NAMES_HEADER, RETRIABLE_STATUS_CODES_HEADER,
    RETRY_HEADERS, RETRY_ON_HEADER,
};

/// The length of a sticky cookie's fresh key: 128 random bits, written as 32 hex digits.
const FRESH_KEY_BYTES: usize = 16;

/// The request's headers as the matcher sees them: fetched in one host call the first time a
/// route asks about the request, then read in place.
enum Fetched {
    NotYet,
    Headers(Vec<u8>),
    /// The host could not give them: the request reads as one without headers, and whether
    /// the client sent an owned header is unknown.
    Failed,
}

pub(super) struct HostRequest<'h, H: StreamHost> {
    pub(super) host: &'h mut H,
    fetched: Fetched,
    /// Whether a write of an owned header failed: the request is then not counted as routed.
    pub(super) write_failed: bool,
    /// Host calls that failed for this request, counted once the request is handled.
    failures: u32,
}

impl<'h, H: StreamHost> HostRequest<'h, H> {
    pub(super) fn new(host: &'h mut H) -> Self {
        HostRequest {
            host,
            fetched: Fetched::NotYet,
            write_failed: false,
            failures: 0,
        }
    }

    /// Notes the outcome of a header write; whether it succeeded.
    pub(super) fn note_write(&mut self, result: Result<(), HostError>) -> bool {
        let ok = result.is_ok();
        if !ok {
            self.write_failed = true;
            self.failures += 1;
        }
        ok
    }

    pub(super) fn headers(&mut self) -> Option<HeaderPairs<'_>> {
        if matches!(self.fetched, Fetched::NotYet) {
            self.fetched = match self.host.request_header_pairs() {
                Ok(bytes) => Fetched::Headers(bytes),
                Err(_) => {
                    self.failures += 1;
                    Fetched::Failed
                }
            };
        }
        match &self.fetched {
            Fetched::Headers(bytes) => Some(HeaderPairs::new(bytes)),
            Fetched::NotYet | Fetched::Failed => None,
        }
    }

    /// Whether the client sent a header, if the headers are at hand. Fetching them only to
    /// find out would cost more than what knowing saves; unknown reads as "maybe".
    pub(super) fn sent(&self, name: &str) -> Option<bool> {
        match &self.fetched {
            Fetched::Headers(bytes) => Some(HeaderPairs::new(bytes).get(name).is_some()),
            Fetched::NotYet | Fetched::Failed => None,
        }
    }

    /// Whether the client sent exactly this one value for a header, if the headers are at
    /// hand: then the header already says what the filter would write.
    pub(super) fn sent_exactly(&self, name: &str, value: &str) -> bool {
        let Fetched::Headers(bytes) = &self.fetched else {
            return false;
        };
        let mut values = HeaderPairs::new(bytes)
            .iter()
            .filter(|(header, _)| *header == name.as_bytes());
        values
            .next()
            .is_some_and(|(_, sent)| sent == value.as_bytes())
            && values.next().is_none()
    }

    /// Sets a header the filter owns: every value the client sent for it is replaced, unless
    /// the client sent exactly this value (a write that changes nothing still costs a host call
    /// and a route-cache clear). If the host fails the write, the header is removed, so that no
    /// client value survives.
    pub(super) fn set(&mut self, name: &str, value: &str) {
        if self.sent_exactly(name, value) {
            return;
        }
        let written = if self.sent(name) == Some(false) {
            self.host.add_request_header(name, value)
        } else {
            self.host.replace_request_header(name, value)
        };
        if !self.note_write(written) {
            let removed = self.host.remove_request_header(name);
            self.note_write(removed);
        }
    }

    /// Removes a header the filter owns unless the client is known not to have sent it: a
    /// removal the request does not need still costs a host call and a route-cache clear.
    pub(super) fn remove_if_sent(&mut self, name: &str) {
        if self.sent(name) != Some(false) {
            let removed = self.host.remove_request_header(name);
            self.note_write(removed);
        }
    }

    /// A cookie of the request, from any of its `cookie` headers.
    pub(super) fn cookie(&mut self, name: &str) -> Option<&[u8]> {
        self.headers()?
            .iter()
            .filter(|(header, _)| *header == b"cookie")
            .find_map(|(_, value)| cookie_value(value, name))
    }

    /// A fresh random key, as hex; `None` (counted as a host error) when the host has no
    /// randomness to give.
    pub(super) fn fresh_key(&mut self) -> Option<String> {
        let mut bytes = [0u8; FRESH_KEY_BYTES];
        if self.host.random_bytes(&mut bytes).is_err() {
            self.failures += 1;
            return None;
        }
        let hex = bytes
            .iter()
            .flat_map(|byte| [byte >> 4, byte & 0xf])
            .filter_map(|nibble| char::from_digit(u32::from(nibble), 16))
            .collect();
        Some(hex)
    }

    /// A request no route takes (or, never built by validation, one whose route has no
    /// destinations): it loses the version and cluster headers, and is counted as unmatched
    /// (or as served under a refused config).
    pub(super) fn pass_unrouted(mut self, plan: &Plan, matched: bool) -> Verdict {
        self.remove_if_sent(&plan.version_header);
        self.remove_if_sent(&plan.cluster_header);
        if plan.pass_through {
            self.host
                .count(Count::Plugin(PluginMetric::InvalidConfigRequests));
        } else if !matched {
            self.host.count(Count::Plugin(PluginMetric::Unmatched));
        }
        self.count_failures();
        Verdict::Continue
    }

    /// Writes every header the filter owns for a request sent to `destination`: version,
    /// cluster, deadline, and Envoy's retry policy (the config's where it has one, a client's
    /// removed).
    pub(super) fn write_owned_headers(&mut self, plan: &Plan, destination: &Destination) {
        self.set(&plan.version_header, &destination.version);
        match &destination.cluster {
            Some(cluster) => self.set(&plan.cluster_header, cluster),
            None => self.remove_if_sent(&plan.cluster_header),
        }
        // Written or removed on every routed request: a client's deadline would otherwise make
        // a version without one time out (Envoy honours it from internal clients).
        match &destination.deadline_header_value {
            Some(deadline) => self.set(DEADLINE_HEADER, deadline),
            None => self.remove_if_sent(DEADLINE_HEADER),
        }
        // Envoy's other timeout headers, never the filter's to write: a client could turn the
        // version's timeouts into answers, or stretch its deadline.
        for header in REMOVED_TIMEOUT_HEADERS {
            self.remove_if_sent(header);
        }
        match &destination.retries {
            Some(retries) => {
                self.set(MAX_RETRIES_HEADER, &retries.max_retries);
                self.set(RETRY_ON_HEADER, &retries.retry_on);
                for (header, value) in [
                    (PER_TRY_TIMEOUT_HEADER, &retries.per_try_timeout_ms),
                    (GRPC_RETRY_ON_HEADER, &retries.grpc_retry_on),
                    (
                        RETRIABLE_STATUS_CODES_HEADER,
                        &retries.retriable_status_codes,
                    ),
                    (
                        RETRIABLE_HEADER_NAMES_HEADER,
                        &retries.retriable_header_names,
                    ),
                ] {
                    match value {
                        Some(value) => self.set(header, value),
                        None => self.remove_if_sent(header),
                    }
                }
                self.remove_if_sent(HEDGE_ON_PER_TRY_TIMEOUT_HEADER);
            }
            None => {
                for header in RETRY_HEADERS {
                    self.remove_if_sent(header);
                }
            }
        }
    }

    pub(super) fn count_failures(&mut self) {
        for _ in 0..self.failures {
            self.host.count(Count::Plugin(PluginMetric::HostErrors));
        }
        self.failures = 0;
    }
}

impl<H: StreamHost> RequestView for HostRequest<'_, H> {
    fn path(&mut self) -> Option<&[u8]> {
        self.headers()?.get(":path")
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.headers()?.get(":method")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers()?.get(name)
    }
}
