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
    Headers(Vec<u8>, Summary),
    /// The host could not give them: the request reads as one without headers, and whether
    /// the client sent an owned header is unknown.
    Failed,
}

/// Where the request's pseudo-headers sit in its fetched headers, and whether it sent any of
/// Envoy's `x-envoy-` headers, all found in one pass: every routed request asks about ten
/// owned `x-envoy-` headers and every route about the path and method, and a scan of the
/// serialized map each time was the native module's largest cost of its own (5,000 of its
/// 16,000 instructions a request, measured with callgrind).
#[derive(Default)]
struct Summary {
    path: Option<(usize, usize)>,
    method: Option<(usize, usize)>,
    sent_envoy_header: bool,
}

/// The prefix of every header of Envoy's that the filter owns (`crate::plan`'s deadline, timeout
/// and retry headers).
const ENVOY_HEADER_PREFIX: &[u8] = b"x-envoy-";

impl Summary {
    fn of(bytes: &[u8]) -> Summary {
        let mut summary = Summary::default();
        let start = bytes.as_ptr() as usize;
        // The offsets of a value within `bytes`, which it borrows from.
        let span = |value: &[u8]| (value.as_ptr() as usize - start, value.len());
        for (name, value) in HeaderPairs::new(bytes).iter() {
            match name {
                b":path" if summary.path.is_none() => summary.path = Some(span(value)),
                b":method" if summary.method.is_none() => summary.method = Some(span(value)),
                _ => {
                    summary.sent_envoy_header |= name.starts_with(ENVOY_HEADER_PREFIX);
                }
            }
        }
        summary
    }

    fn value(bytes: &[u8], span: Option<(usize, usize)>) -> Option<&[u8]> {
        let (at, length) = span?;
        bytes.get(at..at.checked_add(length)?)
    }
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

    /// The fetched headers and their summary, fetched on the first call.
    fn fetch(&mut self) -> Option<(&[u8], &Summary)> {
        if matches!(self.fetched, Fetched::NotYet) {
            self.fetched = match self.host.request_header_pairs() {
                Ok(bytes) => {
                    let summary = Summary::of(&bytes);
                    Fetched::Headers(bytes, summary)
                }
                Err(_) => {
                    self.failures += 1;
                    Fetched::Failed
                }
            };
        }
        match &self.fetched {
            Fetched::Headers(bytes, summary) => Some((bytes, summary)),
            Fetched::NotYet | Fetched::Failed => None,
        }
    }

    pub(super) fn headers(&mut self) -> Option<HeaderPairs<'_>> {
        self.fetch().map(|(bytes, _)| HeaderPairs::new(bytes))
    }

    /// Whether the client sent a header, if the headers are at hand. Fetching them only to
    /// find out would cost more than what knowing saves; unknown reads as "maybe".
    pub(super) fn sent(&self, name: &str) -> Option<bool> {
        self.sent_values(name, "").map(|sent| sent.count > 0)
    }

    /// How many values the client sent for a header, and whether the first is `value`, if the
    /// headers are at hand: one pass, or none for an `x-envoy-` header when it sent none.
    fn sent_values(&self, name: &str, value: &str) -> Option<SentValues> {
        let Fetched::Headers(bytes, summary) = &self.fetched else {
            return None;
        };
        let mut sent = SentValues::default();
        if !summary.sent_envoy_header && name.as_bytes().starts_with(ENVOY_HEADER_PREFIX) {
            return Some(sent);
        }
        for (header, sent_value) in HeaderPairs::new(bytes).iter() {
            if header == name.as_bytes() {
                if sent.count == 0 {
                    sent.first_is_value = sent_value == value.as_bytes();
                }
                sent.count += 1;
            }
        }
        Some(sent)
    }

    /// Sets a header the filter owns: every value the client sent for it is replaced, unless
    /// the client sent exactly this value (a write that changes nothing still costs a host call
    /// and a route-cache clear). If the host fails the write, the header is removed, so that no
    /// client value survives.
    pub(super) fn set(&mut self, name: &str, value: &str) {
        let sent = self.sent_values(name, value);
        if sent.is_some_and(|sent| sent.count == 1 && sent.first_is_value) {
            return;
        }
        let written = if sent.is_some_and(|sent| sent.count == 0) {
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

/// What the client sent for one header (`HostRequest::sent_values`).
#[derive(Clone, Copy, Default)]
struct SentValues {
    count: usize,
    first_is_value: bool,
}

impl<H: StreamHost> RequestView for HostRequest<'_, H> {
    fn path(&mut self) -> Option<&[u8]> {
        let (bytes, summary) = self.fetch()?;
        Summary::value(bytes, summary.path)
    }

    fn method(&mut self) -> Option<&[u8]> {
        let (bytes, summary) = self.fetch()?;
        Summary::value(bytes, summary.method)
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers()?.get(name)
    }
}
