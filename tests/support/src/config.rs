//! The shipped `envoy/envoy.yaml` as a typed builder: each `with_*` adapts one thing, and the
//! paths into Envoy's YAML (the front listener, a listener's connection manager, its HTTP
//! filters, the traffic-split filter's config) are written out once, here.

use super::discovery;
use super::files::{repo_root, wasm_module};
use super::module::{self, Module};
use serde_yaml::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// The runtime key of v2's abort percentage (see [`EnvoyConfig::with_v2_failure_switch`]).
pub(crate) const V2_ABORT_PERCENT_KEY: &str = "test.v2.abort_percent";

/// YAML this file writes itself; a parse failure is a bug in the harness.
fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("valid YAML")
}

/// A listener's HTTP connection manager (the first filter of its first chain).
pub fn connection_manager(listener: &mut Value) -> &mut Value {
    &mut listener["filter_chains"][0]["filters"][0]["typed_config"]
}

/// A listener's HTTP filters, as a list.
fn http_filters(listener: &mut Value) -> &mut Vec<Value> {
    connection_manager(listener)["http_filters"]
        .as_sequence_mut()
        .expect("the listener has HTTP filters")
}

/// A listener's traffic-split filter entry (`name` and `typed_config`).
pub fn traffic_split_filter(listener: &mut Value) -> &mut Value {
    http_filters(listener)
        .iter_mut()
        .find(|filter| filter["name"].as_str() == Some("traffic-split"))
        .expect("the listener has the traffic-split filter")
}

/// The Wasm filter's `config` (`vm_config`, `configuration`, failure policy) of a listener.
fn wasm_config(listener: &mut Value) -> &mut Value {
    &mut traffic_split_filter(listener)["typed_config"]["config"]
}

/// Sets the plugin configuration (the JSON Envoy hands to `on_configure`) in a Wasm filter's
/// `typed_config`.
pub fn set_plugin_config(filter_typed_config: &mut Value, json: &str) {
    if filter_typed_config["filter_config"].is_mapping() {
        filter_typed_config["filter_config"]["value"] = Value::from(json);
        return;
    }
    filter_typed_config["config"]["configuration"]["value"] = Value::from(json);
}

/// The shipped `envoy/envoy.yaml`, as a YAML document to adapt.
pub struct EnvoyConfig {
    pub document: Value,
    /// Serve the front listener through file-based LDS, so a test can reconfigure it live.
    pub(crate) front_from_lds: bool,
    /// Serve the front listener's traffic-split filter config through file-based ECDS.
    pub(crate) filter_from_ecds: bool,
    /// More listeners like the front one, each with its own plugin configuration: (name,
    /// the plugin's name where it has its own, JSON).
    more_fronts: Vec<(String, Option<String>, String)>,
    /// Envoy's worker threads (`--concurrency`), each with its own Wasm VM.
    pub(crate) concurrency: u32,
}

impl EnvoyConfig {
    pub fn shipped() -> EnvoyConfig {
        Self::from_file(&repo_root().join("envoy/envoy.yaml"))
    }

    pub fn from_file(path: &Path) -> EnvoyConfig {
        let text = fs::read_to_string(path).expect("read the Envoy config");
        EnvoyConfig {
            document: serde_yaml::from_str(&text).expect("parse the Envoy config"),
            front_from_lds: false,
            filter_from_ecds: false,
            more_fronts: Vec::new(),
            concurrency: 1,
        }
    }

    /// The static listeners.
    pub fn listeners(&mut self) -> &mut Vec<Value> {
        self.document["static_resources"]["listeners"]
            .as_sequence_mut()
            .expect("static listeners")
    }

    /// The front listener, where the filter runs (the first one).
    pub fn front_listener(&mut self) -> &mut Value {
        &mut self.document["static_resources"]["listeners"][0]
    }

    /// A static listener by name.
    pub fn listener(&mut self, name: &str) -> &mut Value {
        self.listeners()
            .iter_mut()
            .find(|listener| listener["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    /// The demo's upstream listeners (`springbootapp-v1`, `springbootapp-v2`).
    fn upstream_listeners(&mut self) -> impl Iterator<Item = &mut Value> {
        self.listeners().iter_mut().filter(|listener| {
            listener["name"]
                .as_str()
                .is_some_and(|name| name.starts_with("springbootapp-"))
        })
    }

    /// The front listener's routes (Envoy's default route is the last one).
    pub fn front_routes(&mut self) -> &mut Vec<Value> {
        connection_manager(self.front_listener())["route_config"]["virtual_hosts"][0]["routes"]
            .as_sequence_mut()
            .expect("the front listener has routes")
    }

    /// Runs Envoy with `workers` worker threads, so that a test sees several VMs agree.
    pub fn with_concurrency(mut self, workers: u32) -> EnvoyConfig {
        self.concurrency = workers;
        self
    }

    /// Lets a test make v2 fail: its upstream's fault filter gets an abort with status 503 at
    /// 0%, which [`super::Envoy::set_v2_failing`] raises through Envoy's runtime.
    pub fn with_v2_failure_switch(mut self) -> EnvoyConfig {
        let v2 = self.listener("springbootapp-v2");
        let fault = &mut http_filters(v2)[0]["typed_config"];
        fault["abort"] =
            yaml("{ http_status: 503, percentage: { numerator: 0, denominator: HUNDRED } }");
        fault["abort_percent_runtime"] = Value::from(V2_ABORT_PERCENT_KEY);
        self.document["layered_runtime"] = yaml("layers: [ { name: admin, admin_layer: {} } ]");
        self
    }

    /// Replaces the filter's plugin configuration (the JSON Envoy hands to `on_configure`).
    pub fn with_plugin_config(mut self, json: &str) -> EnvoyConfig {
        set_plugin_config(
            &mut traffic_split_filter(self.front_listener())["typed_config"],
            json,
        );
        self
    }

    /// The plugin configuration currently in the document.
    pub fn plugin_config(&mut self) -> String {
        wasm_config(self.front_listener())["configuration"]["value"]
            .as_str()
            .expect("a StringValue configuration")
            .to_string()
    }

    /// Makes the front Envoy trust its clients' `x-envoy-*` headers, as an Istio sidecar trusts
    /// its own application: Envoy then honours a client's `x-envoy-upstream-rq-timeout-ms`, which
    /// is exactly when a spoofed deadline would matter.
    pub fn trusting_client_headers(mut self) -> EnvoyConfig {
        let manager = connection_manager(self.front_listener());
        manager["use_remote_address"] = Value::Bool(true);
        manager["internal_address_config"] = yaml(
            "cidr_ranges: [ { address_prefix: 0.0.0.0, prefix_len: 0 }, { address_prefix: '::', prefix_len: 0 } ]",
        );
        self
    }

    /// Serves the front listener from a watched LDS file instead of the static config, so that
    /// [`super::Envoy::reconfigure`] can hand the running filter a new plugin configuration.
    pub fn front_listener_from_lds(mut self) -> EnvoyConfig {
        self.front_from_lds = true;
        self
    }

    /// Serves the front listener's traffic-split filter config from a watched ECDS file
    /// (extension config discovery), as Istio delivers a WasmPlugin: the listener names the
    /// filter and Envoy fetches its config, which [`super::Envoy::reconfigure_filter`]
    /// replaces. As Istio does, the listener waits for that config with no timeout
    /// (`initial_fetch_timeout: 0s`) and has no default.
    pub fn front_filter_from_ecds(mut self) -> EnvoyConfig {
        self.filter_from_ecds = true;
        self
    }

    /// Runs `workers` worker threads, each with its own Wasm VM and round robin, and spreads the
    /// front listener's connections over them evenly (Envoy's exact balance): connections open
    /// at the same time are on different workers. [`super::Admin::connections_per_worker`]
    /// tells.
    pub fn with_balanced_workers(mut self, workers: u32) -> EnvoyConfig {
        self = self.with_concurrency(workers);
        let front = self.front_listener();
        front["connection_balance_config"] = yaml("{ exact_balance: {} }");
        // Its stats under its own name, not under its address (port 0, like others').
        front["stat_prefix"] = Value::from("front");
        self
    }

    /// Takes the 5 ms delay off v2, for tests that send thousands of requests to it.
    pub fn without_v2_delay(mut self) -> EnvoyConfig {
        http_filters(self.listener("springbootapp-v2"))
            .retain(|filter| filter["name"] != "envoy.filters.http.fault");
        self
    }

    /// Makes both demo upstreams echo a request header they received, as
    /// `x-upstream-saw-<header>`, so a test can see what reached them.
    pub fn upstreams_echo(mut self, header: &str) -> EnvoyConfig {
        let echo = yaml(&format!(
            "header: {{ key: x-upstream-saw-{header}, value: \"%REQ({header})%\" }}"
        ));
        for listener in self.upstream_listeners() {
            let virtual_host =
                &mut connection_manager(listener)["route_config"]["virtual_hosts"][0];
            if let Some(added) = virtual_host["response_headers_to_add"].as_sequence_mut() {
                added.push(echo.clone());
            }
        }
        self
    }

    /// Adds a listener `name` like the front one, whose filter has its own plugin
    /// configuration but the same `vm_id` and module: Envoy then runs both plugins in one VM,
    /// each with a root context of its own. Reach it with [`super::Envoy::listener`].
    pub fn with_another_front(mut self, name: &str, plugin_config: &str) -> EnvoyConfig {
        self.more_fronts
            .push((name.to_string(), None, plugin_config.to_string()));
        self
    }

    /// Like [`EnvoyConfig::with_another_front`], with a plugin of its own name (the Wasm
    /// filter's `config.name`, the host's `plugin_name`): a second plugin on the proxy, as a
    /// second WasmPlugin makes in Istio.
    pub fn with_another_plugin(
        mut self,
        listener: &str,
        plugin_name: &str,
        plugin_config: &str,
    ) -> EnvoyConfig {
        self.more_fronts.push((
            listener.to_string(),
            Some(plugin_name.to_string()),
            plugin_config.to_string(),
        ));
        self
    }

    /// What Envoy does when the filter's VM fails: `FAIL_CLOSED`, `FAIL_OPEN` or `FAIL_RELOAD`
    /// (the Wasm filter's `failure_policy`, which replaced `fail_open`).
    pub fn with_failure_policy(mut self, policy: &str) -> EnvoyConfig {
        let config = wasm_config(self.front_listener());
        if let Some(config) = config.as_mapping_mut() {
            config.remove("fail_open");
        }
        config["failure_policy"] = Value::from(policy);
        self
    }

    /// The Wasm filter's older `fail_open` flag instead of its `failure_policy` (what Istio
    /// releases before `failure_policy` set for `failStrategy`).
    pub fn with_fail_open(mut self, fail_open: bool) -> EnvoyConfig {
        let config = wasm_config(self.front_listener());
        if let Some(config) = config.as_mapping_mut() {
            config.remove("failure_policy");
        }
        config["fail_open"] = Value::Bool(fail_open);
        self
    }

    /// Removes a listener by name, for example an upstream that has gone away: its cluster
    /// stays, and connections to it fail.
    pub fn without_listener(mut self, name: &str) -> EnvoyConfig {
        self.listeners()
            .retain(|listener| listener["name"].as_str() != Some(name));
        self
    }

    /// Adds a cluster the routes do not list, whose endpoint does not answer: a request that
    /// reaches it gets a 503, so a test sees at once whether a client could pick it.
    pub fn with_unlisted_cluster(mut self, name: &str) -> EnvoyConfig {
        let cluster = yaml(&format!(
            "{{ name: {name}, connect_timeout: 1s, load_assignment: {{ cluster_name: {name}, \
             endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ pipe: {{ path: '@{name}-nobody' }} }} }} }} ] }} ] }} }}"
        ));
        if let Some(clusters) = self.document["static_resources"]["clusters"].as_sequence_mut() {
            clusters.push(cluster);
        }
        self
    }

    /// Loads a different module file (for example one pulled back from a registry).
    pub fn with_wasm_module(mut self, path: &Path) -> EnvoyConfig {
        wasm_config(self.front_listener())["vm_config"]["code"]["local"]["filename"] =
            Value::String(path.display().to_string());
        self
    }

    /// The document ready to run in `dir` beside other Envoys: every listener and the admin
    /// on a free port, abstract socket names made unique with `tag`, the module path
    /// absolute, a warm-up listener, and the front listener or its filter config moved to
    /// discovery files when asked.
    pub(crate) fn isolated(mut self, tag: &str, dir: &Path) -> EnvoyConfig {
        // A Wasm filter's module, made absolute (a test may have put the native filter there).
        let module = traffic_split_filter(self.front_listener())["typed_config"]
            .get("config")
            .and_then(|config| config["vm_config"]["code"]["local"]["filename"].as_str())
            .map(PathBuf::from);
        if module.is_some_and(|module| !module.is_absolute())
            && Module::under_test() == Module::Wasm
        {
            self = self.with_wasm_module(&wasm_module());
        }
        for (name, plugin_name, plugin_config) in std::mem::take(&mut self.more_fronts) {
            let mut listener = self.front_listener().clone();
            listener["name"] = Value::String(name);
            if let Some(plugin_name) = plugin_name {
                wasm_config(&mut listener)["name"] = Value::String(plugin_name);
            }
            set_plugin_config(
                &mut traffic_split_filter(&mut listener)["typed_config"],
                &plugin_config,
            );
            self.listeners().push(listener);
        }
        self.document["admin"]["address"]["socket_address"]["port_value"] = Value::from(0);
        for listener in self.listeners() {
            if let Some(socket) = listener["address"]["socket_address"].as_mapping_mut() {
                socket.insert(Value::from("port_value"), Value::from(0));
            }
        }
        rename_abstract_sockets(&mut self.document, tag);
        self.listeners().push(yaml(WARM_UP_LISTENER));
        if Module::under_test() == Module::Native {
            module::to_native_document(&mut self.document);
        }
        if self.filter_from_ecds {
            let filter = traffic_split_filter(self.front_listener());
            discovery::move_filter_to_ecds(filter, dir);
            self.set_node();
        }
        if self.front_from_lds {
            let front = self.listeners().remove(0);
            self.document["dynamic_resources"] = discovery::move_listener_to_lds(front, dir);
            self.set_node();
        }
        self
    }

    /// Envoy requires a node identity as soon as any resource is dynamic.
    fn set_node(&mut self) {
        self.document["node"] = yaml("{ id: traffic-split-test, cluster: traffic-split-test }");
    }

    /// The clusters by name.
    pub(crate) fn cluster_names(&self) -> Vec<String> {
        self.document["static_resources"]["clusters"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|cluster| cluster["name"].as_str().map(str::to_string))
            .collect()
    }
}

/// A listener without the filter that routes by `x-warm-up-cluster`. The first request
/// over a new upstream connection pays for setting it up inside its deadline, which alone
/// can exceed the demo's 2 ms; [`super::Envoy::start`] sends one request per cluster through
/// this listener so the filter's requests find the connections ready, and counts nothing.
pub(crate) const WARM_UP_LISTENER: &str = r#"
name: warm-up
address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: warm_up
      route_config:
        virtual_hosts:
        - name: warm-up
          domains: ["*"]
          routes:
          - match: { prefix: "/" }
            route: { cluster_header: x-warm-up-cluster }
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#;

/// Abstract Unix socket names (`@name`) are global to the network namespace: prefix every one
/// with a tag of this Envoy's own.
fn rename_abstract_sockets(value: &mut Value, tag: &str) {
    match value {
        Value::Mapping(mapping) => {
            for (key, value) in mapping.iter_mut() {
                let abstract_name = match (key.as_str(), value.as_str()) {
                    (Some("path"), Some(path)) => path.strip_prefix('@').map(str::to_string),
                    _ => None,
                };
                match abstract_name {
                    Some(name) => *value = Value::String(format!("@{tag}-{name}")),
                    None => rename_abstract_sockets(value, tag),
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                rename_abstract_sockets(item, tag);
            }
        }
        _ => {}
    }
}
