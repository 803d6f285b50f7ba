//! A route's canary fields: `sticky` (a key's requests stay on one version), `override_header`
//! (a request names its version) and `ramp` (one version's weight moving over time).

use super::values::{self, header_name, is_token, MAX_WEIGHT};
use super::{join, Checker};
use crate::config::raw::{DestinationConfig, RampConfig, StickyConfig};
use crate::metrics::UNKNOWN_VERSION;
use crate::plan::{Destination, SetCookie, Sticky, StickyKey};
use crate::split::ramp::Ramp;
use crate::units::duration::{parse_duration_ms, DurationRange};
use crate::units::timestamp::parse_rfc3339_ms;

/// A ramp lasts from a second to a year; `steps` is at most [`MAX_WEIGHT`], since a weight
/// cannot take more distinct values than that on its way.
const RAMP_DURATION: DurationRange = DurationRange {
    min_ms: 1_000,
    max_ms: 365 * 24 * 60 * 60 * 1_000,
    min_text: "1s",
    max_text: "8760h (a year)",
    why_whole_ms: "",
};
/// A sticky cookie lives from a second to 400 days, the most browsers keep one (RFC 6265bis).
const COOKIE_MAX_AGE: DurationRange = DurationRange {
    min_ms: 1_000,
    max_ms: 400 * 24 * 60 * 60 * 1_000,
    min_text: "1s",
    max_text: "9600h (400 days)",
    why_whole_ms: "",
};

impl Checker {
    /// A header a route reads from the client: a valid name, not a pseudo-header, and none
    /// of the headers the filter writes (a client could otherwise choose through them).
    fn client_header(&mut self, name: &str, path: &str) -> Option<String> {
        let name = self.reported(header_name(name, false), path)?;
        if self.owned_headers.contains(&name) {
            self.error(
                path,
                format!("{name} is a header the filter writes; choose another"),
            );
            return None;
        }
        Some(name)
    }

    pub(super) fn sticky(&mut self, config: &StickyConfig, path: &str) -> Option<Sticky> {
        let key = match (&config.header, &config.cookie) {
            (Some(header), None) => self
                .client_header(header, &join(path, "header"))
                .map(StickyKey::Header),
            (None, Some(cookie)) => {
                if is_token(cookie) {
                    Some(StickyKey::Cookie(cookie.clone()))
                } else {
                    self.error(
                        &join(path, "cookie"),
                        format!("expected a cookie name (an HTTP token), got {cookie:?}"),
                    );
                    None
                }
            }
            (header, cookie) => {
                self.exactly_one(
                    path,
                    &[("header", header.is_some()), ("cookie", cookie.is_some())],
                );
                None
            }
        };
        let set_cookie = match (&config.set_cookie, &key) {
            (None, _) => Some(None),
            (Some(set_cookie), Some(StickyKey::Cookie(cookie))) => self
                .required(
                    set_cookie.max_age.as_deref(),
                    &join(path, "set_cookie"),
                    "max_age",
                    "a duration such as \"24h\"",
                    |c, text, path| c.reported(cookie_max_age(text), path),
                )
                .map(|seconds| Some(SetCookie::new(cookie, seconds))),
            (Some(_), Some(StickyKey::Header(_))) => {
                self.error(
                    &join(path, "set_cookie"),
                    "only with a cookie key: the filter cannot make a client send a header",
                );
                None
            }
            (Some(_), None) => None,
        };
        Some(Sticky {
            key: key?,
            set_cookie: set_cookie?,
        })
    }

    pub(super) fn override_header(
        &mut self,
        header: &str,
        path: &str,
        destinations: &Option<Vec<Destination>>,
    ) -> Option<String> {
        let name = self.client_header(header, path)?;
        let unknown_is_a_version = destinations
            .iter()
            .flatten()
            .any(|destination| destination.version == UNKNOWN_VERSION);
        if unknown_is_a_version {
            self.error(
                path,
                format!(
                    "overrides naming no version are counted as version {UNKNOWN_VERSION:?}, \
                     which this route has: rename that version"
                ),
            );
            return None;
        }
        Some(name)
    }

    /// The ramp, named among the route's `configs`; every field is checked even when the
    /// destinations were refused (`destinations` is `None`).
    pub(super) fn ramp(
        &mut self,
        config: &RampConfig,
        path: &str,
        configs: Option<&[DestinationConfig]>,
        destinations: Option<&[Destination]>,
    ) -> Option<Ramp> {
        let destination = self.required(
            config.version.as_ref(),
            path,
            "version",
            "the version whose weight moves",
            |c, version, path| {
                // Without destinations, the route has reported that already.
                let configs = configs?;
                let found = configs
                    .iter()
                    .position(|destination| destination.version.as_ref() == Some(version));
                if found.is_none() {
                    let versions: Vec<&str> = configs
                        .iter()
                        .filter_map(|d| d.version.as_deref())
                        .collect();
                    c.error(
                        path,
                        format!(
                            "expected one of the route's versions ({}), got {version:?}",
                            versions.join(", ")
                        ),
                    );
                }
                found
            },
        );
        let weight_expected = format!("an integer from 0 to {MAX_WEIGHT}");
        let from = self.required(
            config.from.as_ref(),
            path,
            "from",
            &weight_expected,
            |c, value, path| c.reported(values::weight(value), path),
        );
        let to = self.required(
            config.to.as_ref(),
            path,
            "to",
            &weight_expected,
            |c, value, path| c.reported(values::weight(value), path),
        );
        let start = self.required(
            config.start.as_deref(),
            path,
            "start",
            "an RFC 3339 time such as \"2026-12-01T10:00:00Z\"",
            |c, text, path| c.reported(parse_rfc3339_ms(text), path),
        );
        let duration = self.required(
            config.duration.as_deref(),
            path,
            "duration",
            "a duration such as \"30m\"",
            |c, text, path| c.reported(parse_duration_ms(text, RAMP_DURATION), path),
        );
        let steps = self.optional(config.steps.as_ref(), path, "steps", |c, value, path| {
            c.reported(values::integer_in(value, (1, MAX_WEIGHT)), path)
        });
        let (destinations, destination, from, to) = (destinations?, destination?, from?, to?);
        let others: u64 = destinations
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != destination)
            .map(|(_, d)| u64::from(d.weight))
            .sum();
        if others == 0 && from.min(to) == 0 {
            self.error(
                path,
                "the other versions' weights add up to 0, so the route would have no weight \
                 while the ramp is at 0",
            );
            return None;
        }
        Some(Ramp {
            destination,
            from,
            to,
            start_ms: start?,
            duration_ms: duration?,
            steps: steps?,
        })
    }
}

/// A cookie's `Max-Age`, in seconds.
fn cookie_max_age(text: &str) -> Result<u64, String> {
    let millis = parse_duration_ms(text, COOKIE_MAX_AGE)?;
    if millis % 1_000 != 0 {
        return Err(format!(
            "{text:?} is not a whole number of seconds (Max-Age counts seconds)"
        ));
    }
    Ok(millis / 1_000)
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    use crate::plan::{Plan, StickyKey};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A route `r` with v1 (weight 100) and v2 (weight 0 unless the ramp has it), plus `fields`.
    fn route_with(fields: &str) -> String {
        let v2 = if fields.contains("\"ramp\"") {
            r#"{ "version": "v2" }"#
        } else {
            r#"{ "version": "v2", "weight": 0 }"#
        };
        format!(
            r#"{{ "routes": [ {{ "name": "r", {fields}
                 "destinations": [ {{ "version": "v1", "weight": 100 }}, {v2} ] }} ] }}"#
        )
    }

    fn compiled(fields: &str) -> Plan {
        compile(route_with(fields).as_bytes()).unwrap()
    }

    /// Every error of a whole config, which must be refused.
    fn refusal(json: &str) -> Vec<String> {
        match compile(json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// Every error of route `r` with these fields.
    fn errors(fields: &str) -> Vec<String> {
        refusal(&route_with(fields))
    }

    const RAMP: &str = r#""ramp": { "version": "v2", "from": 0, "to": 50,
        "start": "2026-12-01T10:00:00Z", "duration": "30m", "steps": 10 },"#;

    #[test]
    fn the_issue_examples_compile() {
        let plan = compiled(
            r#""sticky": { "cookie": "session", "set_cookie": { "max_age": "24h" } },
               "override_header": "X-Canary-Version","#,
        );
        let route = &plan.routes[0];
        let sticky = route.sticky.as_ref().unwrap();
        assert!(matches!(&sticky.key, StickyKey::Cookie(name) if name == "session"));
        assert_eq!(
            sticky.set_cookie.as_ref().unwrap().value("k"),
            "session=k; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"
        );
        assert_eq!(route.override_header.as_deref(), Some("x-canary-version"));

        let plan = compiled(r#""sticky": { "header": "X-User-Id" },"#);
        let sticky = plan.routes[0].sticky.as_ref().unwrap();
        assert!(matches!(&sticky.key, StickyKey::Header(name) if name == "x-user-id"));
        assert!(sticky.set_cookie.is_none());

        let plan = compiled(RAMP);
        let route = &plan.routes[0];
        let ramp = route.ramp.as_ref().unwrap();
        assert_eq!(
            (ramp.destination, ramp.from, ramp.to, ramp.steps),
            (1, 0, 50, Some(10))
        );
        assert_eq!(ramp.start_ms, 1_796_119_200_000);
        assert_eq!(ramp.duration_ms, 30 * 60 * 1000);
        assert_eq!(route.destinations[1].weight, 0, "the ramp's from");
        assert_eq!(route.configured_weights(), [100, 0]);
    }

    #[test]
    fn sticky_errors_name_their_field() {
        assert_eq!(
            errors(r#""sticky": {},"#),
            ["routes[0].sticky: expected exactly one of header, cookie; got none"]
        );
        assert_eq!(
            errors(r#""sticky": { "header": "a", "cookie": "b" },"#),
            ["routes[0].sticky: expected exactly one of header, cookie; got header, cookie"]
        );
        assert_eq!(
            errors(r#""sticky": { "header": "x-split-version" },"#),
            ["routes[0].sticky.header: x-split-version is a header the filter writes; choose another"]
        );
        assert_eq!(
            errors(r#""sticky": { "header": ":path" },"#),
            ["routes[0].sticky.header: expected an HTTP header name, got \":path\""]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "a=b" },"#),
            ["routes[0].sticky.cookie: expected a cookie name (an HTTP token), got \"a=b\""]
        );
        assert_eq!(
            errors(r#""sticky": { "header": "x-user", "set_cookie": { "max_age": "1h" } },"#),
            ["routes[0].sticky.set_cookie: only with a cookie key: the filter cannot make a client send a header"]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": {} },"#),
            ["routes[0].sticky.set_cookie.max_age: required: a duration such as \"24h\""]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": { "max_age": "1.5s" } },"#),
            ["routes[0].sticky.set_cookie.max_age: \"1.5s\" is not a whole number of seconds (Max-Age counts seconds)"]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": { "max_age": "9601h" } },"#),
            ["routes[0].sticky.set_cookie.max_age: \"9601h\" is longer than the maximum of 9600h (400 days)"]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": { "maxage": "1h" } },"#),
            [
                "routes[0].sticky.set_cookie.maxage: unknown field; expected one of max_age; did you mean `max_age`?",
                "routes[0].sticky.set_cookie.max_age: required: a duration such as \"24h\"",
            ]
        );
    }

    #[test]
    fn override_header_errors_name_their_field() {
        assert_eq!(
            errors(r#""override_header": "x-envoy-upstream-rq-timeout-ms","#),
            ["routes[0].override_header: x-envoy-upstream-rq-timeout-ms is a header the filter writes; choose another"]
        );
        assert_eq!(
            errors(r#""override_header": "bad header","#),
            ["routes[0].override_header: expected an HTTP header name, got \"bad header\""]
        );
        let unknown = r#"{ "routes": [ { "name": "r", "override_header": "x-v",
            "destinations": [ { "version": "unknown", "weight": 1 } ] } ] }"#;
        let refused = refusal(unknown);
        assert_eq!(
            refused,
            ["routes[0].override_header: overrides naming no version are counted as version \"unknown\", which this route has: rename that version"]
        );
    }

    #[test]
    fn ramp_errors_name_their_field() {
        assert_eq!(
            errors(r#""ramp": {},"#),
            [
                "routes[0].destinations[1].weight: required: an integer from 0 to 1000000",
                "routes[0].ramp.version: required: the version whose weight moves",
                "routes[0].ramp.from: required: an integer from 0 to 1000000",
                "routes[0].ramp.to: required: an integer from 0 to 1000000",
                "routes[0].ramp.start: required: an RFC 3339 time such as \"2026-12-01T10:00:00Z\"",
                "routes[0].ramp.duration: required: a duration such as \"30m\"",
            ]
        );
        assert_eq!(
            errors(
                r#""ramp": { "version": "v3", "from": -1, "to": 1000001, "start": "2026-12-01",
                   "duration": "0.5s", "steps": 0 },"#
            ),
            [
                "routes[0].destinations[1].weight: required: an integer from 0 to 1000000",
                "routes[0].ramp.version: expected one of the route's versions (v1, v2), got \"v3\"",
                "routes[0].ramp.from: expected an integer from 0 to 1000000, got -1",
                "routes[0].ramp.to: expected an integer from 0 to 1000000, got 1000001",
                "routes[0].ramp.start: expected an RFC 3339 time such as \"2026-12-01T10:00:00Z\" or \"2026-12-01T11:00:00+01:00\", got \"2026-12-01\"",
                "routes[0].ramp.duration: \"0.5s\" is shorter than the minimum of 1s",
                "routes[0].ramp.steps: expected an integer from 1 to 1000000, got 0",
            ]
        );
        assert_eq!(
            errors(&RAMP.replace("30m", "8761h")),
            ["routes[0].ramp.duration: \"8761h\" is longer than the maximum of 8760h (a year)"]
        );
        assert_eq!(
            errors(&RAMP.replace("2026-12-01T10:00:00Z", "2026-02-30T10:00:00Z")),
            ["routes[0].ramp.start: \"2026-02-30T10:00:00Z\" is not a valid time of day and date"]
        );
    }

    #[test]
    fn the_ramped_version_takes_its_weight_from_the_ramp_only() {
        let with_weight = r#"{ "routes": [ { "name": "r", "ramp": { "version": "v2", "from": 0,
            "to": 5, "start": "2026-12-01T10:00:00Z", "duration": "1h" },
            "destinations": [ { "version": "v1", "weight": 1 }, { "version": "v2", "weight": 3 } ] } ] }"#;
        let refused = refusal(with_weight);
        assert_eq!(
            refused,
            ["routes[0].destinations[1].weight: this version's weight is the route's ramp's; leave it out"]
        );
        let nothing_else = r#"{ "routes": [ { "name": "r", "ramp": { "version": "v2", "from": 0,
            "to": 5, "start": "2026-12-01T10:00:00Z", "duration": "1h" },
            "destinations": [ { "version": "v1", "weight": 0 }, { "version": "v2" } ] } ] }"#;
        let refused = refusal(nothing_else);
        assert_eq!(
            refused,
            ["routes[0].ramp: the other versions' weights add up to 0, so the route would have no weight while the ramp is at 0"]
        );
        // From 5 to 10 with nothing else is a route that always has weight.
        assert!(compile(
            nothing_else
                .replace("\"from\": 0", "\"from\": 5")
                .as_bytes()
        )
        .is_ok());
    }
}
