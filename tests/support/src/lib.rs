//! The end-to-end harness (crate `traffic-split-e2e`, dev-only): a real Envoy loading the
//! release `traffic_split.wasm`, with the shipped `envoy/envoy.yaml` adapted to run beside
//! other Envoys. Used by the end-to-end tests (`tests/*.rs`, as `support`), the checker's tests
//! and the demo (`examples/demo.rs`).
//!
//! - [`envoy`]: the Envoy process (free ports, wait on admin `/ready`, stop on drop);
//! - [`config`]: the typed builder of its config;
//! - [`discovery`]: the front listener or filter config served from LDS or ECDS files;
//! - [`admin`]: the admin client: stats, Prometheus metrics, listeners, runtime;
//! - [`http`]: a minimal HTTP/1.1 client;
//! - [`module`]: the build under test, Wasm or native (`TRAFFIC_SPLIT_MODULE`);
//! - [`files`], [`plugin_configs`], [`wait`]: paths, shared plugin configs, polling.

pub mod admin;
pub mod config;
pub mod discovery;
pub mod envoy;
pub mod files;
pub mod http;
pub mod module;
pub mod plugin_configs;
pub mod wait;

pub use admin::{Admin, Metrics, SHIPPED_PLUGIN};
pub use config::EnvoyConfig;
pub use discovery::{ECDS_APPLIED, ECDS_REJECTED};
pub use envoy::{exclusive, Envoy, StartFailure};
pub use files::{
    envoy_binary, repo_root, requests_module, skip_without_envoy, skip_without_module,
    skip_without_trap_module, trap_module, wasm_module, TRAP_HEADER,
};
pub use module::Module;
pub use plugin_configs::{ROUTE_2MS_V1_10S, SPLIT_70_30, V1_WITHIN_2MS_AT_LEAST};
