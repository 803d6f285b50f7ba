//! The config's top level: the headers the filter writes, the routes in order, the metrics
//! mode, the log level and what to do with a refused config.

use super::values::{header_name, keyword};
use super::Checker;
use crate::config::pass_through::PASS_THROUGH;
use crate::config::raw::PluginConfig;
use crate::plan::{
    owned_headers, LogLevel, MetricsMode, Plan, DEADLINE_HEADER, DEFAULT_CLUSTER_HEADER,
    DEFAULT_VERSION_HEADER,
};

/// `"metrics"` as the config spells it.
const METRICS_MODES: &[(&str, MetricsMode)] = &[
    ("full", MetricsMode::Full),
    ("requests", MetricsMode::Requests),
];
/// `"log_level"` as the config spells it.
const LOG_LEVELS: &[(&str, LogLevel)] = &[
    ("trace", LogLevel::Trace),
    ("debug", LogLevel::Debug),
    ("info", LogLevel::Info),
    ("warn", LogLevel::Warn),
    ("error", LogLevel::Error),
    ("critical", LogLevel::Critical),
];
/// `"on_invalid_config"` as the config spells it.
const ON_INVALID_CONFIG: &[&str] = &["refuse", PASS_THROUGH];

impl Checker {
    pub(super) fn plugin(&mut self, config: &PluginConfig) -> Option<Plan> {
        let version_header = self
            .optional(
                config.version_header.as_deref(),
                "",
                "version_header",
                |c, name, path| c.reported(header_name(name, false), path),
            )
            .map(|name| name.unwrap_or_else(|| DEFAULT_VERSION_HEADER.to_string()));
        let cluster_header = self
            .optional(
                config.cluster_header.as_deref(),
                "",
                "cluster_header",
                |c, name, path| c.reported(header_name(name, false), path),
            )
            .map(|name| name.unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_string()));
        let named = [&version_header, &cluster_header];
        self.owned_headers = owned_headers(named.into_iter().flatten().map(String::as_str))
            .map(str::to_string)
            .collect();
        if let (Some(version), Some(cluster)) = (&version_header, &cluster_header) {
            if version == cluster {
                self.error(
                    "cluster_header",
                    format!("must differ from version_header (both are {version:?})"),
                );
            }
            for (field, name) in [("version_header", version), ("cluster_header", cluster)] {
                if name == DEADLINE_HEADER {
                    self.error(
                        field,
                        format!("{DEADLINE_HEADER} is Envoy's deadline header"),
                    );
                }
            }
        }
        let routes = self.required(
            config.routes.as_deref(),
            "",
            "routes",
            "a non-empty list of routes",
            |c, routes, _| c.routes(routes),
        );
        let metrics = self
            .optional(config.metrics.as_deref(), "", "metrics", |c, text, path| {
                c.reported(keyword(text, METRICS_MODES), path)
            })
            .map(Option::unwrap_or_default);
        let log_level = self
            .optional(
                config.log_level.as_deref(),
                "",
                "log_level",
                |c, text, path| c.reported(keyword(text, LOG_LEVELS), path),
            )
            .map(Option::unwrap_or_default);
        // Only checked here: it matters once a config is refused (config::pass_through).
        if let Some(given) = config.on_invalid_config.as_deref() {
            if !ON_INVALID_CONFIG.contains(&given) {
                self.error(
                    "on_invalid_config",
                    format!(r#"expected one of "refuse", "{PASS_THROUGH}", got {given:?}"#),
                );
            }
        }
        Some(Plan {
            version_header: version_header?,
            cluster_header: cluster_header?,
            routes: crate::plan::RouteTable::new(routes?),
            metrics: metrics?,
            log_level: log_level?,
            pass_through: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    use crate::config::test_configs::{assert_error, errors_of, route_with};
    use crate::plan::{LogLevel, MetricsMode, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn header_names_default_and_are_lower_cased() {
        let plan = compile(route_with(r#"[{"version":"v1","weight":1}]"#).as_bytes()).unwrap();
        assert_eq!(plan.version_header, DEFAULT_VERSION_HEADER);
        assert_eq!(plan.cluster_header, DEFAULT_CLUSTER_HEADER);
        let json = r#"{ "version_header": "X-Canary", "cluster_header": "X-Target",
                        "routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;
        let plan = compile(json.as_bytes()).unwrap();
        assert_eq!(
            (plan.version_header.as_str(), plan.cluster_header.as_str()),
            ("x-canary", "x-target")
        );
        assert!(plan.routes[0].destinations[0].deadline_ms.is_none());
    }

    #[test]
    fn header_names_must_be_valid_and_distinct() {
        let with_headers = |version: &str, cluster: &str| {
            format!(
                r#"{{ "version_header": {version}, "cluster_header": {cluster},
                     "routes": [ {{ "name": "r", "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
            )
        };
        assert_error(
            &with_headers(r#""x-a""#, r#""X-A""#),
            "cluster_header: must differ from version_header (both are \"x-a\")",
        );
        assert_error(
            &with_headers(r#""bad header""#, r#""x-b""#),
            "version_header: expected an HTTP header name, got \"bad header\"",
        );
        assert_error(
            &with_headers(r#""x-a""#, r#"":authority""#),
            "cluster_header: expected an HTTP header name, got \":authority\"",
        );
        assert_error(
            &with_headers(r#""x-envoy-upstream-rq-timeout-ms""#, r#""x-b""#),
            "version_header: x-envoy-upstream-rq-timeout-ms is Envoy's deadline header",
        );
        assert_error(
            &with_headers("7", r#""x-b""#),
            "version_header: expected a string, got 7",
        );
    }

    #[test]
    fn metrics_default_to_full_and_may_be_only_requests() {
        let one_route = r#""routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ]"#;
        let plan = compile(format!("{{ {one_route} }}").as_bytes()).unwrap();
        assert_eq!(plan.metrics, MetricsMode::Full);
        for (written, mode) in [
            ("full", MetricsMode::Full),
            ("requests", MetricsMode::Requests),
        ] {
            let plan = compile(format!(r#"{{ "metrics": "{written}", {one_route} }}"#).as_bytes())
                .unwrap();
            assert_eq!(plan.metrics, mode, "{written}");
        }
        for bad in ["Full", "none", ""] {
            assert_eq!(
                errors_of(&format!(r#"{{ "metrics": "{bad}", {one_route} }}"#)),
                [format!(
                    r#"metrics: expected one of "full", "requests", got "{bad}""#
                )]
            );
        }
    }

    #[test]
    fn log_level_defaults_to_info_and_takes_the_six_levels() {
        let one_route = r#""routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ]"#;
        let plan = compile(format!("{{ {one_route} }}").as_bytes()).unwrap();
        assert_eq!(plan.log_level, LogLevel::Info);
        for (written, level) in [
            ("trace", LogLevel::Trace),
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("error", LogLevel::Error),
            ("critical", LogLevel::Critical),
        ] {
            let plan =
                compile(format!(r#"{{ "log_level": "{written}", {one_route} }}"#).as_bytes())
                    .unwrap();
            assert_eq!(plan.log_level, level, "{written}");
        }
        assert_eq!(
            errors_of(&format!(
                r#"{{ "log_level": "warning", "metrics": "some", {one_route} }}"#
            )),
            [
                r#"metrics: expected one of "full", "requests", got "some""#,
                r#"log_level: expected one of "trace", "debug", "info", "warn", "error", "critical", got "warning""#,
            ]
        );
    }
}
