//! File-based discovery: the front listener served through LDS, or its traffic-split filter's
//! config through ECDS, from watched files in the Envoy's private folder, and the rewrites of
//! those files that reconfigure a running Envoy.

use super::config::{set_plugin_config, traffic_split_filter};
use serde_yaml::Value;
use std::fs;
use std::path::Path;

/// The front listener in an LDS file.
const LDS_FILE: &str = "lds.yaml";
/// The typed config of the front listener's traffic-split filter in an ECDS file.
const ECDS_FILE: &str = "ecds/ecds.yaml";
/// Envoy's counters of the filter's ECDS updates, applied and rejected.
pub const ECDS_APPLIED: &str = "extension_config_discovery.http_filter.traffic-split.config_reload";
pub const ECDS_REJECTED: &str = "extension_config_discovery.http_filter.traffic-split.config_fail";

/// Writes `front` to an LDS file in `dir` and returns the `dynamic_resources` that read it.
pub(crate) fn move_listener_to_lds(mut front: Value, dir: &Path) -> Value {
    // A listener updated through LDS keeps its address: give it a fixed free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port();
    front["address"]["socket_address"]["port_value"] = Value::from(port);
    front["@type"] = Value::from("type.googleapis.com/envoy.config.listener.v3.Listener");
    write_lds(dir, &front);
    serde_yaml::from_str(&format!(
        "lds_config:\n  resource_api_version: V3\n  path_config_source:\n    path: {lds}\n    watched_directory: {{ path: {dir} }}\n",
        lds = dir.join(LDS_FILE).display(),
        dir = dir.display()
    ))
    .expect("valid YAML")
}

/// Writes the traffic-split `filter`'s typed config to an ECDS file in `dir` and replaces
/// the filter with one that discovers its config from that file.
pub(crate) fn move_filter_to_ecds(filter: &mut Value, dir: &Path) {
    let typed_config = filter["typed_config"].clone();
    let type_url = typed_config["@type"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    *filter = serde_yaml::from_str(&format!(
        "name: traffic-split\n\
         config_discovery:\n  \
           config_source:\n    \
             resource_api_version: V3\n    \
             initial_fetch_timeout: 0s\n    \
             path_config_source:\n      \
               path: {file}\n      \
               watched_directory: {{ path: {dir} }}\n  \
           type_urls: [{type_url}]\n",
        file = dir.join(ECDS_FILE).display(),
        dir = dir.join("ecds").display(),
    ))
    .expect("valid YAML");
    fs::create_dir_all(dir.join("ecds")).expect("create the ECDS folder");
    write_ecds(dir, &typed_config);
}

/// Rewrites the LDS file in `dir` with the front listener's filter given `plugin_config`.
pub(crate) fn update_lds(dir: &Path, plugin_config: &str) {
    let lds: Value =
        serde_yaml::from_str(&fs::read_to_string(dir.join(LDS_FILE)).expect("read LDS"))
            .expect("parse LDS");
    let mut front = lds["resources"][0].clone();
    set_plugin_config(
        &mut traffic_split_filter(&mut front)["typed_config"],
        plugin_config,
    );
    write_lds(dir, &front);
}

/// Rewrites the ECDS file in `dir` with the filter given `plugin_config`.
pub(crate) fn update_ecds(dir: &Path, plugin_config: &str) {
    let ecds: Value =
        serde_yaml::from_str(&fs::read_to_string(dir.join(ECDS_FILE)).expect("read ECDS"))
            .expect("parse ECDS");
    let mut typed_config = ecds["resources"][0]["typed_config"].clone();
    set_plugin_config(&mut typed_config, plugin_config);
    write_ecds(dir, &typed_config);
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
    write_resources(&dir.join(LDS_FILE), vec![front.clone()]);
}

/// The Wasm filter's typed config as an ECDS resource named like the filter.
fn write_ecds(dir: &Path, filter_typed_config: &Value) {
    let mut resource: Value = serde_yaml::from_str(
        "{ '@type': type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig, name: traffic-split }",
    )
    .expect("valid YAML");
    resource["typed_config"] = filter_typed_config.clone();
    write_resources(&dir.join(ECDS_FILE), vec![resource]);
}
