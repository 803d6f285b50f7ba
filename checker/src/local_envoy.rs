//! Any plugin config in the local Envoy: `make envoy-up CONFIG=file.json` (and `make run`,
//! `make watch`). The shipped `envoy/envoy.yaml` is the base; [`bootstrap`] puts the config
//! into its front listener's filter as Envoy's `configuration` string, byte for byte (an ASCII
//! double-quoted scalar, which any YAML reader takes back exactly), and
//! makes the rest of the bootstrap agree with it: a route per cluster the config names (by the
//! config's `cluster_header`), a demo upstream for every cluster the base does not serve, and
//! upstreams that echo the config's own headers. [`sample_requests`] finds a request each
//! route matches, for the demo's and the live view's traffic, and [`curl_line`] the command
//! that sends it, quoted for a shell.

use crate::plugins::at;
use serde_yaml::Value;
use std::collections::BTreeSet;
use traffic_split::plan::{HeaderRule, PathMatch, Plan, RequestView, Route, WholeValueRegex};

/// Stands for the plugin config in the document until it is written out (see [`bootstrap`]).
const CONFIG_PLACEHOLDER: &str = "TRAFFIC_SPLIT_PLUGIN_CONFIGURATION_PLACEHOLDER";

/// The first line of a generated bootstrap.
pub const GENERATED_NOTE: &str = "# Generated from envoy/envoy.yaml for a plugin config by \
     `make envoy-up CONFIG=...` (checker/src/local_envoy.rs): do not edit.";

/// The shipped bootstrap `base` with `plugin_config` (the JSON text) in its front filter.
/// `plan` is what the filter's compiler made of that text (the caller checked it first).
pub fn bootstrap(base: &str, plugin_config: &str, plan: &Plan) -> Result<String, String> {
    let mut document: Value =
        serde_yaml::from_str(base).map_err(|error| format!("the base bootstrap: {error}"))?;
    let clusters = named_clusters(plan);
    let served = served_clusters(&document);
    {
        let listeners = listeners(&mut document)?;
        let front = listeners
            .first_mut()
            .ok_or("the base bootstrap has no listener")?;
        set_plugin_config(front, CONFIG_PLACEHOLDER)?;
        set_routes(front, &plan.cluster_header, &clusters)?;
        for cluster in clusters.iter().filter(|cluster| !served.contains(*cluster)) {
            listeners.push(demo_upstream_listener(cluster)?);
        }
        for upstream in listeners.iter_mut().skip(1) {
            echo_headers(upstream, &plan.version_header, &plan.cluster_header);
        }
    }
    let cluster_list = document
        .get_mut("static_resources")
        .and_then(|resources| resources.get_mut("clusters"))
        .and_then(Value::as_sequence_mut)
        .ok_or("the base bootstrap has no static clusters")?;
    for cluster in clusters.iter().filter(|cluster| !served.contains(*cluster)) {
        cluster_list.push(demo_cluster(cluster)?);
    }
    let text = serde_yaml::to_string(&document).map_err(|error| error.to_string())?;
    // The config goes in as an escaped ASCII scalar: a YAML writer may pick a block scalar,
    // whose line breaks (NEL, LS, CR) and trailing spaces readers differ on.
    if text.matches(CONFIG_PLACEHOLDER).count() != 1 {
        return Err("the base bootstrap already holds the config placeholder".into());
    }
    let text = text.replace(CONFIG_PLACEHOLDER, &ascii_double_quoted(plugin_config));
    Ok(format!("{GENERATED_NOTE}\n{text}"))
}

/// A YAML double-quoted scalar of `text` in printable ASCII: every other character escaped.
fn ascii_double_quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            ' '..='~' => quoted.push(c),
            c if (c as u32) <= 0xFFFF => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    quoted.push('"');
    quoted
}

/// Every cluster the config's destinations name, once, in order of appearance.
pub fn named_clusters(plan: &Plan) -> Vec<String> {
    let mut seen = BTreeSet::new();
    plan.routes
        .iter()
        .flat_map(|route| &route.destinations)
        .filter_map(|destination| destination.cluster.clone())
        .filter(|cluster| seen.insert(cluster.clone()))
        .collect()
}

/// The clusters the base bootstrap defines.
fn served_clusters(document: &Value) -> BTreeSet<String> {
    at(document, &["static_resources", "clusters"])
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|cluster| at(cluster, &["name"]).as_str().map(str::to_string))
        .collect()
}

fn listeners(document: &mut Value) -> Result<&mut Vec<Value>, String> {
    document
        .get_mut("static_resources")
        .and_then(|resources| resources.get_mut("listeners"))
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| "the base bootstrap has no static listeners".to_string())
}

/// The HTTP connection manager's typed config of a listener's first filter chain.
fn connection_manager(listener: &mut Value) -> Option<&mut Value> {
    listener
        .get_mut("filter_chains")?
        .get_mut(0)?
        .get_mut("filters")?
        .get_mut(0)?
        .get_mut("typed_config")
}

fn set_plugin_config(front: &mut Value, plugin_config: &str) -> Result<(), String> {
    let filter = connection_manager(front)
        .and_then(|manager| manager.get_mut("http_filters"))
        .and_then(Value::as_sequence_mut)
        .and_then(|filters| {
            filters
                .iter_mut()
                .find(|filter| at(filter, &["name"]).as_str() == Some("traffic-split"))
        })
        .ok_or("the front listener has no traffic-split filter")?;
    let configuration = filter
        .get_mut("typed_config")
        .and_then(|typed| typed.get_mut("config"))
        .and_then(|config| config.get_mut("configuration"))
        .and_then(Value::as_mapping_mut)
        .ok_or("the traffic-split filter has no configuration")?;
    configuration.insert(
        Value::from("value"),
        Value::String(plugin_config.to_string()),
    );
    Ok(())
}

/// One route per named cluster, on the config's cluster header by exact value, then the base's
/// last route (no route of the filter matched, or a destination without a cluster), as a
/// VirtualService's default route.
fn set_routes(front: &mut Value, cluster_header: &str, clusters: &[String]) -> Result<(), String> {
    let routes = connection_manager(front)
        .and_then(|manager| manager.get_mut("route_config"))
        .and_then(|config| config.get_mut("virtual_hosts"))
        .and_then(|hosts| hosts.get_mut(0))
        .and_then(|host| host.get_mut("routes"))
        .and_then(Value::as_sequence_mut)
        .ok_or("the front listener has no routes")?;
    let default_route = routes
        .last()
        .cloned()
        .ok_or("the front listener has no routes")?;
    let mut new_routes = Vec::with_capacity(clusters.len() + 1);
    for cluster in clusters {
        new_routes.push(yaml(&format!(
            "match:\n  prefix: /\n  headers:\n  - name: {}\n    string_match: {{ exact: {} }}\nroute: {{ cluster: {} }}\n",
            quoted(cluster_header),
            quoted(cluster),
            quoted(cluster)
        ))?);
    }
    new_routes.push(default_route);
    *routes = new_routes;
    Ok(())
}

/// Points the upstreams' echo of the chosen version and cluster at the config's headers.
fn echo_headers(upstream: &mut Value, version_header: &str, cluster_header: &str) {
    let Some(hosts) = connection_manager(upstream)
        .and_then(|manager| manager.get_mut("route_config"))
        .and_then(|config| config.get_mut("virtual_hosts"))
        .and_then(Value::as_sequence_mut)
    else {
        return;
    };
    for host in hosts {
        let Some(headers) = host
            .get_mut("response_headers_to_add")
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        for entry in headers {
            let Some(header) = entry.get_mut("header").and_then(Value::as_mapping_mut) else {
                continue;
            };
            let echoed = match header.get("key").and_then(Value::as_str) {
                Some("x-upstream-saw-version") => version_header,
                Some("x-upstream-saw-cluster") => cluster_header,
                _ => continue,
            };
            header.insert(
                Value::from("value"),
                Value::String(format!("%REQ({echoed})%")),
            );
        }
    }
}

/// A short name of its own for each cluster name (FNV-1a, 64 bits): two names that spell the
/// same once cleaned (`svc.v3`, `svc-v3`) stay apart, and a long one fits a socket path.
fn cluster_id(cluster: &str) -> String {
    let hash = cluster
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// The abstract socket a demo upstream listens on: 41 bytes whatever the cluster's name
/// (a socket path holds 107).
fn upstream_socket(cluster: &str) -> String {
    format!("@traffic-split-upstream-{}", cluster_id(cluster))
}

/// A stat prefix made of the characters Envoy keeps as they are, readable and unique: the
/// name cleaned and cut to 40 characters, then its id.
fn stat_name(cluster: &str) -> String {
    let readable: String = cluster
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{readable}_{}", cluster_id(cluster))
}

/// A listener that answers every request at once, like springbootapp v1, and echoes what the
/// filter wrote.
fn demo_upstream_listener(cluster: &str) -> Result<Value, String> {
    yaml(&format!(
        r#"
name: {name}
address: {{ pipe: {{ path: {socket} }} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: {stat}
      route_config:
        virtual_hosts:
        - name: {stat}
          domains: ["*"]
          response_headers_to_add:
          - header: {{ key: x-upstream-saw-version, value: "%REQ(x-split-version)%" }}
          - header: {{ key: x-upstream-saw-cluster, value: "%REQ(x-split-cluster)%" }}
          routes:
          - match: {{ prefix: "/" }}
            direct_response: {{ status: 200, body: {{ inline_string: {body} }} }}
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        name = quoted(&format!("upstream-{}", stat_name(cluster))),
        socket = quoted(&upstream_socket(cluster)),
        stat = quoted(&stat_name(cluster)),
        body = quoted(&format!("Hello from {cluster}\n")),
    ))
}

fn demo_cluster(cluster: &str) -> Result<Value, String> {
    yaml(&format!(
        r#"
name: {name}
connect_timeout: 1s
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config:
      http2_protocol_options: {{}}
load_assignment:
  cluster_name: {name}
  endpoints:
  - lb_endpoints:
    - endpoint:
        address: {{ pipe: {{ path: {socket} }} }}
"#,
        name = quoted(cluster),
        socket = quoted(&upstream_socket(cluster)),
    ))
}

/// A YAML string scalar (JSON's quoting is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn yaml(text: &str) -> Result<Value, String> {
    serde_yaml::from_str(text).map_err(|error| format!("generated YAML: {error}"))
}

/// A word for a POSIX shell, single-quoted: nothing in it is expanded (a `'` is written
/// `'\''`).
pub fn shell_quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The curl command that sends `sample` to the local Envoy on :10000, safe to paste.
pub fn curl_line(sample: &SampleRequest) -> String {
    let mut words = vec![
        "curl".to_string(),
        "-si".to_string(),
        "-X".to_string(),
        shell_quoted(&sample.method),
    ];
    for (name, value) in &sample.headers {
        words.push("-H".to_string());
        words.push(shell_quoted(&format!("{name}: {value}")));
    }
    words.push(shell_quoted(&format!("localhost:10000{}", sample.path)));
    words.join(" ")
}

/// A request a route matches: what the demo and the live view send to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleRequest {
    pub route: String,
    pub method: String,
    pub path: String,
    /// Headers the route's match requires, lower case.
    pub headers: Vec<(String, String)>,
}

/// Why a route gets no sample request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoSample {
    pub route: String,
    pub reason: String,
}

/// A request for each route that the route itself matches first (an earlier route would take
/// it otherwise), or why there is none: a regex in the match has no obvious example.
pub fn sample_requests(plan: &Plan) -> Vec<Result<SampleRequest, NoSample>> {
    plan.routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let sample = sample_for(route).map_err(|reason| NoSample {
                route: route.name.clone(),
                reason,
            })?;
            match plan.match_route(&mut SampleView(&sample)) {
                Some((first, _)) if first == index => Ok(sample),
                Some((first, _)) => Err(NoSample {
                    route: route.name.clone(),
                    reason: format!(
                        "{} {} is taken by the earlier route {}",
                        sample.method,
                        sample.path,
                        plan.routes
                            .get(first)
                            .map_or("?", |earlier| earlier.name.as_str())
                    ),
                }),
                None => Err(NoSample {
                    route: route.name.clone(),
                    reason: "no example request found".to_string(),
                }),
            }
        })
        .collect()
}

fn sample_for(route: &Route) -> Result<SampleRequest, String> {
    let matcher = &route.matcher;
    let path = match &matcher.path {
        None => "/".to_string(),
        Some(PathMatch::Prefix(prefix)) | Some(PathMatch::Exact(prefix)) => prefix.clone(),
        Some(PathMatch::Regex(regex)) => example_of(pattern(regex)).ok_or_else(|| {
            format!(
                "its path is a regex ({}) with no simple example: send your own requests",
                pattern(regex)
            )
        })?,
    };
    let mut headers = Vec::new();
    for header in &matcher.headers {
        let value = match &header.rule {
            HeaderRule::Exact(value) | HeaderRule::Prefix(value) => value.clone(),
            HeaderRule::Present => "1".to_string(),
            HeaderRule::Regex(regex) => example_of(pattern(regex)).ok_or_else(|| {
                format!(
                    "its header {} must match a regex ({}) with no simple example: send your \
                     own requests",
                    header.name,
                    pattern(regex)
                )
            })?,
        };
        headers.push((header.name.clone(), value));
    }
    // GET where the route takes it: a HEAD's answer has no body to read.
    let method = match matcher.methods.first() {
        Some(first) if !matcher.methods.iter().any(|method| method == "GET") => first.clone(),
        _ => "GET".to_string(),
    };
    Ok(SampleRequest {
        route: route.name.clone(),
        method,
        path,
        headers,
    })
}

/// The pattern as the config wrote it (the plan keeps it anchored at both ends).
fn pattern(regex: &WholeValueRegex) -> &str {
    let text = regex.as_str();
    text.strip_prefix("^(?:")
        .and_then(|inner| inner.strip_suffix(")$"))
        .unwrap_or(text)
}

/// A text a simple regex matches: literals, `.`, `\d`, `\w`, classes (their first member) and
/// the repetitions `+ * ? {n}` (one of each). `None` for anything else (groups,
/// alternatives); the caller checks the example against the route anyway.
fn example_of(pattern: &str) -> Option<String> {
    let mut example = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '^' | '$' => {}
            '.' => example.push('a'),
            '\\' => match chars.next()? {
                'd' => example.push('0'),
                'w' => example.push('a'),
                escaped if escaped.is_ascii_punctuation() => example.push(escaped),
                _ => return None,
            },
            '[' => {
                let first = chars.next().filter(|&first| first != '^' && first != ']')?;
                for member in chars.by_ref() {
                    if member == ']' {
                        break;
                    }
                }
                example.push(first);
            }
            '+' | '*' | '?' => {}
            '{' => {
                for bound in chars.by_ref() {
                    if bound == '}' {
                        break;
                    }
                }
            }
            '(' | ')' | '|' => return None,
            literal => example.push(literal),
        }
    }
    Some(example)
}

struct SampleView<'a>(&'a SampleRequest);

impl RequestView for SampleView<'_> {
    fn path(&mut self) -> Option<&[u8]> {
        Some(self.0.path.as_bytes())
    }

    fn method(&mut self) -> Option<&[u8]> {
        Some(self.0.method.as_bytes())
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.0
            .headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_split::config::compile;

    const BASE: &str = include_str!("../../envoy/envoy.yaml");

    #[test]
    fn the_curl_line_is_safe_to_paste_into_a_shell() {
        let sample = SampleRequest {
            route: "r".into(),
            method: "GET".into(),
            path: "/x$(touch pwned)`touch pwned`".into(),
            headers: vec![("x-a".into(), "it's \"quoted\" $HOME".into())],
        };
        let line = curl_line(&sample);
        let dir = std::env::temp_dir().join(format!("ts-curl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        // The same words, printed one a line instead of sent.
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(line.replacen("curl", "printf '%s\\n'", 1))
            .current_dir(&dir)
            .output()
            .expect("sh");
        let words: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            words,
            [
                "-si",
                "-X",
                "GET",
                "-H",
                "x-a: it's \"quoted\" $HOME",
                "localhost:10000/x$(touch pwned)`touch pwned`"
            ]
        );
        assert!(!dir.join("pwned").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_config_reaches_the_bootstrap_byte_for_byte_in_ascii() {
        let text =
            "{\"routes\": [{\"name\": \"r\", \"match\": {\"headers\": [{\"name\": \"x-a\", \r\n\
                    \"prefix\": \"caf\u{e9}\\u00e9\u{2028}\u{85}\"}]}, \"destinations\": [\r\n\
                    {\"version\": \"v1\", \"weight\": 1}]}]}  \n\t\n";
        let yaml = bootstrap(BASE, text, &plan(text)).expect("a bootstrap");
        assert!(yaml.is_ascii());
        let document: Value = serde_yaml::from_str(&yaml).expect("YAML");
        let filters = &document["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
            [0]["typed_config"]["http_filters"];
        let filter = filters
            .as_sequence()
            .expect("filters")
            .iter()
            .find(|filter| filter["name"].as_str() == Some("traffic-split"))
            .expect("the filter");
        assert_eq!(
            filter["typed_config"]["config"]["configuration"]["value"].as_str(),
            Some(text)
        );
    }

    #[test]
    fn clusters_that_clean_to_one_name_get_listeners_and_sockets_of_their_own() {
        let long = "c".repeat(200);
        let config = format!(
            r#"{{"routes": [{{"name": "r", "destinations": [
                {{"version": "a", "cluster": "svc.v3", "weight": 1}},
                {{"version": "b", "cluster": "svc-v3", "weight": 1}},
                {{"version": "c", "cluster": "{long}", "weight": 1}}]}}]}}"#
        );
        let yaml = bootstrap(BASE, &config, &plan(&config)).expect("a bootstrap");
        let document: Value = serde_yaml::from_str(&yaml).expect("YAML");
        let listeners = document["static_resources"]["listeners"]
            .as_sequence()
            .expect("listeners");
        let mut names = BTreeSet::new();
        let mut sockets = BTreeSet::new();
        for listener in listeners {
            assert!(names.insert(listener["name"].as_str().expect("a name").to_string()));
            if let Some(socket) = listener["address"]["pipe"]["path"].as_str() {
                assert!(socket.len() <= 107, "{socket}");
                assert!(sockets.insert(socket.to_string()));
            }
        }
        assert!(sockets.len() >= 3, "{sockets:?}");
    }

    fn plan(json: &str) -> Plan {
        compile(json.as_bytes()).expect("a valid config")
    }

    fn front_routes(document: &Value) -> Vec<(Option<String>, String)> {
        document["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
            .as_sequence()
            .expect("routes")
            .iter()
            .map(|route| {
                (
                    route["match"]["headers"][0]["string_match"]["exact"]
                        .as_str()
                        .map(str::to_string),
                    route["route"]["cluster"]
                        .as_str()
                        .expect("cluster")
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn the_config_goes_in_as_written_and_every_named_cluster_gets_a_route_and_an_upstream() {
        let config = r#"{ "cluster_header": "x-c", "version_header": "x-v", "routes": [
            { "name": "r", "destinations": [
              { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 },
              { "version": "v9", "cluster": "outbound|8080|v9|svc.ns.svc.cluster.local", "weight": 1 } ] } ] }"#;
        let text = bootstrap(BASE, config, &plan(config)).expect("a bootstrap");
        assert!(text.starts_with(GENERATED_NOTE));
        let document: Value = serde_yaml::from_str(&text).expect("YAML");
        let filter = &document["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
            [0]["typed_config"]["http_filters"][0];
        assert_eq!(
            filter["typed_config"]["config"]["configuration"]["value"].as_str(),
            Some(config)
        );
        let istio = "outbound|8080|v9|svc.ns.svc.cluster.local";
        assert_eq!(
            front_routes(&document),
            vec![
                (Some("springbootapp-v1".into()), "springbootapp-v1".into()),
                (Some(istio.into()), istio.into()),
                (None, "springbootapp-v1".into()),
            ]
        );
        let header = &document["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
            [0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["match"]
            ["headers"][0]["name"];
        assert_eq!(header.as_str(), Some("x-c"));
        let clusters = served_clusters(&document);
        assert!(clusters.contains(istio) && clusters.contains("springbootapp-v2"));
        assert!(text.contains("%REQ(x-v)%") && text.contains("%REQ(x-c)%"));
        assert!(!text.contains("%REQ(x-split-version)%"));
    }

    #[test]
    fn each_route_gets_a_request_it_matches_first() {
        let config = r#"{ "routes": [
            { "name": "beta", "match": { "prefix": "/api", "headers": [ { "name": "x-beta", "present": true } ] },
              "destinations": [ { "version": "v3", "weight": 1 } ] },
            { "name": "api", "match": { "prefix": "/api", "methods": ["POST"] },
              "destinations": [ { "version": "v1", "weight": 1 } ] },
            { "name": "orders", "match": { "regex": "/o/[0-9]+" },
              "destinations": [ { "version": "v1", "weight": 1 } ] },
            { "name": "grouped", "match": { "regex": "/(a|b)" },
              "destinations": [ { "version": "v1", "weight": 1 } ] },
            { "name": "rest", "destinations": [ { "version": "v1", "weight": 1 } ] },
            { "name": "shadowed", "match": { "prefix": "/api/x" },
              "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;
        let samples = sample_requests(&plan(config));
        let beta = samples[0].as_ref().expect("beta");
        assert_eq!(beta.path, "/api");
        assert_eq!(beta.headers, vec![("x-beta".to_string(), "1".to_string())]);
        assert_eq!(samples[1].as_ref().expect("api").method, "POST");
        assert_eq!(samples[2].as_ref().expect("orders").path, "/o/0");
        assert!(samples[3]
            .as_ref()
            .is_err_and(|no| no.reason.contains("regex (/(a|b)) with no simple example")));
        assert_eq!(samples[4].as_ref().expect("rest").path, "/");
        assert!(samples[5]
            .as_ref()
            .is_err_and(|no| no.reason.ends_with("taken by the earlier route rest")));
    }
}
