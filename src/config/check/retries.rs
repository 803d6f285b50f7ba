//! `retries` on a route or a destination: Envoy's retry policy, written per request into
//! Envoy's retry headers.

use super::values::{integer_in, timeout};
use super::Checker;
use crate::config::raw::RetriesConfig;
use crate::plan::RetryHeaders;

/// The most retries a route may ask Envoy for.
const MAX_RETRIES: u32 = 10;
/// Envoy's `x-envoy-retry-on` conditions.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
];
/// Envoy's `x-envoy-retry-grpc-on` conditions.
const GRPC_RETRY_ON: &[&str] = &[
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

impl Checker {
    pub(super) fn retries(&mut self, config: &RetriesConfig, path: &str) -> Option<RetryHeaders> {
        let attempts = self.required(
            config.attempts.as_ref(),
            path,
            "attempts",
            &format!("an integer from 0 to {MAX_RETRIES}"),
            |c, value, path| c.reported(integer_in(value, (0, MAX_RETRIES)), path),
        );
        let per_try_timeout = self.optional(
            config.per_try_timeout.as_deref(),
            path,
            "per_try_timeout",
            |c, text, path| c.reported(timeout(text), path).map(|ms| ms.to_string()),
        );
        let retry_on = self.required(
            config.retry_on.as_deref(),
            path,
            "retry_on",
            "Envoy retry conditions, e.g. \"5xx,reset\"",
            |c, text, path| c.reported(conditions(text, RETRY_ON), path),
        );
        let grpc_retry_on = self.optional(
            config.grpc_retry_on.as_deref(),
            path,
            "grpc_retry_on",
            |c, text, path| c.reported(conditions(text, GRPC_RETRY_ON), path),
        );
        Some(RetryHeaders {
            max_retries: attempts?.to_string(),
            retry_on: retry_on?,
            per_try_timeout_ms: per_try_timeout?,
            grpc_retry_on: grpc_retry_on?,
        })
    }
}

/// A comma-separated list of Envoy's retry conditions, as Envoy's header takes it.
fn conditions(text: &str, allowed: &[&str]) -> Result<String, String> {
    let conditions: Vec<&str> = text.split(',').map(str::trim).collect();
    let unknown: Vec<&str> = conditions
        .iter()
        .copied()
        .filter(|condition| !allowed.contains(condition))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown retry condition {:?}; expected a comma-separated list of {}",
            unknown.join(","),
            allowed.join(", ")
        ));
    }
    Ok(conditions.join(","))
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    use crate::config::test_configs::{assert_error, errors_of, route_with, route_with_field};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn retries_are_the_destinations_else_the_routes() {
        let plan = compile(
            br#"{ "routes": [ { "name": "r",
                 "retries": { "attempts": 2, "retry_on": "5xx, reset", "per_try_timeout": "200ms" },
                 "destinations": [
                   { "version": "v1", "weight": 1 },
                   { "version": "v2", "weight": 1,
                     "retries": { "attempts": 0, "retry_on": "connect-failure", "grpc_retry_on": "unavailable" } } ] } ] }"#,
        )
        .unwrap();
        let v1 = plan.routes[0].destinations[0].retries.as_ref().unwrap();
        assert_eq!(
            (v1.max_retries.as_str(), v1.retry_on.as_str()),
            ("2", "5xx,reset")
        );
        assert_eq!(v1.per_try_timeout_ms.as_deref(), Some("200"));
        let v2 = plan.routes[0].destinations[1].retries.as_ref().unwrap();
        assert_eq!(v2.max_retries, "0");
        assert_eq!(v2.per_try_timeout_ms, None);
        assert_eq!(v2.grpc_retry_on.as_deref(), Some("unavailable"));
        let plan = compile(route_with("[{\"version\":\"v1\",\"weight\":1}]").as_bytes()).unwrap();
        assert_eq!(plan.routes[0].destinations[0].retries, None);
    }

    #[test]
    fn retry_errors_name_their_field() {
        let errors = errors_of(&route_with_field(
            r#""retries": { "attempts": 11, "retry_on": "5xx,teapot", "per_try_timeout": "0s" }"#,
        ));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(
            errors[0],
            "routes[0].retries.attempts: expected an integer from 0 to 10, got 11"
        );
        assert!(
            errors[1].starts_with("routes[0].retries.per_try_timeout: "),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with(
                "routes[0].retries.retry_on: unknown retry condition \"teapot\"; expected a comma-separated list of 5xx, gateway-error"
            ),
            "{errors:?}"
        );
        assert_error(
            &route_with_field(r#""retries": {}"#),
            "routes[0].retries.attempts: required: an integer from 0 to 10",
        );
        assert_error(
            &route_with_field(r#""retries": {}"#),
            "routes[0].retries.retry_on: required: Envoy retry conditions, e.g. \"5xx,reset\"",
        );
    }
}
