//! Which build of the filter the harness runs: the Wasm module (the default) or the native
//! Envoy dynamic module, chosen by `TRAFFIC_SPLIT_MODULE=wasm|native` (`make e2e-test` runs
//! the suite for both). Tests build their Envoy config in the Wasm filter's shape; for the
//! native module [`to_native`] rewrites the filter entry when the config is written, so that
//! every test runs unchanged on both.

use serde_yaml::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    Wasm,
    Native,
}

/// The type of the native filter's config.
pub const NATIVE_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";

/// The runtime flag under which Envoy strips a dynamic module's metrics namespace from
/// `/stats/prometheus` (and adds no `envoy_` prefix), as it does for Wasm's `wasmcustom`: with
/// the namespace `wasmcustom`, the native module's metrics then come out under the Wasm
/// module's names (docs/native.md).
pub const STRIP_NAMESPACE_FLAG: &str =
    "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix";

impl Module {
    /// `$TRAFFIC_SPLIT_MODULE`: `native`, else the Wasm module.
    pub fn under_test() -> Module {
        match std::env::var("TRAFFIC_SPLIT_MODULE").as_deref() {
            Ok("native") => Module::Native,
            _ => Module::Wasm,
        }
    }

    /// Whether this test makes sense for the module under test; when not, says why (the test
    /// then returns at once, passing).
    pub fn runs_with(only: Module, why: &str) -> bool {
        let module = Module::under_test();
        if module != only {
            eprintln!("not run with the {module:?} module: {why}");
        }
        module == only
    }
}

/// The native filter's typed config, loading `lib<module_name>.so` with `plugin_config`. Its
/// `filter_name` is the plugin's name, as the Wasm filter's `config.name` is: `traffic-split`,
/// so the series carry the same `plugin` label whichever module counts them.
pub fn native_typed_config(module_name: &str, plugin_config: &str) -> Value {
    let mut typed_config: Value = serde_yaml::from_str(&format!(
        "'@type': {NATIVE_FILTER_TYPE}\n\
         dynamic_module_config: {{ name: {module_name}, metrics_namespace: wasmcustom }}\n\
         filter_name: traffic-split\n\
         filter_config: {{ '@type': type.googleapis.com/google.protobuf.StringValue }}\n"
    ))
    .expect("valid YAML");
    typed_config["filter_config"]["value"] = Value::from(plugin_config);
    typed_config
}

/// Rewrites a Wasm filter entry's typed config as the native filter's, with the same plugin
/// config. A Wasm module file the test chose (the trap module, say) has no native twin: such
/// tests run only with the Wasm module.
pub fn to_native(filter_typed_config: &mut Value) {
    if filter_typed_config["@type"].as_str() == Some(NATIVE_FILTER_TYPE) {
        return;
    }
    let plugin_config = filter_typed_config["config"]["configuration"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plugin_name = filter_typed_config["config"]["name"].clone();
    *filter_typed_config = native_typed_config("traffic_split", &plugin_config);
    if plugin_name.is_string() {
        filter_typed_config["filter_name"] = plugin_name;
    }
}

/// Rewrites every traffic-split filter of an Envoy config as the native filter, and turns on
/// [`STRIP_NAMESPACE_FLAG`]: what the harness does to every config it writes when the native
/// module is under test, and what `make envoy-up MODULE=native` runs (examples/native_envoy.rs).
pub fn to_native_document(document: &mut Value) {
    let listeners = document["static_resources"]["listeners"].as_sequence_mut();
    for listener in listeners.into_iter().flatten() {
        let chains = listener["filter_chains"].as_sequence_mut();
        for chain in chains.into_iter().flatten() {
            let filters = chain["filters"].as_sequence_mut();
            for network_filter in filters.into_iter().flatten() {
                let http_filters = network_filter["typed_config"]["http_filters"].as_sequence_mut();
                for filter in http_filters.into_iter().flatten() {
                    if filter["name"].as_str() == Some("traffic-split") {
                        to_native(&mut filter["typed_config"]);
                    }
                }
            }
        }
    }
    enable_namespace_stripping(document);
}

/// Adds the static runtime layer with [`STRIP_NAMESPACE_FLAG`] on, before any other layer.
pub fn enable_namespace_stripping(document: &mut Value) {
    let layer: Value = serde_yaml::from_str(&format!(
        "{{ name: native-module, static_layer: {{ {STRIP_NAMESPACE_FLAG}: true }} }}"
    ))
    .expect("valid YAML");
    match document["layered_runtime"]["layers"].as_sequence_mut() {
        Some(layers) => layers.insert(0, layer),
        None => document["layered_runtime"]["layers"] = Value::Sequence(vec![layer]),
    }
}
