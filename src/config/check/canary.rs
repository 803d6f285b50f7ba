//! A route's canary fields: `sticky` (a key's requests stay on one version) and
//! `override_header` (a request names its version); the `rollout` has a file of its own.

use super::values::{header_name, is_token};
use super::{join, Checker};
use crate::config::raw::StickyConfig;
use crate::metrics::UNKNOWN_VERSION;
use crate::plan::{Destination, SetCookie, Sticky, StickyKey};
use crate::units::duration::{parse_duration_ms, DurationRange};
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
                .map(|seconds| {
                    let secure = set_cookie.secure.unwrap_or(false);
                    Some(SetCookie::new(cookie, seconds, secure))
                }),
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

    /// A route `r` with v1 (weight 100) and v2 (weight 0), plus `fields`.
    fn route_with(fields: &str) -> String {
        format!(
            r#"{{ "routes": [ {{ "name": "r", {fields}
                 "destinations": [ {{ "version": "v1", "weight": 100 }}, {{ "version": "v2", "weight": 0 }} ] }} ] }}"#
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

        let plan = compiled(
            r#""sticky": { "cookie": "s", "set_cookie": { "max_age": "1h", "secure": true } },"#,
        );
        let set_cookie = plan.routes[0].sticky.as_ref().unwrap().set_cookie.as_ref();
        assert_eq!(
            set_cookie.unwrap().value("k"),
            "s=k; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"
        );

        let plan = compiled(r#""sticky": { "header": "X-User-Id" },"#);
        let sticky = plan.routes[0].sticky.as_ref().unwrap();
        assert!(matches!(&sticky.key, StickyKey::Header(name) if name == "x-user-id"));
        assert!(sticky.set_cookie.is_none());
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
                "routes[0].sticky.set_cookie.maxage: unknown field; expected one of max_age, secure; did you mean `max_age`?",
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
}
