//! A route and its destinations, as compiled: what a request of the route is sent to, with
//! what headers. Immutable; what changes while the route serves is its
//! [`crate::state::RouteState`].

use super::matcher::RouteMatch;
use crate::split::fault::FaultPlan;
use crate::split::guard::Guard;
use crate::split::rollout::{Hold, Rollout};

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub destinations: Vec<Destination>,
    pub guard: Option<Guard>,
    /// Where a request's sticky key is read, if the route has one.
    pub sticky: Option<Sticky>,
    /// The header naming a version that overrides the split; lower case.
    pub override_header: Option<String>,
    /// One version's share of the route moving through steps; the others split the rest.
    pub rollout: Option<Rollout>,
}

impl Route {
    /// The destination whose version is exactly `version` (an override header's value).
    pub fn destination_of_version(&self, version: &[u8]) -> Option<usize> {
        self.destinations
            .iter()
            .position(|destination| destination.version.as_bytes() == version)
    }

    /// The configured weights, in destination order (a rollout's version at 0: its share is
    /// the rollout's).
    pub fn configured_weights(&self) -> Vec<u32> {
        self.destinations
            .iter()
            .map(|destination| destination.weight)
            .collect()
    }

    /// Per destination, whether a guard's trip of it latches and with what fingerprint
    /// ([`crate::split::guard::Guard::latches`]): every version under a cooldown
    /// `until_config_change`, and a rollout's version (a trip of it halts the rollout, whatever
    /// the cooldown). The fingerprint covers what configures the version, its weight or its
    /// rollout, so that a config changing either releases it; a changed guard releases every
    /// version by a state of its own.
    pub fn guard_latches(&self) -> Vec<Option<u64>> {
        let Some(guard) = &self.guard else {
            return Vec::new();
        };
        let every_trip = guard.cooldown_ms == crate::split::guard::UNTIL_CONFIG_CHANGE;
        self.destinations
            .iter()
            .enumerate()
            .map(|(index, destination)| {
                let rollout = self
                    .rollout
                    .as_ref()
                    .filter(|rollout| rollout.destination == index);
                if !every_trip && rollout.is_none() {
                    return None;
                }
                let mut fields = Vec::with_capacity(64);
                fields.extend_from_slice(&destination.weight.to_le_bytes());
                if let Some(rollout) = rollout {
                    fields.extend_from_slice(&rollout.start_ms.to_le_bytes());
                    for step in &rollout.steps {
                        fields.extend_from_slice(&step.share.to_le_bytes());
                        fields.extend_from_slice(&step.over_ms.to_le_bytes());
                        let hold = match step.hold {
                            Hold::For(ms) => ms,
                            Hold::UntilConfigChange => u64::MAX,
                        };
                        fields.extend_from_slice(&hold.to_le_bytes());
                    }
                }
                // Never 0, which a state reads as "not latched".
                Some(xxhash_rust::xxh64::xxh64(&fields, 0).max(1))
            })
            .collect()
    }

    /// The guard's probe share of an ejected version, in millionths of the route (0 without
    /// a guard): what a halted rollout keeps at most.
    pub fn probe_share(&self) -> u32 {
        self.probe_basis_points() * 100
    }

    /// The guard's probe share of an ejected version, in basis points (0 without a guard).
    pub fn probe_basis_points(&self) -> u32 {
        self.guard
            .as_ref()
            .map_or(0, |guard| guard.probe_basis_points)
    }
}

/// Envoy's retry policy for a request, as the header values the filter writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryHeaders {
    /// `x-envoy-max-retries`.
    pub max_retries: String,
    /// `x-envoy-retry-on`.
    pub retry_on: String,
    /// `x-envoy-upstream-rq-per-try-timeout-ms`.
    pub per_try_timeout_ms: Option<String>,
    /// `x-envoy-retry-grpc-on`.
    pub grpc_retry_on: Option<String>,
    /// `x-envoy-retriable-status-codes`.
    pub retriable_status_codes: Option<String>,
    /// `x-envoy-retriable-header-names`.
    pub retriable_header_names: Option<String>,
}

/// A sticky split: requests with the same key go to the same version.
#[derive(Debug)]
pub struct Sticky {
    pub key: StickyKey,
    /// With a cookie key: the cookie set on the response to a request without one.
    pub set_cookie: Option<SetCookie>,
}

#[derive(Debug)]
pub enum StickyKey {
    /// A request header, by lower-case name.
    Header(String),
    /// A cookie of the request's `cookie` header, by name.
    Cookie(String),
}

/// A `Set-Cookie` value spelt out at configure time but for the fresh key between the parts.
#[derive(Debug)]
pub struct SetCookie {
    /// `session=`
    pub before_key: String,
    /// `; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax`
    pub after_key: String,
}

impl SetCookie {
    /// `secure`: the cookie is only sent back over HTTPS.
    pub fn new(cookie: &str, max_age_seconds: u64, secure: bool) -> Self {
        let secure = if secure { "; Secure" } else { "" };
        SetCookie {
            before_key: format!("{cookie}="),
            after_key: format!(
                "; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Lax{secure}"
            ),
        }
    }

    /// The header value that sets the cookie to `key`.
    pub fn value(&self, key: &str) -> String {
        [self.before_key.as_str(), key, self.after_key.as_str()].concat()
    }
}

#[derive(Debug)]
pub struct Destination {
    pub version: String,
    pub cluster: Option<String>,
    /// The configured weight; 0 for a rollout's version, whose share is the rollout's. The
    /// weight in force is in the route's state ([`crate::state::RouteState::weights`]).
    pub weight: u32,
    /// The seed of this version's sticky scores (`crate::split::sticky::version_seed`).
    pub sticky_seed: u64,
    /// The deadline in milliseconds: the destination's own timeout, else the route's.
    pub deadline_ms: Option<u64>,
    /// `deadline_ms` formatted once, as written into [`super::DEADLINE_HEADER`].
    pub deadline_header_value: Option<String>,
    /// The destination's retries, else the route's; `None`: the filter removes a client's.
    pub retries: Option<RetryHeaders>,
    /// The destination's faults, else the route's (what they have drawn is in the route's
    /// state).
    pub fault: Option<FaultPlan>,
}
