//! Every metric the filter defines, declared once: [`DestinationMetric`]'s table (the metrics of
//! one route and version) and [`PluginMetric`]'s (the plugin's own). The adapter defines ids
//! from these tables at configure time, the stream counts by their rows, the host maps a row to
//! its id by position, and the live view reads the same names: adding a metric is one row.
//!
//! Proxy-wasm metrics carry no labels, so the labels are spelled into the stat name in a fixed
//! dotted layout, and Envoy's `stats_tags` (see `envoy/envoy.yaml` and `docs/metrics.md`) turn
//! them back into Prometheus labels:
//!
//! ```text
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.requests_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.code_class.<2xx..5xx>.responses_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.timeouts_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.client_cancelled_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.request_duration_microseconds
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.weight
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.share
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.guard_trips_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.guard_ejected
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.guard_held_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.fault.<abort|delay>.faults_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version>.source.<header|cookie|none>.sticky_total
//! traffic_split.plugin.<plugin>.route.<route>.version.<version|unknown>.overrides_total
//! traffic_split.plugin.<plugin>.unmatched_total
//! traffic_split.plugin.<plugin>.host_errors_total
//! traffic_split.plugin.<plugin>.invalid_config_requests_total
//! ```
//!
//! Envoy puts every Wasm-defined stat under the `wasmcustom.` namespace and strips it again in
//! `/stats/prometheus`, so users see
//! `traffic_split_requests_total{plugin="traffic-split",route="hello",version="v1"}`.
//! Route names and versions are validated to `[A-Za-z0-9_-]`, so they never contain the dots
//! that separate the parts; the plugin's name is the host's, and [`PluginLabel`] maps it into
//! the same characters.
//!
//! Every metric carries its plugin: two traffic-split plugins on one proxy (each with a route
//! `hello`, say) count into series of their own, never into one sum. [`stat_name`] is the one
//! place that spells a name; every host (proxy-wasm, the native module) defines what it gives.

/// Every stat name starts with this.
pub const PREFIX: &str = "traffic_split";

/// What kind of stat a metric is, as proxy-wasm defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// The kinds of fault, as the metrics' `kind` label spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Abort,
    Delay,
}

impl FaultKind {
    pub const ALL: [FaultKind; 2] = [FaultKind::Abort, FaultKind::Delay];

    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Abort => "abort",
            FaultKind::Delay => "delay",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What of a route's config makes a destination metric defined: a metric that could only stay
/// 0 is never shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefinedWhen {
    Always,
    /// `"metrics": "full"` (the response path counts).
    FullMetrics,
    /// The route has a guard.
    Guard,
    /// The destination may inject this kind of fault.
    Fault(FaultKind),
    /// The route is sticky.
    Sticky,
    /// The route is sticky by a header: its keys can come from one.
    StickyByHeader,
    /// The route is sticky by a cookie: its keys can come from one.
    StickyByCookie,
    /// The route has an override header.
    OverrideHeader,
}

/// What makes a plugin metric defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginDefinedWhen {
    Always,
    /// Only under the pass-through plan of a refused config.
    PassThrough,
    /// Only where the host catches a panic and lets the request through without the filter
    /// (the native module). In Wasm a panic is a trap that ends the VM: nothing could count it.
    CatchesPanics,
}

/// The `plugin` label of a plugin's metrics, made from the name the host gives the plugin
/// (proxy-wasm's `plugin_name` property: the Wasm filter's `config.name` in Envoy,
/// `<namespace>.<name>` of the WasmPlugin or TrafficExtension in Istio).
///
/// A label segment may hold only `[A-Za-z0-9_-]` (a dot would split the name, and the
/// `stats_tags` take no other characters), so every other character becomes `_`:
/// `istio-system.traffic-split` is `istio-system_traffic-split`. Kubernetes names hold no `_`,
/// so two Istio plugins of different names never meet in one label; two Envoy plugin names
/// that differ only where `_` stands (`a.b` and `a_b`) do (docs/metrics.md). A plugin without
/// a name is [`UNNAMED_PLUGIN`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginLabel(String);

/// The `plugin` label of a plugin the host gives no name.
pub const UNNAMED_PLUGIN: &str = "unnamed";

impl PluginLabel {
    /// The label of the plugin the host calls `plugin_name`.
    pub fn of_plugin_name(plugin_name: &str) -> PluginLabel {
        if plugin_name.is_empty() {
            return PluginLabel(UNNAMED_PLUGIN.to_owned());
        }
        let label = plugin_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        PluginLabel(label)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Display for PluginLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stat name of a metric: `traffic_split.plugin.<plugin>.` then, for a destination metric,
/// `route.<route>.version.<version>.`, then the row's name. The one function that spells
/// names, for every host.
pub fn stat_name(plugin: &PluginLabel, destination: Option<(&str, &str)>, row: &str) -> String {
    match destination {
        Some((route, version)) => {
            format!("{PREFIX}.plugin.{plugin}.route.{route}.version.{version}.{row}")
        }
        None => format!("{PREFIX}.plugin.{plugin}.{row}"),
    }
}

/// One row of a metric table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricRow {
    pub kind: MetricKind,
    /// The name after `traffic_split.plugin.<plugin>.route.<route>.version.<version>.` (a
    /// destination metric), or after `traffic_split.plugin.<plugin>.` (a plugin metric).
    pub name: &'static str,
}

/// Declares a metric table: an enum of its rows, `ALL` in row order, and each row's kind, name
/// and condition.
macro_rules! metric_table {
    (
        $(#[$meta:meta])*
        $table:ident, $when_type:ty {
            $($(#[$row_meta:meta])* $row:ident: $kind:ident, $when:expr, $name:literal;)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $table {
            $($(#[$row_meta])* $row,)*
        }

        impl $table {
            /// Every row, in table order (`self as usize` is a row's position).
            pub const ALL: &'static [$table] = &[$($table::$row,)*];
            /// How many rows the table has: the length of an array of ids by row.
            pub const COUNT: usize = Self::ALL.len();

            pub const fn row(self) -> MetricRow {
                match self {
                    $($table::$row => MetricRow { kind: MetricKind::$kind, name: $name },)*
                }
            }

            /// What makes this metric defined.
            pub const fn defined_when(self) -> $when_type {
                match self {
                    $($table::$row => $when,)*
                }
            }

            /// The position of this row in [`Self::ALL`], for arrays of ids by row.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

use DefinedWhen::*;

metric_table! {
    /// The metrics of one route and version.
    DestinationMetric, DefinedWhen {
        /// A request sent to this version with every owned header written.
        Requests: Counter, Always, "requests_total";
        /// Responses by class ([`DestinationMetric::response`]).
        Responses2xx: Counter, FullMetrics, "code_class.2xx.responses_total";
        Responses3xx: Counter, FullMetrics, "code_class.3xx.responses_total";
        Responses4xx: Counter, FullMetrics, "code_class.4xx.responses_total";
        Responses5xx: Counter, FullMetrics, "code_class.5xx.responses_total";
        /// Envoy's own deadline (or a per-try deadline) cut the request.
        Timeouts: Counter, FullMetrics, "timeouts_total";
        /// Streams the client ended before the end of the response (Envoy's `DC` flag): no
        /// outcome of the version, so neither a response nor an error the guard counts.
        ClientCancelled: Counter, FullMetrics, "client_cancelled_total";
        /// The request's duration, in microseconds.
        Duration: Histogram, FullMetrics, "request_duration_microseconds";
        /// The weight requests are split by now (the configured one, a rollout's split, or
        /// the guard's).
        Weight: Gauge, Always, "weight";
        /// This version's share of the route's requests now, in millionths (250000: 25%): a
        /// rollout's share in force, the rest by weight, the guard's decisions.
        Share: Gauge, Always, "share";
        /// How often the guard took this version out of the split.
        GuardTrips: Counter, Guard, "guard_trips_total";
        /// 1 while the guard holds this version out of the split, else 0.
        GuardEjected: Gauge, Guard, "guard_ejected";
        /// 1 while the guard holds this version out until the config changes (a halted
        /// rollout, or `"cooldown": "until_config_change"`), else 0.
        GuardLatched: Gauge, Guard, "guard_latched";
        /// How often the guard would have taken this version out but could not, since it was
        /// the last version with weight.
        GuardHeld: Counter, Guard, "guard_held_total";
        /// Injected faults by kind ([`DestinationMetric::fault`]).
        FaultsAbort: Counter, Fault(FaultKind::Abort), "fault.abort.faults_total";
        FaultsDelay: Counter, Fault(FaultKind::Delay), "fault.delay.faults_total";
        /// Requests of a sticky route by where their key came from ([`DestinationMetric::sticky`]).
        StickyHeader: Counter, StickyByHeader, "source.header.sticky_total";
        StickyCookie: Counter, StickyByCookie, "source.cookie.sticky_total";
        StickyNone: Counter, Sticky, "source.none.sticky_total";
        /// Requests sent where their override header said. Under the version
        /// [`UNKNOWN_VERSION`], the route's overrides that named no version of it.
        Overrides: Counter, OverrideHeader, "overrides_total";
    }
}

metric_table! {
    /// The plugin's own metrics.
    PluginMetric, PluginDefinedWhen {
        /// Requests that matched no route.
        Unmatched: Counter, PluginDefinedWhen::Always, "unmatched_total";
        /// Host calls that failed while handling a request (a header that could not be read or
        /// written, a response that could not be read). A request with a failed write is
        /// counted here and not as routed.
        HostErrors: Counter, PluginDefinedWhen::Always, "host_errors_total";
        /// Requests passed through under a refused config that asked for it
        /// (`"on_invalid_config": "pass_through"`).
        InvalidConfigRequests: Counter, PluginDefinedWhen::PassThrough, "invalid_config_requests_total";
        /// Panics the host caught (a bug of ours): each let its request through without the
        /// filter.
        Panics: Counter, PluginDefinedWhen::CatchesPanics, "panics_total";
    }
}

impl DestinationMetric {
    /// The counter of a response class.
    pub const fn response(class: CodeClass) -> Self {
        match class {
            CodeClass::Success => DestinationMetric::Responses2xx,
            CodeClass::Redirect => DestinationMetric::Responses3xx,
            CodeClass::ClientError => DestinationMetric::Responses4xx,
            CodeClass::ServerError => DestinationMetric::Responses5xx,
        }
    }

    /// The counter of a kind of fault.
    pub const fn fault(kind: FaultKind) -> Self {
        match kind {
            FaultKind::Abort => DestinationMetric::FaultsAbort,
            FaultKind::Delay => DestinationMetric::FaultsDelay,
        }
    }

    /// The sticky counter of a key source.
    pub const fn sticky(source: KeySource) -> Self {
        match source {
            KeySource::Header => DestinationMetric::StickyHeader,
            KeySource::Cookie => DestinationMetric::StickyCookie,
            KeySource::None => DestinationMetric::StickyNone,
        }
    }

    /// This metric's stat name for a plugin's route and version.
    pub fn name(self, plugin: &PluginLabel, route: &str, version: &str) -> String {
        stat_name(plugin, Some((route, version)), self.row().name)
    }
}

impl PluginMetric {
    /// This metric's stat name for a plugin.
    pub fn name(self, plugin: &PluginLabel) -> String {
        stat_name(plugin, None, self.row().name)
    }
}
/// The response classes counted. Envoy never forwards a final 1xx except on upgrades, so they
/// and any status outside 100-599 are not counted as a response class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    Success,
    Redirect,
    ClientError,
    ServerError,
}

impl CodeClass {
    pub const ALL: [CodeClass; 4] = [
        CodeClass::Success,
        CodeClass::Redirect,
        CodeClass::ClientError,
        CodeClass::ServerError,
    ];

    /// The class of a response code, as Envoy's `response.code` attribute gives it.
    pub fn of_code(code: i64) -> Option<CodeClass> {
        match code {
            200..=299 => Some(CodeClass::Success),
            300..=399 => Some(CodeClass::Redirect),
            400..=499 => Some(CodeClass::ClientError),
            500..=599 => Some(CodeClass::ServerError),
            _ => None,
        }
    }

    /// The label value, as Istio and Kiali spell it.
    pub fn label(self) -> &'static str {
        match self {
            CodeClass::Success => "2xx",
            CodeClass::Redirect => "3xx",
            CodeClass::ClientError => "4xx",
            CodeClass::ServerError => "5xx",
        }
    }

    /// The position of this class in [`CodeClass::ALL`], for arrays indexed by class.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a sticky route found a request's key: the `source` label of its sticky counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    Header,
    Cookie,
    /// No key: the round robin chose (or, with `set_cookie`, the fresh key of the cookie set).
    None,
}

impl KeySource {
    pub const ALL: [KeySource; 3] = [KeySource::Header, KeySource::Cookie, KeySource::None];

    pub fn label(self) -> &'static str {
        match self {
            KeySource::Header => "header",
            KeySource::Cookie => "cookie",
            KeySource::None => "none",
        }
    }

    /// The position of this source in [`KeySource::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The `version` label of the overrides whose value named no version of the route. A route
/// with an override header may not have a version of this name.
pub const UNKNOWN_VERSION: &str = "unknown";

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn plugin() -> PluginLabel {
        PluginLabel::of_plugin_name("traffic-split")
    }

    #[test]
    fn names_spell_plugin_route_and_version_as_tag_segments() {
        let name = |metric: DestinationMetric| metric.name(&plugin(), "hello", "v1");
        assert_eq!(
            name(DestinationMetric::Requests),
            "traffic_split.plugin.traffic-split.route.hello.version.v1.requests_total"
        );
        assert_eq!(
            name(DestinationMetric::response(CodeClass::ServerError)),
            "traffic_split.plugin.traffic-split.route.hello.version.v1.code_class.5xx.responses_total"
        );
        assert_eq!(
            name(DestinationMetric::Duration),
            "traffic_split.plugin.traffic-split.route.hello.version.v1.request_duration_microseconds"
        );
        assert_eq!(
            name(DestinationMetric::sticky(KeySource::Cookie)),
            "traffic_split.plugin.traffic-split.route.hello.version.v1.source.cookie.sticky_total"
        );
        assert_eq!(
            DestinationMetric::Overrides.name(&plugin(), "hello", UNKNOWN_VERSION),
            "traffic_split.plugin.traffic-split.route.hello.version.unknown.overrides_total"
        );
        assert_eq!(
            PluginMetric::Unmatched.name(&plugin()),
            "traffic_split.plugin.traffic-split.unmatched_total"
        );
    }

    #[test]
    fn two_plugins_never_share_a_name() {
        let first = PluginLabel::of_plugin_name("default.split-a");
        let second = PluginLabel::of_plugin_name("default.split-b");
        for metric in DestinationMetric::ALL {
            assert_ne!(
                metric.name(&first, "hello", "v1"),
                metric.name(&second, "hello", "v1")
            );
        }
        for metric in PluginMetric::ALL {
            assert_ne!(metric.name(&first), metric.name(&second));
        }
    }

    #[test]
    fn plugin_names_become_label_segments() {
        let label = |name: &str| PluginLabel::of_plugin_name(name).as_str().to_owned();
        // Istio's `<namespace>.<name>`: the dot would split the stat name.
        assert_eq!(
            label("istio-system.traffic-split"),
            "istio-system_traffic-split"
        );
        assert_eq!(label("traffic-split"), "traffic-split");
        assert_eq!(label("Split_2"), "Split_2");
        assert_eq!(label("a b/c:d\u{e9}\u{1f600}"), "a_b_c_d__");
        assert_eq!(label("..."), "___");
        assert_eq!(label(""), UNNAMED_PLUGIN);
        for name in ["x.y", "\u{0}", "{}[]()*+?|^$"] {
            assert!(label(name)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
    }

    #[test]
    fn labelled_rows_spell_their_label() {
        for class in CodeClass::ALL {
            let row = DestinationMetric::response(class).row();
            assert_eq!(
                row.name,
                format!("code_class.{}.responses_total", class.label())
            );
        }
        for kind in FaultKind::ALL {
            let row = DestinationMetric::fault(kind).row();
            assert_eq!(row.name, format!("fault.{}.faults_total", kind.label()));
            assert_eq!(
                DestinationMetric::fault(kind).defined_when(),
                DefinedWhen::Fault(kind)
            );
        }
        for source in KeySource::ALL {
            let row = DestinationMetric::sticky(source).row();
            assert_eq!(row.name, format!("source.{}.sticky_total", source.label()));
        }
    }

    #[test]
    fn table_positions_and_names_are_unique() {
        for (position, metric) in DestinationMetric::ALL.iter().enumerate() {
            assert_eq!(metric.index(), position);
        }
        for (position, metric) in PluginMetric::ALL.iter().enumerate() {
            assert_eq!(metric.index(), position);
            assert!(metric.name(&plugin()).starts_with(PREFIX));
        }
        let mut names: Vec<_> = DestinationMetric::ALL
            .iter()
            .map(|metric| metric.row().name)
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DestinationMetric::COUNT);
    }

    #[test]
    fn key_source_index_matches_all() {
        for (position, source) in KeySource::ALL.iter().enumerate() {
            assert_eq!(source.index(), position);
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(CodeClass::of_code(200), Some(CodeClass::Success));
        assert_eq!(CodeClass::of_code(299), Some(CodeClass::Success));
        assert_eq!(CodeClass::of_code(302), Some(CodeClass::Redirect));
        assert_eq!(CodeClass::of_code(404), Some(CodeClass::ClientError));
        assert_eq!(CodeClass::of_code(504), Some(CodeClass::ServerError));
        for odd in [i64::MIN, -200, 0, 101, 199, 600, 2000, i64::MAX] {
            assert_eq!(CodeClass::of_code(odd), None, "{odd}");
        }
    }

    #[test]
    fn class_index_matches_all() {
        for (position, class) in CodeClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), position);
        }
    }
}
