//! What a route matches: a path (prefix, exact or regex), methods and header rules.

use super::values::{header_name, is_token, regex, regex_units};
use super::{given, join, Checker};
use crate::config::raw::{HeaderMatchConfig, MatchConfig};
use crate::plan::{HeaderMatch, HeaderRule, PathMatch, RouteMatch, WholeValueRegex};

impl Checker {
    pub(super) fn route_match(&mut self, config: &MatchConfig, path: &str) -> Option<RouteMatch> {
        let mut ok = true;
        let given = given(&[
            ("prefix", config.prefix.is_some()),
            ("exact", config.exact.is_some()),
            ("regex", config.regex.is_some()),
        ]);
        if given.len() > 1 {
            self.error(
                path,
                format!(
                    "at most one of prefix, exact, regex; got {}",
                    given.join(", ")
                ),
            );
            ok = false;
        }
        let mut path_match = None;
        if let Some(prefix) = &config.prefix {
            path_match = self
                .reported(path_literal(prefix), &join(path, "prefix"))
                .map(PathMatch::Prefix);
            ok &= path_match.is_some();
        }
        if let Some(exact) = &config.exact {
            path_match = self
                .reported(path_literal(exact), &join(path, "exact"))
                .map(PathMatch::Exact);
            ok &= path_match.is_some();
        }
        if let Some(pattern) = &config.regex {
            path_match = self.regex(pattern, path).map(PathMatch::Regex);
            ok &= path_match.is_some();
        }
        let mut methods = Vec::new();
        if let Some(given_methods) = &config.methods {
            let methods_path = join(path, "methods");
            if given_methods.is_empty() {
                self.error(
                    &methods_path,
                    "expected at least one method, or no methods field",
                );
                ok = false;
            }
            for (index, method) in given_methods.iter().enumerate() {
                if is_token(method) && !method.bytes().any(|b| b.is_ascii_lowercase()) {
                    methods.push(method.clone());
                } else {
                    self.error(
                        &format!("{methods_path}[{index}]"),
                        format!(
                            "expected an upper-case HTTP method such as \"GET\", got {method:?}"
                        ),
                    );
                    ok = false;
                }
            }
        }
        let mut headers = Vec::new();
        for (index, header) in config.headers.iter().flatten().enumerate() {
            match self.header_match(header, &format!("{path}.headers[{index}]")) {
                Some(header) => headers.push(header),
                None => ok = false,
            }
        }
        ok.then_some(RouteMatch {
            path: path_match,
            methods,
            headers,
        })
    }

    /// The `regex` field of the object at `path`, counted against the config's regex budget.
    fn regex(&mut self, pattern: &str, path: &str) -> Option<WholeValueRegex> {
        self.regex_units = self.regex_units.saturating_add(regex_units(pattern));
        self.reported(regex(pattern), &join(path, "regex"))
    }

    fn header_match(&mut self, config: &HeaderMatchConfig, path: &str) -> Option<HeaderMatch> {
        let name = self.required(config.name.as_deref(), path, "name", "", |c, name, path| {
            let name = c.reported(header_name(name, true), path)?;
            // The filter writes or removes it on every routed request: a client's value
            // would pick the route, as it would pick a sticky key or an override.
            if c.owned_headers.contains(&name) {
                c.error(
                    path,
                    format!(
                        "{name} is written by the filter; a client's value would pick the route"
                    ),
                );
                return None;
            }
            Some(name)
        });
        let one_rule = self.exactly_one(
            path,
            &[
                ("exact", config.exact.is_some()),
                ("prefix", config.prefix.is_some()),
                ("regex", config.regex.is_some()),
                ("present", config.present.is_some()),
            ],
        );
        if !one_rule {
            return None;
        }
        let rule = match (&config.exact, &config.prefix, &config.regex, config.present) {
            (Some(exact), _, _, _) => Some(HeaderRule::Exact(exact.clone())),
            (_, Some(prefix), _, _) => Some(HeaderRule::Prefix(prefix.clone())),
            (_, _, Some(pattern), _) => self.regex(pattern, path).map(HeaderRule::Regex),
            (_, _, _, Some(true)) => Some(HeaderRule::Present),
            (_, _, _, present) => {
                let got = present.map_or("nothing".to_string(), |flag| flag.to_string());
                self.error(&join(path, "present"), format!("expected true, got {got}"));
                None
            }
        };
        Some(HeaderMatch {
            name: name?,
            rule: rule?,
        })
    }
}

/// A path to match literally: it starts with `/`, as every request's path does.
fn path_literal(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("expected a path starting with \"/\", got {text:?}"));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    //! The checks of a match, and that the compiled matcher matches what the config says.
    use crate::config::compile;
    use crate::config::test_configs::{assert_error, errors_of, route_with_match, ISSUE_EXAMPLE};
    use crate::plan::{Plan, RequestView};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_regexes_of_a_config_share_one_budget() {
        let config = |routes: usize| {
            let routes: Vec<String> = (0..routes)
                .map(|index| {
                    format!(
                        r#"{{ "name": "r{index}", "match": {{ "regex": "/r/.{{5000}}",
                              "headers": [ {{ "name": "x", "regex": "a{{100}}" }} ] }},
                          "destinations": [ {{ "version": "v1", "weight": 1 }} ] }}"#
                    )
                })
                .collect();
            format!(r#"{{ "routes": [ {} ] }}"#, routes.join(","))
        };
        // 5,103 units a route: 195 routes fit, 196 do not.
        assert!(crate::config::compile(config(195).as_bytes()).is_ok());
        assert_error(
            &config(196),
            "routes: the regexes of this config add up to 1000188 units; at most 1000000",
        );
    }

    #[test]
    fn match_errors_name_their_field() {
        assert_error(
            &route_with_match(r#"{ "prefix": "/a", "exact": "/b" }"#),
            "routes[0].match: at most one of prefix, exact, regex; got prefix, exact",
        );
        assert_error(
            &route_with_match(r#"{ "prefix": "hello" }"#),
            "routes[0].match.prefix: expected a path starting with \"/\", got \"hello\"",
        );
        assert_error(
            &route_with_match(r#"{ "methods": ["get"] }"#),
            "routes[0].match.methods[0]: expected an upper-case HTTP method such as \"GET\", got \"get\"",
        );
        assert_error(
            &route_with_match(r#"{ "methods": [] }"#),
            "routes[0].match.methods: expected at least one method, or no methods field",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a" } ] }"#),
            "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got none",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "exact": "x", "prefix": "y" } ] }"#),
            "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got exact, prefix",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "present": false } ] }"#),
            "routes[0].match.headers[0].present: expected true, got false",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "exact": "x" } ] }"#),
            "routes[0].match.headers[0].name: required",
        );
        for owned in [
            "x-split-version",
            "X-Split-Cluster",
            "x-envoy-retry-on",
            "x-envoy-retriable-status-codes",
        ] {
            assert_error(
                &route_with_match(&format!(r#"{{ "headers": [ {{ "name": "{owned}", "exact": "v2" }} ] }}"#)),
                &format!(
                    "routes[0].match.headers[0].name: {} is written by the filter; a client's value would pick the route",
                    owned.to_ascii_lowercase()
                ),
            );
        }
        let errors = errors_of(&route_with_match(r#"{ "regex": "/(unclosed" }"#));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex \"/(unclosed\"")),
            "{errors:?}"
        );
    }

    #[test]
    fn case_insensitive_regexes_fold_ascii_only() {
        let plan =
            compile(route_with_match(r#"{ "regex": "(?i)/caf[eé]/[a-z]+" }"#).as_bytes()).unwrap();
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/CAFE/MENU", &[])).is_some());
        assert!(matched_route(
            &plan,
            &mut FakeRequest::new("GET", "/Café/x".as_bytes(), &[])
        )
        .is_some());
        assert!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", "/CAFÉ/x".as_bytes(), &[])
            )
            .is_none(),
            "RE2 would match: (?i) folds É to é there"
        );
    }

    /// A request for the matcher, answered from fixed values and counting header look-ups.
    struct FakeRequest {
        path: Option<Vec<u8>>,
        method: Option<Vec<u8>>,
        headers: Vec<(&'static str, Vec<u8>)>,
        header_lookups: usize,
    }

    impl FakeRequest {
        fn new(method: &str, path: &[u8], headers: &[(&'static str, &[u8])]) -> Self {
            FakeRequest {
                path: Some(path.to_vec()),
                method: Some(method.as_bytes().to_vec()),
                headers: headers.iter().map(|(n, v)| (*n, v.to_vec())).collect(),
                header_lookups: 0,
            }
        }
    }

    impl RequestView for FakeRequest {
        fn path(&mut self) -> Option<&[u8]> {
            self.path.as_deref()
        }
        fn method(&mut self) -> Option<&[u8]> {
            self.method.as_deref()
        }
        fn header(&mut self, name: &str) -> Option<&[u8]> {
            self.header_lookups += 1;
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_slice())
        }
    }

    fn matched_route(plan: &Plan, request: &mut FakeRequest) -> Option<String> {
        plan.match_route(request)
            .map(|(_, route)| route.name.clone())
    }

    #[test]
    fn issue_example_matches_prefix_method_and_header() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        let prod: &[(&str, &[u8])] = &[("x-env", b"prod")];
        let hello = Some("hello".to_string());
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hello", prod)),
            hello
        );
        assert_eq!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", b"/hello/world?q=1", prod)
            ),
            hello
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("POST", b"/hello", prod)),
            None
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hell", prod)),
            None
        );
        assert_eq!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", b"/hello", &[("x-env", b"dev")])
            ),
            None
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hello", &[])),
            None
        );
        let mut no_pseudo = FakeRequest::new("GET", b"/hello", prod);
        no_pseudo.path = None;
        no_pseudo.method = None;
        assert_eq!(matched_route(&plan, &mut no_pseudo), None);
    }

    #[test]
    fn path_matches_ignore_the_query_string() {
        let plan = compile(route_with_match(r#"{ "exact": "/a" }"#).as_bytes()).unwrap();
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/a?x=/b", &[])).is_some());
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/a/", &[])).is_none());
        let plan =
            compile(route_with_match(r#"{ "regex": "/v[0-9]+/items" }"#).as_bytes()).unwrap();
        assert!(matched_route(
            &plan,
            &mut FakeRequest::new("GET", b"/v12/items?page=2", &[])
        )
        .is_some());
        assert!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/v12/items/3", &[])).is_none(),
            "anchored"
        );
        assert!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"x/v1/items", &[])).is_none(),
            "anchored"
        );
    }

    #[test]
    fn header_rules_match_bytes_safely() {
        let plan = compile(
            route_with_match(
                r#"{ "headers": [ { "name": "X-User", "prefix": "adm" }, { "name": "x-env", "regex": "pr(od|e)" },
                                  { "name": "x-debug", "present": true } ] }"#,
            )
            .as_bytes(),
        )
        .unwrap();
        let ok: &[(&str, &[u8])] = &[("x-user", b"admin"), ("x-env", b"pre"), ("x-debug", b"")];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", ok)).is_some());
        let not_utf8: &[(&str, &[u8])] = &[
            ("x-user", b"adm\xff"),
            ("x-env", b"pr\xffod"),
            ("x-debug", b"1"),
        ];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", not_utf8)).is_none());
        let regex_partial: &[(&str, &[u8])] = &[
            ("x-user", b"adm"),
            ("x-env", b"production"),
            ("x-debug", b"1"),
        ];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", regex_partial)).is_none());
        let missing: &[(&str, &[u8])] = &[("x-user", b"adm"), ("x-env", b"prod")];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"\xff\xfe", missing)).is_none());
    }

    #[test]
    fn first_matching_route_wins_and_later_routes_are_not_asked() {
        let plan = compile(
            br#"{ "routes": [
                 { "name": "first", "match": { "prefix": "/a" }, "destinations": [ { "version": "v1", "weight": 1 } ] },
                 { "name": "second", "match": { "headers": [ { "name": "x", "present": true } ] },
                   "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        )
        .unwrap();
        let mut request = FakeRequest::new("GET", b"/a", &[("x", b"1")]);
        assert_eq!(matched_route(&plan, &mut request).as_deref(), Some("first"));
        assert_eq!(
            request.header_lookups, 0,
            "the header of a later route was fetched"
        );
    }
}
