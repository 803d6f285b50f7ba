//! The checker reads the newer ways into an Envoy the way Istio and Envoy Gateway read them: a
//! TrafficExtension or WasmPlugin with `targetRefs` runs in a waypoint (or a Gateway) and meets
//! the HTTPRoutes of what it targets; an EnvoyExtensionPolicy runs on its HTTPRoute's routes.
//! A version no rule of those routes is refused, naming the version and the manifest; two
//! plugins on one Envoy with a route of the same name are refused, naming both.

use std::fs;
use std::path::PathBuf;
use traffic_split_check::plugins::filter_json;
use traffic_split_check::{Report, Verdict};

fn examples(folder: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(folder)
}

/// A folder of the test's own holding `files` (name, text).
fn folder(name: &str, files: &[(&str, String)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ts-gwapi-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a folder");
    for (file, text) in files {
        fs::write(dir.join(file), text).expect("write");
    }
    dir
}

fn example(path: &str) -> String {
    fs::read_to_string(examples("").join(path)).expect("read the example")
}

fn errors_of(report: &Report, origin: &str) -> Vec<String> {
    let entry = report
        .entries
        .iter()
        .find(|entry| entry.origin.ends_with(origin))
        .unwrap_or_else(|| panic!("no {origin}:\n{report}"));
    match &entry.verdict {
        Verdict::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

fn notes_of(report: &Report, origin: &str) -> Vec<String> {
    report
        .entries
        .iter()
        .find(|entry| entry.origin.ends_with(origin))
        .map(|entry| entry.notes.clone())
        .unwrap_or_default()
}

const AMBIENT_PLUGIN: &str = "TrafficExtension springistiodemo/traffic-split";
const GATEWAY_POLICY: &str =
    "EnvoyExtensionPolicy springistiodemo/traffic-split wasm traffic-split";

#[test]
fn the_ambient_example_splits_in_the_waypoint_through_its_httproute() {
    let report = Report::check(&[examples("ambient/traffic-split.yaml")]);
    assert!(report.passed(), "{report}");
    let notes = notes_of(&report, AMBIENT_PLUGIN);
    assert!(
        notes.iter().any(|note| note.starts_with(
            "runs in waypoint springistiodemo/waypoint: splits every call to Service springbootapp-svc"
        )),
        "{report}"
    );
    assert!(
        notes
            .iter()
            .any(|note| note.starts_with("falls through: in waypoint")
                && note.contains("HTTPRoute springistiodemo/springbootapp")
                && note.contains("default-v1")),
        "{report}"
    );
    assert!(
        !notes.iter().any(|note| note.contains("every workload")),
        "{report}"
    );
}

#[test]
fn a_waypoint_version_no_httproute_rule_routes_is_refused_naming_version_and_route() {
    let dir = folder(
        "ambient-v3",
        &[
            ("namespace.yaml", example("ambient/namespace.yaml")),
            ("waypoint.yaml", example("ambient/waypoint.yaml")),
            (
                "traffic-split.yaml",
                example("ambient/traffic-split.yaml").replace("- version: v2", "- version: v3"),
            ),
        ],
    );
    let report = Report::check(&[&dir]);
    assert!(!report.passed(), "{report}");
    let errors = errors_of(&report, AMBIENT_PLUGIN);
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].starts_with(
            "spec.wasm.pluginConfig.routes[0].destinations[1].version: no HTTPRoute routes \
             x-split-version: v3 in waypoint springistiodemo/waypoint (HTTPRoute \
             springistiodemo/springbootapp"
        ) && errors[0].contains("routes v1, v2"),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn an_envoy_gateway_version_no_httproute_rule_routes_is_refused() {
    let dir = folder(
        "eg-v3",
        &[
            ("gateway.yaml", example("envoy-gateway/gateway.yaml")),
            (
                "traffic-split.yaml",
                example("envoy-gateway/traffic-split.yaml").replace("version: v2", "version: v3"),
            ),
        ],
    );
    let report = Report::check(&[dir.join("traffic-split.yaml")]);
    let errors = errors_of(&report, GATEWAY_POLICY);
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].starts_with(
            "spec.wasm[0].config.routes[0].destinations[1].version: no HTTPRoute routes \
             x-split-version: v3 in HTTPRoute springistiodemo/springbootapp"
        ),
        "{report}"
    );
    // The complete set passes.
    let report = Report::check(&[examples("envoy-gateway")]);
    assert!(report.passed(), "{report}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_policy_on_the_gateway_meets_the_httproutes_attached_to_it() {
    let policy = example("envoy-gateway/traffic-split.yaml").replace(
        "    kind: HTTPRoute\n    name: springbootapp",
        "    kind: Gateway\n    name: eg",
    );
    assert!(policy.contains("kind: Gateway\n    name: eg"));
    let dir = folder(
        "eg-gateway",
        &[
            ("gateway.yaml", example("envoy-gateway/gateway.yaml")),
            (
                "traffic-split.yaml",
                policy.replace("value: v2", "value: v9"),
            ),
        ],
    );
    let report = Report::check(&[&dir]);
    let errors = errors_of(&report, GATEWAY_POLICY);
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].contains("x-split-version: v2 in Gateway springistiodemo/eg"),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn envoy_gateway_hands_the_config_over_as_json_with_integers_kept() {
    let text = example("envoy-gateway/traffic-split.yaml");
    let policy = serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            <serde_yaml::Value as serde::Deserialize>::deserialize(document).expect("YAML")
        })
        .find(|document| document["kind"].as_str() == Some("EnvoyExtensionPolicy"))
        .expect("the policy");
    let json = filter_json(&policy, "spec.wasm[0].config").expect("its config");
    assert_eq!(
        json["routes"][0]["destinations"][0]["weight"],
        serde_json::json!(70)
    );
    assert!(json["routes"][0]["destinations"][0]["weight"].is_u64());
}

#[test]
fn a_wasm_plugin_targeting_a_waypoint_is_read_as_istio_reads_targetrefs() {
    // The WasmPlugin form of the ambient example: targetRefs, not "every workload of the
    // namespace", and the HTTPRoute's routing by version is checked.
    let ambient = example("ambient/traffic-split.yaml");
    let route = ambient.split("\n---\n").next().expect("the HTTPRoute");
    let plugin = format!(
        "{route}\n---\n\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: traffic-split
  namespace: springistiodemo
spec:
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: waypoint
  url: oci://registry.example.com/mesh/traffic-split:0.1.0
  pluginConfig:
    routes:
    - name: hello
      destinations:
      - version: v1
        weight: 70
      - version: v2
        weight: 30
"
    );
    let dir = folder(
        "wasmplugin-waypoint",
        &[
            ("waypoint.yaml", example("ambient/waypoint.yaml")),
            (
                "traffic-split.yaml",
                plugin.replace("- version: v2", "- version: v7"),
            ),
        ],
    );
    let report = Report::check(&[&dir]);
    let origin = "WasmPlugin springistiodemo/traffic-split";
    let errors = errors_of(&report, origin);
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].starts_with("spec.pluginConfig.routes[0].destinations[1].version: no HTTPRoute routes x-split-version: v7 in waypoint"),
        "{report}"
    );
    let notes = notes_of(&report, origin);
    assert!(
        !notes.iter().any(|note| note.contains("no selector")),
        "{notes:?}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_selector_in_an_ambient_namespace_is_refused() {
    let sidecar = example("istio/traffic-split.yaml");
    let dir = folder(
        "ambient-selector",
        &[
            ("busyclient.yaml", example("istio/busyclient.yaml")),
            (
                "namespace.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istioclient\n  labels:\n    istio.io/dataplane-mode: ambient\n".to_string(),
            ),
            ("traffic-split.yaml", sidecar),
        ],
    );
    let report = Report::check(&[dir.join("traffic-split.yaml")]);
    let errors = errors_of(&report, "TrafficExtension istioclient/traffic-split");
    assert!(
        errors.iter().any(|error| error.starts_with("spec.selector.matchLabels: app=busyclient selects workloads of namespace istioclient, which is in ambient mode")),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_service_target_without_a_waypoint_is_refused() {
    let plugin = example("ambient/traffic-split.yaml").replace(
        "  - group: gateway.networking.k8s.io\n    kind: Gateway\n    name: waypoint",
        "  - kind: Service\n    name: springbootapp-svc",
    );
    assert!(plugin.contains("kind: Service\n    name: springbootapp-svc\n  phase"));
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: springistiodemo\n  labels:\n    istio.io/dataplane-mode: ambient\n";
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: springbootapp-svc\n  namespace: springistiodemo\nspec:\n  ports:\n  - port: 8080\n";
    let dir = folder(
        "service-target",
        &[
            ("namespace.yaml", format!("{namespace}---\n{service}")),
            ("traffic-split.yaml", plugin.clone()),
        ],
    );
    let report = Report::check(&[&dir]);
    let errors = errors_of(&report, AMBIENT_PLUGIN);
    assert!(
        errors.iter().any(|error| error
            .starts_with("spec.targetRefs: Service springbootapp-svc is bound to no waypoint")),
        "{report}"
    );
    // Bound by its namespace's label, it is the waypoint's, and the HTTPRoute applies.
    let dir = folder(
        "service-target-bound",
        &[
            (
                "namespace.yaml",
                format!("{namespace}    istio.io/use-waypoint: waypoint\n---\n{service}"),
            ),
            ("traffic-split.yaml", plugin),
        ],
    );
    let report = Report::check(&[&dir]);
    assert!(report.passed(), "{report}");
    assert!(
        notes_of(&report, AMBIENT_PLUGIN).iter().any(|note| note
            .starts_with("runs in the waypoint of Service springistiodemo/springbootapp-svc")),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn two_plugins_of_one_label_on_one_proxy_with_the_same_route_name_are_refused_naming_both() {
    // The TrafficExtension and the WasmPlugin for Istio up to 1.29, applied together: the
    // client's sidecar would run the filter twice, both named istioclient.traffic-split in
    // Envoy, and both count route "hello" under plugin="istioclient_traffic-split".
    let report = Report::check(&[
        examples("istio/traffic-split.yaml"),
        examples("istio/wasmplugin/traffic-split.yaml"),
    ]);
    assert!(!report.passed(), "{report}");
    let errors = errors_of(
        &report,
        "wasmplugin/traffic-split.yaml: WasmPlugin istioclient/traffic-split",
    );
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].starts_with("spec.pluginConfig.routes[0].name: ")
            && errors[0].contains("TrafficExtension istioclient/traffic-split also runs in the sidecars of app=busyclient")
            && errors[0].contains(
                "the same traffic_split_* series (plugin=\"istioclient_traffic-split\", route=\"hello\")"
            ),
        "{report}"
    );
    // The WasmPlugin changed as `change` does passes beside the TrafficExtension.
    let passes_beside_the_extension = |folder_name: &str, change: &dyn Fn(String) -> String| {
        let changed = change(example("istio/wasmplugin/traffic-split.yaml"));
        let dir = folder(folder_name, &[("wasmplugin.yaml", changed)]);
        let report = Report::check(&[
            examples("istio/traffic-split.yaml"),
            dir.join("wasmplugin.yaml"),
        ]);
        assert!(report.passed(), "{folder_name}: {report}");
        let _ = fs::remove_dir_all(dir);
    };
    // Another route name, and the two are told apart (the double filter is still the user's
    // choice: each plugin's split is its own).
    passes_beside_the_extension("renamed", &|text| {
        text.replace("- name: hello", "- name: hello-legacy")
    });
    // Another plugin name, and its series carry another plugin label: the route name may stay.
    passes_beside_the_extension("renamed-plugin", &|text| {
        assert!(text.contains("  name: traffic-split\n"));
        text.replacen(
            "  name: traffic-split\n",
            "  name: traffic-split-legacy\n",
            1,
        )
    });
}

#[test]
fn plugins_on_different_proxies_may_share_a_route_name() {
    // The sidecar's and the ambient waypoint's plugins both count "hello", in different Envoys.
    let report = Report::check(&[
        examples("istio/traffic-split.yaml"),
        examples("ambient/traffic-split.yaml"),
    ]);
    assert!(report.passed(), "{report}");
}
