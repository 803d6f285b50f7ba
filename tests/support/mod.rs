//! Starts and stops a real Envoy loading the release `traffic_split.wasm`, with the shipped
//! `envoy/envoy.yaml` adapted to run beside other Envoys: free ports, private socket names,
//! absolute paths. Used by the end-to-end tests and by the demo (`examples/demo.rs`).
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod http;

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The shipped 70/30 split without deadlines, so every request reaches its version.
pub const SPLIT_70_30: &str = r#"{
  "routes": [{
    "name": "hello",
    "match": { "prefix": "/hello", "methods": ["GET"] },
    "destinations": [
      { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
      { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 }
    ]
  }]
}"#;

/// The Istio experiment's 2 ms route timeout, which cuts every v2 request (v2 answers in
/// 5 ms); v1 carries its own generous deadline so that a scheduling hiccup on a busy 2-core
/// machine cannot turn a fast v1 answer into a timeout. Every count is known: of 1,000
/// requests, 700 to v1, all 2xx; 300 to v2, all 5xx and timeouts.
pub const ROUTE_2MS_V1_10S: &str = r#"{
  "routes": [{
    "name": "hello",
    "match": { "prefix": "/hello" },
    "timeout": "0.002s",
    "destinations": [
      { "version": "v1", "cluster": "springbootapp-v1", "weight": 70, "timeout": "10s" },
      { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 }
    ]
  }]
}"#;

/// The repository: the root package's folder, also when a workspace member's tests (the
/// checker's, one level down) use this harness.
/// Of the shipped config's 700 v1 requests, how many at least answer within its 2 ms deadline.
/// v1 answers in a fraction of a millisecond, but a 2-core machine that stalls Envoy for 2 ms
/// cuts a few (every cut is still checked to be counted as a v1 timeout): 95%.
pub const V1_WITHIN_2MS_AT_LEAST: u64 = 665;

pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("envoy/envoy.yaml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// A file a test needs: `$variable` if set, else `default` under the repository. A missing
/// file fails the test with the command that makes it; it never skips the test.
fn required_file(variable: &str, default: &str, what: &str, make_it: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default));
    assert!(
        path.is_file(),
        "no {what} at {}: run `{make_it}` (or set {variable})",
        path.display()
    );
    path
}

/// The Envoy binary: `$ENVOY_BIN`, else the one `make envoy` installs.
pub fn envoy_binary() -> PathBuf {
    required_file("ENVOY_BIN", ".venv/bin/envoy", "Envoy", "make envoy")
}

/// The shipped module: `$TRAFFIC_SPLIT_WASM`, else what `make build` writes.
pub fn wasm_module() -> PathBuf {
    required_file(
        "TRAFFIC_SPLIT_WASM",
        "build/traffic_split.wasm",
        "Wasm module",
        "make build",
    )
}

/// The test-only module that traps on a request carrying [`TRAP_HEADER`]:
/// `$TRAFFIC_SPLIT_TRAP_WASM`, else what `make build-trap` writes.
pub fn trap_module() -> PathBuf {
    required_file(
        "TRAFFIC_SPLIT_TRAP_WASM",
        "build/traffic_split_trap.wasm",
        "trap module",
        "make build-trap",
    )
}

/// The header that makes [`trap_module`] trap.
pub const TRAP_HEADER: &str = "x-traffic-split-test-trap";

/// Envoy-based tests take the whole machine (2 cores) and 2 ms deadlines: one at a time.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A private folder for one Envoy: its config, log and admin address.
fn private_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "traffic-split-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a temporary folder");
    dir
}

/// The `config` of a listener's traffic-split filter.
fn traffic_split_filter(listener: &mut Value) -> &mut Value {
    let filters = &mut listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    let filter = filters
        .as_sequence_mut()
        .and_then(|filters| {
            filters
                .iter_mut()
                .find(|filter| filter["name"].as_str() == Some("traffic-split"))
        })
        .expect("the listener has the traffic-split filter");
    &mut filter["typed_config"]["config"]
}

/// The runtime key of v2's abort percentage (see [`EnvoyConfig::with_v2_failure_switch`]).
const V2_ABORT_PERCENT_KEY: &str = "test.v2.abort_percent";

/// The shipped `envoy/envoy.yaml`, as a YAML document to adapt.
pub struct EnvoyConfig {
    pub document: Value,
    /// Serve the front listener through file-based LDS, so a test can reconfigure it live.
    front_from_lds: bool,
    /// Serve the front listener's traffic-split filter config through file-based ECDS.
    filter_from_ecds: bool,
    /// More listeners like the front one, each with its own plugin configuration: (name, JSON).
    more_fronts: Vec<(String, String)>,
    /// Envoy's worker threads (`--concurrency`), each with its own Wasm VM.
    concurrency: u32,
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

    /// Runs Envoy with `workers` worker threads, so that a test sees several VMs agree.
    pub fn with_concurrency(mut self, workers: u32) -> EnvoyConfig {
        self.concurrency = workers;
        self
    }

    /// Lets a test make v2 fail: its upstream's fault filter gets an abort with status 503 at
    /// 0%, which [`Envoy::set_v2_failing`] raises through Envoy's runtime.
    pub fn with_v2_failure_switch(mut self) -> EnvoyConfig {
        let listeners = self.document["static_resources"]["listeners"]
            .as_sequence_mut()
            .expect("static listeners");
        let v2 = listeners
            .iter_mut()
            .find(|listener| listener["name"].as_str() == Some("springbootapp-v2"))
            .expect("the v2 upstream listener");
        let fault = &mut v2["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
            ["typed_config"];
        fault["abort"] = serde_yaml::from_str(
            "{ http_status: 503, percentage: { numerator: 0, denominator: HUNDRED } }",
        )
        .expect("valid YAML");
        fault["abort_percent_runtime"] = Value::from(V2_ABORT_PERCENT_KEY);
        self.document["layered_runtime"] =
            serde_yaml::from_str("layers: [ { name: admin, admin_layer: {} } ]")
                .expect("valid YAML");
        self
    }

    fn wasm_filter_config(&mut self) -> &mut Value {
        traffic_split_filter(&mut self.document["static_resources"]["listeners"][0])
    }

    /// Replaces the filter's plugin configuration (the JSON Envoy hands to `on_configure`).
    pub fn with_plugin_config(mut self, json: &str) -> EnvoyConfig {
        self.wasm_filter_config()["configuration"]["value"] = Value::String(json.to_string());
        self
    }

    /// Makes the front Envoy trust its clients' `x-envoy-*` headers, as an Istio sidecar trusts
    /// its own application: Envoy then honours a client's `x-envoy-upstream-rq-timeout-ms`, which
    /// is exactly when a spoofed deadline would matter.
    pub fn trusting_client_headers(mut self) -> EnvoyConfig {
        let manager = &mut self.document["static_resources"]["listeners"][0]["filter_chains"][0]
            ["filters"][0]["typed_config"];
        manager["use_remote_address"] = Value::Bool(true);
        manager["internal_address_config"] = serde_yaml::from_str(
            "cidr_ranges: [ { address_prefix: 0.0.0.0, prefix_len: 0 }, { address_prefix: '::', prefix_len: 0 } ]",
        )
        .expect("valid YAML");
        self
    }

    /// Serves the front listener from a watched LDS file instead of the static config, so that
    /// [`Envoy::reconfigure`] can hand the running filter a new plugin configuration.
    pub fn front_listener_from_lds(mut self) -> EnvoyConfig {
        self.front_from_lds = true;
        self
    }

    /// Serves the front listener's traffic-split filter config from a watched ECDS file
    /// (extension config discovery), as Istio delivers a WasmPlugin: the listener names the
    /// filter and Envoy fetches its config, which [`Envoy::reconfigure_filter`] replaces. As
    /// Istio does, the listener waits for that config with no timeout
    /// (`initial_fetch_timeout: 0s`) and has no default.
    pub fn front_filter_from_ecds(mut self) -> EnvoyConfig {
        self.filter_from_ecds = true;
        self
    }

    /// Runs `workers` worker threads, each with its own Wasm VM and round robin, and spreads the
    /// front listener's connections over them evenly (Envoy's exact balance): connections open
    /// at the same time are on different workers. [`Envoy::connections_per_worker`] tells.
    pub fn with_balanced_workers(mut self, workers: u32) -> EnvoyConfig {
        self = self.with_concurrency(workers);
        let front = &mut self.document["static_resources"]["listeners"][0];
        front["connection_balance_config"] =
            serde_yaml::from_str("{ exact_balance: {} }").expect("valid YAML");
        // Its stats under its own name, not under its address (port 0, like others').
        front["stat_prefix"] = Value::from("front");
        self
    }

    /// Takes the 5 ms delay off v2, for tests that send thousands of requests to it.
    pub fn without_v2_delay(mut self) -> EnvoyConfig {
        if let Some(listeners) = self.document["static_resources"]["listeners"].as_sequence_mut() {
            for listener in listeners {
                if listener["name"].as_str() != Some("springbootapp-v2") {
                    continue;
                }
                let filters =
                    &mut listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
                if let Some(filters) = filters.as_sequence_mut() {
                    filters.retain(|filter| filter["name"] != "envoy.filters.http.fault");
                }
            }
        }
        self
    }

    /// Makes both demo upstreams echo a request header they received, as
    /// `x-upstream-saw-<header>`, so a test can see what reached them.
    pub fn upstreams_echo(mut self, header: &str) -> EnvoyConfig {
        if let Some(listeners) = self.document["static_resources"]["listeners"].as_sequence_mut() {
            for listener in listeners {
                let Some(name) = listener["name"].as_str() else {
                    continue;
                };
                if !name.starts_with("springbootapp-") {
                    continue;
                }
                let virtual_host = &mut listener["filter_chains"][0]["filters"][0]["typed_config"]
                    ["route_config"]["virtual_hosts"][0];
                let echo: Value = serde_yaml::from_str(&format!(
                    "header: {{ key: x-upstream-saw-{header}, value: \"%REQ({header})%\" }}"
                ))
                .expect("valid YAML");
                if let Some(added) = virtual_host["response_headers_to_add"].as_sequence_mut() {
                    added.push(echo);
                }
            }
        }
        self
    }

    /// The plugin configuration currently in the document.
    pub fn plugin_config(&mut self) -> String {
        self.wasm_filter_config()["configuration"]["value"]
            .as_str()
            .expect("a StringValue configuration")
            .to_string()
    }

    /// Adds a listener `name` like the front one, whose filter has its own plugin
    /// configuration but the same `vm_id` and module: Envoy then runs both plugins in one VM,
    /// each with a root context of its own. Reach it with [`Envoy::listener`].
    pub fn with_another_front(mut self, name: &str, plugin_config: &str) -> EnvoyConfig {
        self.more_fronts
            .push((name.to_string(), plugin_config.to_string()));
        self
    }

    /// What Envoy does when the filter's VM fails: `FAIL_CLOSED`, `FAIL_OPEN` or `FAIL_RELOAD`
    /// (the Wasm filter's `failure_policy`, which replaced `fail_open`).
    pub fn with_failure_policy(mut self, policy: &str) -> EnvoyConfig {
        let filter = self.wasm_filter_config();
        if let Some(filter) = filter.as_mapping_mut() {
            filter.remove("fail_open");
        }
        filter["failure_policy"] = Value::from(policy);
        self
    }

    /// The Wasm filter's older `fail_open` flag instead of its `failure_policy` (what Istio
    /// releases before `failure_policy` set for `failStrategy`).
    pub fn with_fail_open(mut self, fail_open: bool) -> EnvoyConfig {
        let filter = self.wasm_filter_config();
        if let Some(filter) = filter.as_mapping_mut() {
            filter.remove("failure_policy");
        }
        filter["fail_open"] = Value::Bool(fail_open);
        self
    }

    /// Removes a listener by name, for example an upstream that has gone away: its cluster
    /// stays, and connections to it fail.
    pub fn without_listener(mut self, name: &str) -> EnvoyConfig {
        if let Some(listeners) = self.document["static_resources"]["listeners"].as_sequence_mut() {
            listeners.retain(|listener| listener["name"].as_str() != Some(name));
        }
        self
    }

    /// Adds a cluster the routes do not list, whose endpoint does not answer: a request that
    /// reaches it gets a 503, so a test sees at once whether a client could pick it.
    pub fn with_unlisted_cluster(mut self, name: &str) -> EnvoyConfig {
        let cluster: Value = serde_yaml::from_str(&format!(
            "{{ name: {name}, connect_timeout: 1s, load_assignment: {{ cluster_name: {name}, \
             endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ pipe: {{ path: '@{name}-nobody' }} }} }} }} ] }} ] }} }}"
        ))
        .expect("valid YAML");
        if let Some(clusters) = self.document["static_resources"]["clusters"].as_sequence_mut() {
            clusters.push(cluster);
        }
        self
    }

    /// Loads a different module file (for example one pulled back from a registry).
    pub fn with_wasm_module(mut self, path: &Path) -> EnvoyConfig {
        self.wasm_filter_config()["vm_config"]["code"]["local"]["filename"] =
            Value::String(path.display().to_string());
        self
    }

    /// Makes the document runnable beside other Envoys: every listener and the admin on a
    /// free port, abstract socket names made unique, the module path absolute.
    fn isolated(mut self, tag: &str) -> EnvoyConfig {
        let module = self.wasm_filter_config()["vm_config"]["code"]["local"]["filename"]
            .as_str()
            .map(PathBuf::from)
            .expect("the module is a local file");
        if !module.is_absolute() {
            self = self.with_wasm_module(&wasm_module());
        }
        for (name, plugin_config) in std::mem::take(&mut self.more_fronts) {
            let mut listener = self.document["static_resources"]["listeners"][0].clone();
            listener["name"] = Value::String(name);
            traffic_split_filter(&mut listener)["configuration"]["value"] =
                Value::String(plugin_config);
            if let Some(listeners) =
                self.document["static_resources"]["listeners"].as_sequence_mut()
            {
                listeners.push(listener);
            }
        }
        self.document["admin"]["address"]["socket_address"]["port_value"] = Value::from(0);
        if let Some(listeners) = self.document["static_resources"]["listeners"].as_sequence_mut() {
            for listener in listeners {
                if let Some(socket) = listener["address"]["socket_address"].as_mapping_mut() {
                    socket.insert(Value::from("port_value"), Value::from(0));
                }
            }
        }
        rename_abstract_sockets(&mut self.document, tag);
        self.add_warm_up_listener();
        self
    }

    /// A listener without the filter that routes by `x-warm-up-cluster`. The first request
    /// over a new upstream connection pays for setting it up inside its deadline, which alone
    /// can exceed the demo's 2 ms; [`Envoy::start`] sends one request per cluster through this
    /// listener so the filter's requests find the connections ready, and counts nothing.
    fn add_warm_up_listener(&mut self) {
        let listener: Value = serde_yaml::from_str(WARM_UP_LISTENER).expect("valid YAML");
        if let Some(listeners) = self.document["static_resources"]["listeners"].as_sequence_mut() {
            listeners.push(listener);
        }
    }

    fn cluster_names(&self) -> Vec<String> {
        self.document["static_resources"]["clusters"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|cluster| cluster["name"].as_str().map(str::to_string))
            .collect()
    }
}

const WARM_UP_LISTENER: &str = r#"
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

impl EnvoyConfig {
    fn move_front_listener_to_lds(&mut self, dir: &Path) {
        let listeners = self.document["static_resources"]["listeners"]
            .as_sequence_mut()
            .expect("static listeners");
        let mut front = listeners.remove(0);
        // A listener updated through LDS keeps its address: give it a fixed free port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        front["address"]["socket_address"]["port_value"] = Value::from(port);
        front["@type"] = Value::from("type.googleapis.com/envoy.config.listener.v3.Listener");
        write_lds(dir, &front);
        self.document["dynamic_resources"] = serde_yaml::from_str(&format!(
            "lds_config:\n  resource_api_version: V3\n  path_config_source:\n    path: {lds}\n    watched_directory: {{ path: {dir} }}\n",
            lds = dir.join("lds.yaml").display(),
            dir = dir.display()
        ))
        .expect("valid YAML");
        // Envoy requires a node identity as soon as any resource is dynamic.
        self.document["node"] =
            serde_yaml::from_str("{ id: traffic-split-test, cluster: traffic-split-test }")
                .expect("valid YAML");
    }
}

/// The typed config of the front listener's traffic-split filter in an ECDS file.
const ECDS_FILE: &str = "ecds/ecds.yaml";
/// Envoy's counters of the filter's ECDS updates, applied and rejected.
pub const ECDS_APPLIED: &str = "extension_config_discovery.http_filter.traffic-split.config_reload";
pub const ECDS_REJECTED: &str = "extension_config_discovery.http_filter.traffic-split.config_fail";

impl EnvoyConfig {
    fn move_front_filter_to_ecds(&mut self, dir: &Path) {
        let filter_config = {
            let listener = &mut self.document["static_resources"]["listeners"][0];
            let filters = listener["filter_chains"][0]["filters"][0]["typed_config"]
                ["http_filters"]
                .as_sequence_mut()
                .expect("http filters");
            let filter = filters
                .iter_mut()
                .find(|filter| filter["name"].as_str() == Some("traffic-split"))
                .expect("the listener has the traffic-split filter");
            let typed_config = filter["typed_config"].clone();
            *filter = serde_yaml::from_str(&format!(
                "name: traffic-split\n\
                 config_discovery:\n  \
                   config_source:\n    \
                     resource_api_version: V3\n    \
                     initial_fetch_timeout: 0s\n    \
                     path_config_source:\n      \
                       path: {file}\n      \
                       watched_directory: {{ path: {dir} }}\n  \
                   type_urls: [type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm]\n",
                file = dir.join(ECDS_FILE).display(),
                dir = dir.join("ecds").display(),
            ))
            .expect("valid YAML");
            typed_config
        };
        fs::create_dir_all(dir.join("ecds")).expect("create the ECDS folder");
        write_ecds(dir, &filter_config);
        self.document["node"] =
            serde_yaml::from_str("{ id: traffic-split-test, cluster: traffic-split-test }")
                .expect("valid YAML");
    }
}

/// Writes a discovery response file atomically (a rename), as Envoy's watched-directory
/// source expects.
fn write_resources(path: &Path, resources: Vec<Value>) {
    let mut response = serde_yaml::Mapping::new();
    response.insert(Value::from("resources"), Value::Sequence(resources));
    let staging = path.with_extension("new");
    fs::write(
        &staging,
        serde_yaml::to_string(&response).expect("write YAML"),
    )
    .expect("write a discovery file");
    fs::rename(&staging, path).expect("move the discovery file into place");
}

fn write_lds(dir: &Path, front: &Value) {
    write_resources(&dir.join("lds.yaml"), vec![front.clone()]);
}

/// The Wasm filter's typed config as an ECDS resource named like the filter.
fn write_ecds(dir: &Path, filter_typed_config: &Value) {
    let resource: Value = serde_yaml::from_str(
        "{ '@type': type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig, name: traffic-split }",
    )
    .expect("valid YAML");
    let mut resource = resource;
    resource["typed_config"] = filter_typed_config.clone();
    write_resources(&dir.join(ECDS_FILE), vec![resource]);
}

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

/// A running Envoy; stopped (and its folder removed) on drop.
pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    /// The front listener, where the filter runs.
    pub front: SocketAddr,
    dir: PathBuf,
}

/// Envoy exited before it was ready; `log` holds what it printed.
#[derive(Debug)]
pub struct StartFailure {
    pub exit_code: Option<i32>,
    pub log: String,
}

impl Envoy {
    pub fn start(config: EnvoyConfig) -> Envoy {
        match Envoy::try_start(config) {
            Ok(envoy) => envoy,
            Err(failure) => panic!("Envoy did not start:\n{}", failure.log),
        }
    }

    /// Starts Envoy and waits until its admin says it is ready, or until it exits.
    pub fn try_start(config: EnvoyConfig) -> Result<Envoy, StartFailure> {
        let dir = private_dir();
        let tag = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("ts")
            .to_string();
        let mut config = config.isolated(&tag);
        let clusters = config.cluster_names();
        if config.filter_from_ecds {
            config.move_front_filter_to_ecds(&dir);
        }
        if config.front_from_lds {
            config.move_front_listener_to_lds(&dir);
        }
        let config_path = dir.join("envoy.yaml");
        fs::write(
            &config_path,
            serde_yaml::to_string(&config.document).expect("write YAML"),
        )
        .expect("write the Envoy config");
        let admin_path = dir.join("admin-address");
        let log_path = dir.join("envoy.log");
        let child = Command::new(envoy_binary())
            .arg("--config-path")
            .arg(&config_path)
            .args(["--concurrency", &config.concurrency.to_string()])
            .args(["--disable-hot-restart", "--log-level", "info"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log_path)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("stderr.log")).expect("create stderr log"))
            .spawn()
            .expect("start Envoy");
        let mut starting = Starting {
            child: Some(child),
            dir: dir.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = starting.child_mut().try_wait().expect("poll Envoy") {
                starting.child = None;
                return Err(StartFailure {
                    exit_code: status.code(),
                    log: read_logs(&dir),
                });
            }
            if let Some(admin) = read_admin_address(&admin_path) {
                if http::get(admin, "/ready").is_ok_and(|response| response.status == 200) {
                    let front = listener_address(admin, "front");
                    let warm_up = listener_address(admin, "warm-up");
                    for cluster in &clusters {
                        let _ = http::Connection::open(warm_up).and_then(|mut connection| {
                            connection.request("GET", "/", &[("x-warm-up-cluster", cluster)])
                        });
                    }
                    let child = starting.child.take().expect("child is running");
                    return Ok(Envoy {
                        child,
                        admin,
                        front,
                        dir,
                    });
                }
            }
            assert!(
                Instant::now() < deadline,
                "Envoy was not ready within 60 s:\n{}",
                read_logs(&dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Hands the running filter a new plugin configuration through LDS (the Envoy must have
    /// been started with [`EnvoyConfig::front_listener_from_lds`]) and waits until Envoy has
    /// accepted or rejected it. Returns whether Envoy accepted it.
    pub fn reconfigure(&self, plugin_config: &str) -> bool {
        let lds = fs::read_to_string(self.dir.join("lds.yaml")).expect("read LDS");
        let lds: Value = serde_yaml::from_str(&lds).expect("parse LDS");
        let mut front = lds["resources"][0].clone();
        let filters = front["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_sequence_mut()
            .expect("http filters");
        for filter in filters {
            if filter["name"].as_str() == Some("traffic-split") {
                filter["typed_config"]["config"]["configuration"]["value"] =
                    Value::from(plugin_config);
            }
        }
        let counter = |name: &str| self.metrics().count(name, &[]);
        let accepted = counter("envoy_listener_manager_lds_update_success");
        let rejected = counter("envoy_listener_manager_lds_update_rejected");
        write_lds(&self.dir, &front);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if counter("envoy_listener_manager_lds_update_rejected") > rejected {
                return false;
            }
            if counter("envoy_listener_manager_lds_update_success") > accepted {
                self.wait_until_no_listener_is_warming();
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy did not pick up the LDS update"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Hands the running filter a new plugin configuration through ECDS (the Envoy must have
    /// been started with [`EnvoyConfig::front_filter_from_ecds`]) and waits until Envoy has
    /// applied or rejected it. Returns whether Envoy applied it.
    pub fn reconfigure_filter(&self, plugin_config: &str) -> bool {
        let path = self.dir.join(ECDS_FILE);
        let ecds: Value =
            serde_yaml::from_str(&fs::read_to_string(&path).expect("read ECDS")).expect("parse");
        let mut typed_config = ecds["resources"][0]["typed_config"].clone();
        typed_config["config"]["configuration"]["value"] = Value::from(plugin_config);
        let applied = self.stat(ECDS_APPLIED).unwrap_or(0);
        let rejected = self.stat(ECDS_REJECTED).unwrap_or(0);
        write_ecds(&self.dir, &typed_config);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.stat(ECDS_REJECTED).unwrap_or(0) > rejected {
                return false;
            }
            if self.stat(ECDS_APPLIED).unwrap_or(0) > applied {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy did not pick up the ECDS update"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An accepted listener serves once it has finished warming.
    fn wait_until_no_listener_is_warming(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .metrics()
            .count("envoy_listener_manager_total_listeners_warming", &[])
            > 0
        {
            assert!(
                Instant::now() < deadline,
                "the new listener did not finish warming"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes v2's upstream answer every request with 503 (`true`), or serve again (`false`);
    /// needs [`EnvoyConfig::with_v2_failure_switch`].
    pub fn set_v2_failing(&self, failing: bool) {
        let percent = if failing { 100 } else { 0 };
        let path = format!("/runtime_modify?{V2_ABORT_PERCENT_KEY}={percent}");
        let response = http::Connection::open(self.admin)
            .and_then(|mut admin| admin.request("POST", &path, &[]))
            .expect("POST /runtime_modify");
        assert_eq!(response.status, 200, "{}", response.body_text());
    }

    /// Everything Envoy logged so far (Envoy writes its log file in batches: see
    /// [`Envoy::stop`] for all of it).
    pub fn log(&self) -> String {
        read_logs(&self.dir)
    }

    /// Stops Envoy as an operator would (SIGTERM), so that it flushes its log, and returns
    /// everything it logged.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        read_logs(&self.dir)
    }

    /// One of Envoy's own stats by its full name (`wasm.traffic-split.vm_reload_success`), as
    /// `/stats` spells it; `None` when Envoy has no such stat.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let response = http::get(self.admin, "/stats").expect("read /stats");
        response.body_text().lines().find_map(|line| {
            let (stat, value) = line.split_once(": ")?;
            (stat == name).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Asserts that the filter's VM never failed: Envoy's Wasm failure counters are 0 and its
    /// log holds no failed call into the module. The counters move only under
    /// `failure_policy: FAIL_RELOAD` (a failed VM is reloaded and counted; under the other
    /// policies Envoy counts nothing), so tests that need this run with it.
    pub fn assert_vm_never_failed(&self) {
        for counter in [
            "vm_reload_backoff",
            "vm_reload_success",
            "vm_reload_failure",
        ] {
            let name = format!("wasm.traffic-split.{counter}");
            assert_eq!(self.stat(&name), Some(0), "{name}");
        }
        let log = self.log();
        assert!(
            !log.contains("failed: Uncaught"),
            "a call into the VM failed:\n{log}"
        );
    }

    /// Envoy's admin `/stats/prometheus`, parsed.
    pub fn metrics(&self) -> Metrics {
        let response = http::get(self.admin, "/stats/prometheus").expect("read /stats/prometheus");
        assert_eq!(response.status, 200);
        Metrics::parse(&response.body_text())
    }

    /// Polls `/stats/prometheus` until `ready` holds (at most 10 s), and returns that reading.
    /// Histograms are merged from the workers asynchronously after each admin read, so they
    /// can trail the counters by a read or two.
    pub fn metrics_when(&self, ready: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = self.metrics();
            if ready(&metrics) || Instant::now() > deadline {
                return metrics;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Envoy's admin `/stats/prometheus` lines about traffic-split, as text.
    pub fn prometheus_lines(&self) -> Vec<String> {
        let response = http::get(self.admin, "/stats/prometheus").expect("read /stats/prometheus");
        response
            .body_text()
            .lines()
            .filter(|line| {
                line.starts_with("traffic_split_") || line.starts_with("# TYPE traffic_split_")
            })
            .map(str::to_string)
            .collect()
    }

    /// How many connections each worker thread has accepted on the front listener, by worker
    /// (Envoy's `listener.front.worker_<n>.downstream_cx_total`), with
    /// [`EnvoyConfig::with_balanced_workers`].
    pub fn connections_per_worker(&self) -> BTreeMap<String, u64> {
        let response = http::get(self.admin, "/stats").expect("read /stats");
        let prefix = "listener.front.";
        response
            .body_text()
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                let worker = name
                    .strip_prefix(prefix)?
                    .strip_suffix(".downstream_cx_total")?;
                worker
                    .starts_with("worker_")
                    .then(|| (worker.to_string(), value.trim().parse().unwrap_or(0)))
            })
            .collect()
    }

    /// The address of a listener by name (see [`EnvoyConfig::with_another_front`]).
    pub fn listener(&self, name: &str) -> SocketAddr {
        listener_address(self.admin, name)
    }

    pub fn connect(&self) -> http::Connection {
        http::Connection::open(self.front).expect("connect to Envoy's front listener")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An Envoy that has not yet become ready: killed if the harness gives up on it.
struct Starting {
    child: Option<Child>,
    dir: PathBuf,
}

impl Starting {
    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child is running")
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn read_logs(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
    let stderr = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    format!("{log}{stderr}")
}

fn read_admin_address(path: &Path) -> Option<SocketAddr> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The address Envoy bound for a listener configured with port 0.
fn listener_address(admin: SocketAddr, name: &str) -> SocketAddr {
    let response = http::get(admin, "/listeners?format=json").expect("read /listeners");
    let listeners: serde_json::Value =
        serde_json::from_slice(&response.body).expect("/listeners is JSON");
    listeners["listener_statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|listener| listener["name"] == name)
        .and_then(|listener| {
            let socket = &listener["local_address"]["socket_address"];
            format!(
                "{}:{}",
                socket["address"].as_str()?,
                socket["port_value"].as_u64()?
            )
            .parse()
            .ok()
        })
        .unwrap_or_else(|| panic!("Envoy reports no address for listener {name}"))
}

/// Prometheus samples: metric name and labels to value.
#[derive(Debug, Default)]
pub struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.to_string(), value.trim_matches('"').to_string()))
                .collect();
            samples.push((name.to_string(), labels, value));
        }
        Metrics { samples }
    }

    /// The value of the series with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(sample_name, sample_labels, _)| sample_name == name && *sample_labels == wanted)
            .map(|(_, _, value)| *value)
    }

    /// One version's counters: (requests, 2xx responses, 5xx responses, timeouts).
    pub fn outcome(&self, route: &str, version: &str) -> (u64, u64, u64, u64) {
        let labels = [("route", route), ("version", version)];
        let class = |class| {
            let labels = [
                ("route", route),
                ("version", version),
                ("code_class", class),
            ];
            self.count("traffic_split_responses_total", &labels)
        };
        (
            self.count("traffic_split_requests_total", &labels),
            class("2xx"),
            class("5xx"),
            self.count("traffic_split_timeouts_total", &labels),
        )
    }

    /// Like [`Metrics::get`], with an absent series read as 0.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.get(name, labels).unwrap_or(0.0) as u64
    }
}
