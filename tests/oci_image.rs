//! The OCI image round trip: `make push` to Debian's `docker-registry` on 127.0.0.1, pulled
//! back by tag with skopeo, checked against what Istio's image fetcher reads, and loaded from
//! the pulled bytes into a real Envoy.

use traffic_split_e2e as support;

use serde_json::Value;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use support::{exclusive, repo_root, Envoy, EnvoyConfig, Module};

/// Why these tests run only with the Wasm module (`TRAFFIC_SPLIT_MODULE`).
const WASM_ONLY: &str = "the OCI image carries the Wasm module";

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// Runs a tool to completion; a missing tool or a failure fails the test with its output.
fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?} ({error}): run `make apt-tools`"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `sha256:<hex>` of a file, by coreutils' sha256sum: a hasher independent of the packager.
fn sha256_of(path: &Path) -> String {
    let output = run(Command::new("sha256sum").arg(path));
    let text = String::from_utf8_lossy(&output.stdout);
    let hex = text
        .split_whitespace()
        .next()
        .expect("sha256sum prints a hash");
    format!("sha256:{hex}")
}

/// Debian's distribution registry on a free loopback port, storing in a temporary folder;
/// stopped and its storage removed on drop.
struct Registry {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Registry {
    fn start() -> Registry {
        let dir =
            std::env::temp_dir().join(format!("traffic-split-registry-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the registry's folder");
        let config = dir.join("config.yml");
        // Port 0: the registry takes a free port and logs it, so no port is ever raced for.
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log: {{ level: info, formatter: text, accesslog: {{ disabled: true }} }}\n\
                 storage:\n  \
                   filesystem: {{ rootdirectory: {storage} }}\n  \
                   maintenance: {{ uploadpurging: {{ enabled: false }} }}\n\
                 http: {{ addr: \"127.0.0.1:0\", secret: traffic-split-test }}\n",
                storage = dir.join("storage").display()
            ),
        )
        .expect("write the registry config");
        let log_path = dir.join("registry.log");
        let log = fs::File::create(&log_path).expect("create the registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start docker-registry ({error}): run `make apt-tools`")
            });
        let mut registry = Registry {
            child,
            address: String::new(),
            dir,
        };
        registry.address = registry.wait_until_ready(&log_path);
        registry
    }

    /// Polls the log for the port, then `/v2/` until it answers 200.
    fn wait_until_ready(&mut self, log_path: &Path) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            if let Some(status) = self.child.try_wait().expect("poll docker-registry") {
                panic!("docker-registry exited ({status}):\n{log}");
            }
            let address = log
                .lines()
                .find_map(|line| line.split("listening on ").nth(1))
                .and_then(|rest| rest.split(['"', ' ']).next())
                .and_then(|address| address.parse::<std::net::SocketAddr>().ok());
            if let Some(address) = address {
                if support::http::get(address, "/v2/").is_ok_and(|response| response.status == 200)
                {
                    return address.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer /v2/ within 30 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What one round trip leaves: `make push`'s output and the image as skopeo pulled it back.
struct RoundTrip {
    push_output: String,
    /// skopeo's `dir:` copy: `manifest.json` exactly as the registry served it, and each blob
    /// in a file named by its hex digest.
    pulled: PathBuf,
    manifest: Value,
}

impl RoundTrip {
    fn manifest_digest(&self) -> String {
        sha256_of(&self.pulled.join("manifest.json"))
    }

    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.pulled.join(hex)
    }

    fn layers(&self) -> &[Value] {
        self.manifest["layers"]
            .as_array()
            .expect("the manifest lists layers")
    }

    fn wasm_layer(&self) -> &Value {
        let wasm: Vec<&Value> = self
            .layers()
            .iter()
            .filter(|layer| layer["mediaType"] == WASM_LAYER_MEDIA_TYPE)
            .collect();
        assert_eq!(wasm.len(), 1, "one Wasm layer: {:#}", self.manifest);
        wasm[0]
    }

    fn pulled_module(&self) -> PathBuf {
        self.blob(
            self.wasm_layer()["digest"]
                .as_str()
                .expect("a layer digest"),
        )
    }
}

/// Pushes once for all the tests of this file: registry up, `make push`, pull by tag, registry
/// down (the pulled copy stays under cargo's target/tmp).
static ROUND_TRIP: LazyLock<RoundTrip> = LazyLock::new(|| {
    let registry = Registry::start();
    let image = format!(
        "{}/traffic-split:{}",
        registry.address,
        env!("CARGO_PKG_VERSION")
    );
    let push = run(Command::new("make")
        .args(["--no-print-directory", "push"])
        .arg(format!("IMAGE={image}"))
        .current_dir(repo_root()));
    let push_output = String::from_utf8_lossy(&push.stdout).into_owned();

    let pulled = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oci-image-pulled");
    let _ = fs::remove_dir_all(&pulled);
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", pulled.display())));
    drop(registry);

    let manifest = serde_json::from_slice(
        &fs::read(pulled.join("manifest.json")).expect("skopeo wrote manifest.json"),
    )
    .expect("the manifest is JSON");
    RoundTrip {
        push_output,
        pulled,
        manifest,
    }
});

#[test]
fn pulled_manifest_is_the_wasm_oci_variant_istio_reads() {
    if support::skip_without_module() {
        return;
    }
    let round_trip = &*ROUND_TRIP;
    let manifest = &round_trip.manifest;
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
    // Istio's extractOCIArtifactImage wants exactly two layers: the runtime config and the
    // module. A single Wasm layer would be refused ("number of layers must be 2").
    let media_types: Vec<&str> = round_trip
        .layers()
        .iter()
        .map(|layer| layer["mediaType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(media_types, [WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE]);

    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let config: Value = serde_json::from_slice(
        &fs::read(round_trip.blob(config_digest)).expect("the config blob was pulled"),
    )
    .expect("the config is JSON");
    assert_eq!(config["type"], "envoy_proxy");
    assert_eq!(config["abiVersions"][0], "proxy_abi_version_0_2_1");
}

#[test]
fn pulled_wasm_layer_is_the_shipped_module_byte_for_byte() {
    if support::skip_without_module() {
        return;
    }
    let round_trip = &*ROUND_TRIP;
    let shipped = support::wasm_module();
    let layer = round_trip.wasm_layer();
    assert_eq!(layer["digest"].as_str(), Some(sha256_of(&shipped).as_str()));
    assert_eq!(
        layer["size"].as_u64(),
        Some(fs::metadata(&shipped).expect("the shipped module").len())
    );
    // The bytes skopeo fetched hash to the digest the manifest names.
    assert_eq!(sha256_of(&round_trip.pulled_module()), sha256_of(&shipped));
}

#[test]
fn push_prints_the_registry_manifest_digest_for_wasm_plugin_sha256() {
    if support::skip_without_module() {
        return;
    }
    let round_trip = &*ROUND_TRIP;
    let digest = round_trip.manifest_digest();
    let hex = digest.trim_start_matches("sha256:");
    // Istio compares WasmPlugin.spec.sha256 with the manifest digest of an oci:// image.
    assert!(
        round_trip
            .push_output
            .lines()
            .any(|line| line == format!("WasmPlugin.spec.sha256: {hex}")),
        "make push printed:\n{}",
        round_trip.push_output
    );
    // The same digest as the local layout: the pushed manifest is byte for byte the built one.
    let index: Value = serde_json::from_slice(
        &fs::read(repo_root().join("build/oci/traffic-split/index.json")).expect("index.json"),
    )
    .expect("index.json is JSON");
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(digest.as_str())
    );
    // Outside the test harness's capture, so `make test` shows it.
    let _ = writeln!(
        std::io::stderr(),
        "oci_image: WasmPlugin.spec.sha256 for traffic-split:{}: {hex}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn module_pulled_from_the_registry_splits_70_30_in_envoy() {
    if support::skip_without_envoy() {
        return;
    }
    let round_trip = &*ROUND_TRIP;
    if !Module::runs_with(Module::Wasm, WASM_ONLY) {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_wasm_module(&round_trip.pulled_module())
            .with_plugin_config(support::SPLIT_70_30),
    );
    let mut connection = envoy.connect();
    let mut v1 = 0;
    let mut v2 = 0;
    for _ in 0..100 {
        let response = connection.get("/hello").expect("request");
        assert_eq!(response.status, 200, "{}", response.body_text());
        match response.header("x-upstream-saw-version") {
            Some("v1") => v1 += 1,
            Some("v2") => v2 += 1,
            other => panic!("upstream saw version {other:?}"),
        }
    }
    assert_eq!((v1, v2), (70, 30));
    let metrics = envoy.admin.metrics();
    for (version, expected) in [("v1", 70), ("v2", 30)] {
        assert_eq!(
            metrics.count(
                "traffic_split_requests_total",
                &[("route", "hello"), ("version", version)]
            ),
            expected
        );
    }
}
