//! `fault` on a route or a destination: aborts and delays for drills.

use super::values::{basis_points, integer_in, timeout};
use super::Checker;
use crate::config::raw::{AbortConfig, DelayConfig, FaultConfig};
use crate::split::fault::{Abort, Delay, Fault};
use serde_json::Value;

impl Checker {
    pub(super) fn fault(&mut self, config: &FaultConfig, path: &str) -> Option<Fault> {
        if config.abort.is_none() && config.delay.is_none() {
            self.error(path, "expected at least one of abort, delay");
            return None;
        }
        let abort = self.optional(config.abort.as_ref(), path, "abort", Self::abort);
        let delay = self.optional(config.delay.as_ref(), path, "delay", Self::delay);
        Some(Fault {
            abort: abort?,
            delay: delay?,
        })
    }

    fn abort(&mut self, config: &AbortConfig, path: &str) -> Option<Abort> {
        let status = self.required(
            config.status.as_ref(),
            path,
            "status",
            "an HTTP status from 200 to 599",
            |c, value, path| c.reported(integer_in(value, (200, 599)), path),
        );
        let basis_points = self.percent(config.percent.as_ref(), path);
        Some(Abort {
            status: u16::try_from(status?).ok()?,
            basis_points: basis_points?,
        })
    }

    fn delay(&mut self, config: &DelayConfig, path: &str) -> Option<Delay> {
        let delay_ms = self.required(
            config.fixed.as_deref(),
            path,
            "fixed",
            "a duration such as \"50ms\"",
            |c, text, path| c.reported(timeout(text), path),
        );
        let basis_points = self.percent(config.percent.as_ref(), path);
        Some(Delay {
            delay_ms: delay_ms?,
            basis_points: basis_points?,
        })
    }

    /// The required `percent` of an abort or a delay: from 0 to 100 with at most two
    /// decimals, in hundredths of a percent.
    fn percent(&mut self, value: Option<&Value>, path: &str) -> Option<u32> {
        self.required(
            value,
            path,
            "percent",
            "a percentage from 0 to 100",
            |c, value, path| c.reported(basis_points(value, 100), path),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    use crate::config::test_configs::{assert_error, errors_of, route_with_field};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn fault_errors_name_their_field() {
        assert_eq!(
            errors_of(&route_with_field(
                r#""fault": { "abort": { "status": 99, "percent": 100.5 }, "delay": { "fixed": "0s", "percent": 1.005 } }"#
            )),
            [
                "routes[0].fault.abort.status: expected an integer from 200 to 599, got 99",
                "routes[0].fault.abort.percent: expected a percentage from 0 to 100 with at most two decimals, got 100.5",
                "routes[0].fault.delay.fixed: \"0s\" is shorter than the minimum of 1ms",
                "routes[0].fault.delay.percent: expected a percentage with at most two decimals, got 1.005",
            ]
        );
        assert_error(
            &route_with_field(r#""fault": {}"#),
            "routes[0].fault: expected at least one of abort, delay",
        );
        assert_error(
            &route_with_field(r#""fault": { "abort": { "percent": 1 } }"#),
            "routes[0].fault.abort.status: required: an HTTP status from 200 to 599",
        );
        assert_error(
            &route_with_field(r#""fault": { "delay": { "fixed": "1s" } }"#),
            "routes[0].fault.delay.percent: required: a percentage from 0 to 100",
        );
    }

    #[test]
    fn a_versions_fault_replaces_the_routes() {
        let plan = compile(
            br#"{ "routes": [ { "name": "r", "fault": { "abort": { "status": 503, "percent": 10 } },
                 "destinations": [
                   { "version": "v1", "weight": 1 },
                   { "version": "v2", "weight": 1, "fault": { "delay": { "fixed": "50ms", "percent": 5.5 } } } ] } ] }"#,
        )
        .unwrap();
        use crate::split::fault::FaultKind;
        let kinds = |index: usize| {
            plan.routes[0].destinations[index]
                .fault
                .as_ref()
                .unwrap()
                .kinds()
        };
        assert_eq!(kinds(0), [FaultKind::Abort]);
        assert_eq!(kinds(1), [FaultKind::Delay]);
    }
}
