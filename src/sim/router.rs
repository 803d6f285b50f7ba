//! Envoy's router and the upstreams behind it, as the simulation models them: what becomes of
//! a request the filter let through. The router reads the request's headers as the filter left
//! them (the deadline `x-envoy-upstream-rq-timeout-ms`, the retry policy of `x-envoy-retry-on`,
//! `x-envoy-max-retries`, `x-envoy-upstream-rq-per-try-timeout-ms`,
//! `x-envoy-retriable-status-codes`), as Envoy's router does, and sends attempts to the version,
//! each answered as the version behaves when the attempt starts ([`Behaviour`]).
//!
//! What Envoy's router does, and this model with it:
//! - the deadline runs from the moment the router has the request (after a fault's delay) over
//!   every attempt and every wait between them; an answer later than it is cut at the
//!   deadline with a 504 and the `UT` flag, and never retried;
//! - a per-try timeout at or beyond the deadline is ignored; below it, an attempt answering later
//!   is cut at the per-try timeout (`UT`), and retried under `5xx`, `gateway-error` or `reset`;
//! - an upstream reset (`UR`) is answered 503, and retried under `5xx`, `gateway-error` or
//!   `reset`;
//! - a status is retried under `5xx` (500 to 599), `gateway-error` (502 to 504),
//!   `retriable-4xx` (409) or `retriable-status-codes` (the listed ones);
//! - between attempts it waits a fully jittered exponential backoff (base 25 ms, at most
//!   250 ms, Envoy's defaults); when the retries run out on a retriable outcome, the response
//!   carries the `URX` flag.
//!
//! The versions' upstreams answer 200, 503 or reset, so the other conditions (`connect-failure`,
//! `refused-stream`, `reset-before-request`, `retriable-headers`, `envoy-ratelimited`, the gRPC
//! ones) never meet an outcome here.

use super::random::Random;
use super::scenario::Behaviour;
use crate::plan::{
    DEADLINE_HEADER, MAX_RETRIES_HEADER, PER_TRY_TIMEOUT_HEADER, RETRIABLE_STATUS_CODES_HEADER,
    RETRY_ON_HEADER,
};

/// Envoy's `response.flags` bits the router sets here: upstream request timeout (`UT`),
/// upstream remote reset (`UR`), upstream retry limit exceeded (`URX`).
pub const UPSTREAM_REQUEST_TIMEOUT: u64 = 0x4;
pub const UPSTREAM_REMOTE_RESET: u64 = 0x10;
pub const UPSTREAM_RETRY_LIMIT_EXCEEDED: u64 = 0x8000;

/// Envoy's default retry backoff: the base interval, and the cap (ten times the base).
const BACKOFF_BASE_MS: u64 = 25;
const BACKOFF_MAX_MS: u64 = 250;

/// The retry conditions of `x-envoy-retry-on` that an outcome of the model can meet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RetryOn {
    five_xx: bool,
    gateway_error: bool,
    reset: bool,
    retriable_4xx: bool,
    retriable_status_codes: bool,
}

/// What the router takes from a request's headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterPolicy {
    pub deadline_ms: Option<u64>,
    pub per_try_timeout_ms: Option<u64>,
    pub max_retries: u32,
    retry_on: RetryOn,
    retriable_status_codes: Vec<u16>,
}

impl RouterPolicy {
    /// Reads the request's headers as Envoy's router reads them: a value it cannot parse is
    /// ignored, 0 disables a timeout, `x-envoy-max-retries` counts only beside a retry
    /// condition (then it defaults to 1).
    pub fn from_headers(headers: &[(Vec<u8>, Vec<u8>)]) -> Self {
        let value = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name.as_bytes())
                .and_then(|(_, value)| std::str::from_utf8(value).ok())
        };
        let millis = |name: &str| {
            value(name)
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
        };
        let mut retry_on = RetryOn::default();
        for condition in value(RETRY_ON_HEADER).unwrap_or("").split(',') {
            match condition.trim() {
                "5xx" => retry_on.five_xx = true,
                "gateway-error" => retry_on.gateway_error = true,
                "reset" => retry_on.reset = true,
                "retriable-4xx" => retry_on.retriable_4xx = true,
                "retriable-status-codes" => retry_on.retriable_status_codes = true,
                _ => {}
            }
        }
        let any_condition = value(RETRY_ON_HEADER).is_some_and(|text| !text.trim().is_empty());
        let max_retries = if any_condition {
            value(MAX_RETRIES_HEADER)
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(1)
        } else {
            0
        };
        let deadline_ms = millis(DEADLINE_HEADER);
        RouterPolicy {
            deadline_ms,
            per_try_timeout_ms: millis(PER_TRY_TIMEOUT_HEADER)
                .filter(|per_try| deadline_ms.is_none_or(|deadline| *per_try < deadline)),
            max_retries,
            retry_on,
            retriable_status_codes: value(RETRIABLE_STATUS_CODES_HEADER)
                .unwrap_or("")
                .split(',')
                .filter_map(|code| code.trim().parse().ok())
                .collect(),
        }
    }

    fn retries(&self, outcome: Outcome) -> bool {
        let on = self.retry_on;
        match outcome {
            Outcome::Status(status) => {
                (on.five_xx && (500..=599).contains(&status))
                    || (on.gateway_error && (502..=504).contains(&status))
                    || (on.retriable_4xx && status == 409)
                    || (on.retriable_status_codes && self.retriable_status_codes.contains(&status))
            }
            Outcome::Reset | Outcome::PerTryTimeout => on.reset || on.five_xx || on.gateway_error,
        }
    }
}

/// How one attempt ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    /// The upstream reset the stream without a response.
    Reset,
    /// The per-try timeout cut it.
    PerTryTimeout,
}

/// What the filter sees at the stream's end: the response Envoy sent, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub status: u16,
    /// Envoy's `response.flags`.
    pub flags: u64,
    /// From the moment the router had the request to the response.
    pub took_ms: u64,
    /// Attempts sent to the version: 1, plus one per retry.
    pub attempts: u32,
}

impl Exchange {
    /// Envoy's own deadline (or per-try timeout) answered it: what the filter counts as a
    /// timeout.
    pub fn timed_out(&self) -> bool {
        self.status == 504 && self.flags & UPSTREAM_REQUEST_TIMEOUT != 0
    }

    fn cut_at_deadline(deadline_ms: u64, attempts: u32) -> Self {
        Exchange {
            status: 504,
            flags: UPSTREAM_REQUEST_TIMEOUT,
            took_ms: deadline_ms,
            attempts,
        }
    }
}

/// Plays one request through the router to its version: `behaviour(ms)` is how the version
/// behaves `ms` after the router had the request (`None`: it answers 200 at once).
pub fn exchange<'b>(
    policy: &RouterPolicy,
    random: &mut Random,
    behaviour: impl Fn(u64) -> Option<&'b Behaviour>,
) -> Exchange {
    let mut started_ms = 0u64;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (outcome, latency_ms) = attempt(behaviour(started_ms), random);
        let (outcome, ended_ms) = match policy.per_try_timeout_ms {
            Some(per_try) if latency_ms > per_try => {
                (Outcome::PerTryTimeout, started_ms.saturating_add(per_try))
            }
            _ => (outcome, started_ms.saturating_add(latency_ms)),
        };
        if let Some(deadline) = policy.deadline_ms.filter(|d| ended_ms > *d) {
            return Exchange::cut_at_deadline(deadline, attempts);
        }
        let retriable = policy.retries(outcome);
        if retriable && attempts <= policy.max_retries {
            started_ms = ended_ms.saturating_add(backoff_ms(attempts, random));
            if let Some(deadline) = policy.deadline_ms.filter(|d| started_ms > *d) {
                return Exchange::cut_at_deadline(deadline, attempts);
            }
            continue;
        }
        let exhausted = if retriable {
            UPSTREAM_RETRY_LIMIT_EXCEEDED
        } else {
            0
        };
        let (status, flags) = match outcome {
            Outcome::Status(status) => (status, 0),
            Outcome::Reset => (503, UPSTREAM_REMOTE_RESET),
            Outcome::PerTryTimeout => (504, UPSTREAM_REQUEST_TIMEOUT),
        };
        return Exchange {
            status,
            flags: flags | exhausted,
            took_ms: ended_ms,
            attempts,
        };
    }
}

/// One attempt at the version as it behaves now: a reset, a 503 or a 200, after its latency.
/// The draws come in the same order for every attempt (reset, then error), as before retries
/// existed, so that runs without them are unchanged.
fn attempt(behaviour: Option<&Behaviour>, random: &mut Random) -> (Outcome, u64) {
    let Some(behaviour) = behaviour else {
        return (Outcome::Status(200), 0);
    };
    let reset = random.chance(behaviour.reset_ratio);
    let failed = random.chance(behaviour.error_ratio);
    let outcome = if reset {
        Outcome::Reset
    } else if failed {
        Outcome::Status(503)
    } else {
        Outcome::Status(200)
    };
    (outcome, behaviour.latency_ms)
}

/// The wait before retry `retry` (1 for the first): fully jittered, below
/// `base × (2^retry − 1)`, at most the cap, as Envoy's `JitteredExponentialBackOffStrategy`.
fn backoff_ms(retry: u32, random: &mut Random) -> u64 {
    let multiplier = 1u64
        .checked_shl(retry.min(32))
        .map_or(u64::MAX, |power| power - 1);
    let ceiling = BACKOFF_BASE_MS.saturating_mul(multiplier);
    random.below(ceiling).min(BACKOFF_MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn behaving(error_ratio: f64, reset_ratio: f64, latency_ms: u64) -> Behaviour {
        Behaviour {
            version: "v2".to_owned(),
            from_ms: 0,
            until_ms: u64::MAX,
            error_ratio,
            reset_ratio,
            latency_ms,
        }
    }

    fn play(pairs: &[(&str, &str)], behaviour: &Behaviour) -> Exchange {
        let policy = RouterPolicy::from_headers(&headers(pairs));
        exchange(&policy, &mut Random::new(7), |_| Some(behaviour))
    }

    #[test]
    fn an_answer_later_than_the_deadline_is_cut_at_the_deadline_with_a_504_ut() {
        let cut = play(&[(DEADLINE_HEADER, "2")], &behaving(0.0, 0.0, 5));
        assert_eq!(
            (cut.status, cut.flags, cut.took_ms, cut.attempts),
            (504, UPSTREAM_REQUEST_TIMEOUT, 2, 1)
        );
        assert!(cut.timed_out());
        let in_time = play(&[(DEADLINE_HEADER, "5")], &behaving(0.0, 0.0, 5));
        assert_eq!((in_time.status, in_time.took_ms), (200, 5));
        assert!(!in_time.timed_out());
    }

    #[test]
    fn without_a_deadline_the_request_waits_for_its_version() {
        let slow = play(&[], &behaving(0.0, 0.0, 60_000));
        assert_eq!((slow.status, slow.took_ms), (200, 60_000));
        let unparsable = play(&[(DEADLINE_HEADER, "soon")], &behaving(0.0, 0.0, 60_000));
        assert_eq!(unparsable.status, 200);
    }

    #[test]
    fn a_reset_is_answered_503_with_the_ur_flag() {
        let reset = play(&[], &behaving(0.0, 1.0, 1));
        assert_eq!((reset.status, reset.flags), (503, UPSTREAM_REMOTE_RESET));
    }

    #[test]
    fn retries_follow_the_conditions_and_stop_at_the_attempts() {
        let failing = behaving(1.0, 0.0, 1);
        let retried = play(
            &[(RETRY_ON_HEADER, "5xx"), (MAX_RETRIES_HEADER, "3")],
            &failing,
        );
        assert_eq!(retried.attempts, 4);
        assert_eq!(
            (retried.status, retried.flags),
            (503, UPSTREAM_RETRY_LIMIT_EXCEEDED)
        );
        // A 503 response is no reset.
        let not_met = play(
            &[(RETRY_ON_HEADER, "reset"), (MAX_RETRIES_HEADER, "3")],
            &failing,
        );
        assert_eq!((not_met.attempts, not_met.flags), (1, 0));
        let listed = play(
            &[
                (RETRY_ON_HEADER, "retriable-status-codes"),
                (RETRIABLE_STATUS_CODES_HEADER, "429,503"),
                (MAX_RETRIES_HEADER, "2"),
            ],
            &failing,
        );
        assert_eq!(listed.attempts, 3);
        let resets = play(
            &[
                (RETRY_ON_HEADER, "gateway-error"),
                (MAX_RETRIES_HEADER, "1"),
            ],
            &behaving(0.0, 1.0, 1),
        );
        assert_eq!(resets.attempts, 2);
        let no_condition = play(&[(MAX_RETRIES_HEADER, "3")], &failing);
        assert_eq!(no_condition.attempts, 1);
        let default_one = play(&[(RETRY_ON_HEADER, "5xx")], &failing);
        assert_eq!(default_one.attempts, 2);
    }

    #[test]
    fn a_retry_that_succeeds_answers_200_after_the_backoff() {
        // Fails half the time: some seed gets a 503 first and a 200 next.
        let flaky = behaving(0.5, 0.0, 10);
        let policy = RouterPolicy::from_headers(&headers(&[
            (RETRY_ON_HEADER, "5xx"),
            (MAX_RETRIES_HEADER, "1"),
        ]));
        let recovered = (0..64)
            .map(|seed| exchange(&policy, &mut Random::new(seed), |_| Some(&flaky)))
            .find(|e| e.attempts == 2 && e.status == 200)
            .expect("a retry that succeeds");
        assert_eq!(recovered.flags, 0);
        assert!((20..20 + BACKOFF_BASE_MS).contains(&recovered.took_ms));
    }

    #[test]
    fn a_per_try_timeout_cuts_each_attempt_and_the_deadline_bounds_them_all() {
        let slow = behaving(0.0, 0.0, 50);
        let per_try = play(
            &[
                (PER_TRY_TIMEOUT_HEADER, "10"),
                (RETRY_ON_HEADER, "5xx"),
                (MAX_RETRIES_HEADER, "2"),
            ],
            &slow,
        );
        assert_eq!(per_try.attempts, 3);
        assert_eq!(
            (per_try.status, per_try.flags),
            (
                504,
                UPSTREAM_REQUEST_TIMEOUT | UPSTREAM_RETRY_LIMIT_EXCEEDED
            )
        );
        assert!(per_try.timed_out());
        // Three cuts of 10 ms and two waits of at most 25 and 75 ms.
        assert!(
            (30..=30 + 24 + 74).contains(&per_try.took_ms),
            "{per_try:?}"
        );
        let bounded = play(
            &[
                (DEADLINE_HEADER, "15"),
                (PER_TRY_TIMEOUT_HEADER, "10"),
                (RETRY_ON_HEADER, "5xx"),
                (MAX_RETRIES_HEADER, "10"),
            ],
            &slow,
        );
        assert_eq!(
            (bounded.status, bounded.flags, bounded.took_ms),
            (504, UPSTREAM_REQUEST_TIMEOUT, 15)
        );
        assert!(bounded.attempts <= 2);
        // Not retried without a condition that covers it.
        let not_retried = play(
            &[
                (PER_TRY_TIMEOUT_HEADER, "10"),
                (RETRY_ON_HEADER, "retriable-4xx"),
                (MAX_RETRIES_HEADER, "2"),
            ],
            &slow,
        );
        assert_eq!((not_retried.attempts, not_retried.took_ms), (1, 10));
    }

    #[test]
    fn a_per_try_timeout_at_the_deadline_is_ignored() {
        let policy = RouterPolicy::from_headers(&headers(&[
            (DEADLINE_HEADER, "10"),
            (PER_TRY_TIMEOUT_HEADER, "10"),
        ]));
        assert_eq!(policy.per_try_timeout_ms, None);
    }

    #[test]
    fn the_backoff_grows_and_stays_under_its_cap() {
        let mut random = Random::new(3);
        for retry in 1..40 {
            for _ in 0..50 {
                let wait = backoff_ms(retry, &mut random);
                let ceiling = BACKOFF_BASE_MS * ((1u64 << retry.min(20)) - 1);
                assert!(wait < ceiling.max(1) && wait <= BACKOFF_MAX_MS);
            }
        }
    }
}
