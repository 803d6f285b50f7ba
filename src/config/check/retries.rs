//! `retries` on a route or a destination: Envoy's retry policy, written per request into
//! Envoy's retry headers.

use super::values::{header_name, integer_in, timeout};
use super::Checker;
use crate::config::raw::RetriesConfig;
use crate::plan::RetryHeaders;
use serde_json::Value;

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
/// The most statuses `retriable_status_codes` may list.
const MAX_RETRIABLE_STATUS_CODES: usize = 50;
/// The most header names `retriable_headers` may list.
const MAX_RETRIABLE_HEADERS: usize = 20;
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
        let retriable_status_codes = self.optional(
            config.retriable_status_codes.as_ref(),
            path,
            "retriable_status_codes",
            |c, value, path| c.reported(status_codes(value), path),
        );
        let retriable_header_names = self.optional(
            config.retriable_headers.as_ref(),
            path,
            "retriable_headers",
            |c, value, path| c.reported(header_names(value), path),
        );
        // A list without its condition would do nothing: say so rather than ignore it.
        for (field, list, condition) in [
            (
                "retriable_status_codes",
                config.retriable_status_codes.is_some(),
                "retriable-status-codes",
            ),
            (
                "retriable_headers",
                config.retriable_headers.is_some(),
                "retriable-headers",
            ),
        ] {
            let named = retry_on
                .as_deref()
                .is_some_and(|conditions| conditions.split(',').any(|c| c == condition));
            if list && retry_on.is_some() && !named {
                self.error(
                    &super::join(path, field),
                    format!("needs {condition} in retry_on"),
                );
            }
        }
        Some(RetryHeaders {
            max_retries: attempts?.to_string(),
            retry_on: retry_on?,
            per_try_timeout_ms: per_try_timeout?,
            grpc_retry_on: grpc_retry_on?,
            retriable_status_codes: retriable_status_codes?,
            retriable_header_names: retriable_header_names?,
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

/// `retriable_status_codes`: 1 to 50 distinct statuses from 100 to 599, as Envoy's header
/// takes them (comma-separated).
fn status_codes(value: &Value) -> Result<String, String> {
    let expected = format!(
        "expected a list of 1 to {MAX_RETRIABLE_STATUS_CODES} distinct integers from 100 to 599"
    );
    let Some(items) = value.as_array() else {
        return Err(format!("{expected}, got {value}"));
    };
    if items.is_empty() || items.len() > MAX_RETRIABLE_STATUS_CODES {
        return Err(format!("{expected}, got {} items", items.len()));
    }
    let mut codes: Vec<u64> = Vec::with_capacity(items.len());
    for item in items {
        match item.as_u64().filter(|code| (100..=599).contains(code)) {
            Some(code) if codes.contains(&code) => {
                return Err(format!("{expected}: {code} is listed twice"))
            }
            Some(code) => codes.push(code),
            None => return Err(format!("{expected}, got {item}")),
        }
    }
    Ok(codes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// `retriable_headers`: 1 to 20 distinct header names, no pseudo-headers, lower-cased,
/// comma-separated.
fn header_names(value: &Value) -> Result<String, String> {
    let expected = format!("expected a list of 1 to {MAX_RETRIABLE_HEADERS} distinct header names");
    let Some(items) = value.as_array() else {
        return Err(format!("{expected}, got {value}"));
    };
    if items.is_empty() || items.len() > MAX_RETRIABLE_HEADERS {
        return Err(format!("{expected}, got {} items", items.len()));
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.as_str() else {
            return Err(format!("{expected}, got {item}"));
        };
        let name = header_name(text, false)?;
        if names.contains(&name) {
            return Err(format!("{expected}: {name} is listed twice"));
        }
        names.push(name);
    }
    Ok(names.join(","))
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
    fn retriable_codes_and_headers_are_written_as_envoy_reads_them() {
        let plan = compile(
            br#"{ "routes": [ { "name": "r",
                 "retries": { "attempts": 2, "retry_on": "retriable-status-codes,retriable-headers",
                              "retriable_status_codes": [503, 429],
                              "retriable_headers": ["X-Retry-Me", "grpc-status"] },
                 "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        )
        .unwrap();
        let retries = plan.routes[0].destinations[0].retries.as_ref().unwrap();
        assert_eq!(retries.retriable_status_codes.as_deref(), Some("503,429"));
        assert_eq!(
            retries.retriable_header_names.as_deref(),
            Some("x-retry-me,grpc-status")
        );
    }

    #[test]
    fn retriable_lists_are_checked_and_need_their_condition() {
        assert_error(
            &route_with_field(
                r#""retries": { "attempts": 1, "retry_on": "5xx", "retriable_status_codes": [503] }"#,
            ),
            "routes[0].retries.retriable_status_codes: needs retriable-status-codes in retry_on",
        );
        assert_error(
            &route_with_field(
                r#""retries": { "attempts": 1, "retry_on": "5xx", "retriable_headers": ["x-a"] }"#,
            ),
            "routes[0].retries.retriable_headers: needs retriable-headers in retry_on",
        );
        assert_error(
            &route_with_field(
                r#""retries": { "attempts": 1, "retry_on": "retriable-status-codes", "retriable_status_codes": [503, 600] }"#,
            ),
            "routes[0].retries.retriable_status_codes: expected a list of 1 to 50 distinct integers from 100 to 599, got 600",
        );
        assert_error(
            &route_with_field(
                r#""retries": { "attempts": 1, "retry_on": "retriable-status-codes", "retriable_status_codes": [] }"#,
            ),
            "routes[0].retries.retriable_status_codes: expected a list of 1 to 50 distinct integers from 100 to 599, got 0 items",
        );
        assert_error(
            &route_with_field(
                r#""retries": { "attempts": 1, "retry_on": "retriable-headers", "retriable_headers": ["x-a", "X-A"] }"#,
            ),
            "routes[0].retries.retriable_headers: expected a list of 1 to 20 distinct header names: x-a is listed twice",
        );
        assert_error(
            &route_with_field(
                r#""retries": { "attempts": 1, "retry_on": "retriable-headers", "retriable_headers": [":status"] }"#,
            ),
            "routes[0].retries.retriable_headers: expected an HTTP header name, got \":status\"",
        );
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
