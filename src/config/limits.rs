//! How large a config the filter accepts. Each Envoy worker compiles the config into its own
//! VM, whose memory grows to the peak of compiling and never shrinks, and Envoy defines metrics
//! for every route and version; these bounds keep configure time and memory reasonable
//! (docs/config.md, "Size limits"; the figures behind them are in docs/performance.md). A
//! config beyond one is refused before anything is compiled, with the limit named.

use super::error::ConfigError;

const BYTES_PER_MIB: usize = 1024 * 1024;
/// The config as the filter receives it (JSON), in bytes.
pub const MAX_CONFIG_BYTES: usize = 8 * BYTES_PER_MIB;
/// Routes in one config.
pub const MAX_ROUTES: usize = 10_000;
/// Destinations of one route: picking one is linear in them.
pub const MAX_DESTINATIONS_PER_ROUTE: usize = 100;
/// Destinations of all routes together: each is a version with its own metrics.
pub const MAX_DESTINATIONS: usize = 20_000;

/// A config too large to read: checked before it is parsed.
pub fn check_config_size(bytes: usize) -> Option<ConfigError> {
    (bytes > MAX_CONFIG_BYTES).then(|| ConfigError {
        path: String::new(),
        message: format!(
            "the configuration is {bytes} bytes; at most {MAX_CONFIG_BYTES} bytes ({} MiB)",
            MAX_CONFIG_BYTES / BYTES_PER_MIB
        ),
    })
}

/// Too many routes or destinations, given each route's number of destinations in config
/// order: checked once the config is parsed, before any route is compiled.
pub fn check_counts(
    destinations_per_route: impl ExactSizeIterator<Item = usize>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let routes = destinations_per_route.len();
    if routes > MAX_ROUTES {
        errors.push(ConfigError {
            path: "routes".to_string(),
            message: format!("{routes} routes; at most {MAX_ROUTES}"),
        });
    }
    let mut total: usize = 0;
    for (index, destinations) in destinations_per_route.enumerate() {
        total = total.saturating_add(destinations);
        if destinations > MAX_DESTINATIONS_PER_ROUTE {
            errors.push(ConfigError {
                path: format!("routes[{index}].destinations"),
                message: format!(
                    "{destinations} destinations; at most {MAX_DESTINATIONS_PER_ROUTE} per route"
                ),
            });
        }
    }
    if total > MAX_DESTINATIONS {
        errors.push(ConfigError {
            path: "routes".to_string(),
            message: format!("{total} destinations in all; at most {MAX_DESTINATIONS}"),
        });
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn messages(errors: &[ConfigError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_largest_config_within_every_limit_passes() {
        assert_eq!(check_config_size(MAX_CONFIG_BYTES), None);
        let per_route = MAX_DESTINATIONS / MAX_ROUTES;
        assert_eq!(
            check_counts(vec![per_route; MAX_ROUTES].into_iter()),
            vec![]
        );
        let mut one_large = vec![1; 10];
        one_large[3] = MAX_DESTINATIONS_PER_ROUTE;
        assert_eq!(check_counts(one_large.into_iter()), vec![]);
    }

    #[test]
    fn one_route_too_many_is_refused_naming_the_limit() {
        assert_eq!(
            messages(&check_counts(vec![1; MAX_ROUTES + 1].into_iter())),
            ["routes: 10001 routes; at most 10000"]
        );
    }

    #[test]
    fn a_route_with_too_many_destinations_is_named() {
        let mut counts = vec![2; 5];
        counts[3] = MAX_DESTINATIONS_PER_ROUTE + 1;
        assert_eq!(
            messages(&check_counts(counts.into_iter())),
            ["routes[3].destinations: 101 destinations; at most 100 per route"]
        );
    }

    #[test]
    fn too_many_destinations_in_all_are_refused() {
        assert_eq!(
            messages(&check_counts(vec![3; MAX_ROUTES].into_iter())),
            ["routes: 30000 destinations in all; at most 20000"]
        );
    }

    #[test]
    fn compile_refuses_too_many_routes_with_the_limit_alone() {
        // Invalid routes too: none is compiled, so only the limit is reported.
        let route = r#"{ "name": "bad name!", "destinations": [] }"#;
        let routes = vec![route; MAX_ROUTES + 1].join(",");
        let config = format!(r#"{{ "routes": [{routes}] }}"#);
        let errors = crate::config::compile(config.as_bytes()).unwrap_err();
        assert_eq!(messages(&errors), ["routes: 10001 routes; at most 10000"]);
    }

    #[test]
    fn compile_refuses_a_config_too_large_before_parsing_it() {
        let config = vec![b' '; MAX_CONFIG_BYTES + 1];
        let errors = crate::config::compile(&config).unwrap_err();
        assert_eq!(
            messages(&errors),
            ["the configuration is 8388609 bytes; at most 8388608 bytes (8 MiB)"]
        );
    }

    #[test]
    fn a_config_one_byte_too_large_is_refused() {
        assert_eq!(
            check_config_size(MAX_CONFIG_BYTES + 1).map(|error| error.to_string()),
            Some("the configuration is 8388609 bytes; at most 8388608 bytes (8 MiB)".to_string())
        );
    }
}
