//! `traffic-split top --serve`: the web page, loaded in headless Chromium (Debian's
//! `chromium`) from a real Envoy's numbers, shows the versions and their shares; a screenshot
//! is kept at build/top/serve-page.png.

use traffic_split_e2e as support;
mod top_support;

use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::{exclusive, Envoy, EnvoyConfig};
use top_support::{build_output, poll, send_hello, top, wait_until_counted, Traffic};

const REQUESTS: u64 = 100;

/// `traffic-split top --serve` on a free port; stopped on drop.
struct Page {
    child: Child,
    /// `http://127.0.0.1:port`, without a path.
    url: String,
    agent: ureq::Agent,
}

impl Page {
    fn serve(envoy: &Envoy) -> Page {
        let mut child = top(envoy, &["--serve", "127.0.0.1:0", "--interval", "200ms"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start traffic-split top --serve");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first_line)
            .expect("read the address line");
        let url = first_line
            .strip_prefix("serving ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no address in {first_line:?}"))
            .trim_end_matches('/')
            .to_string();
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        Page { child, url, agent }
    }

    fn get(&self, path: &str) -> (String, String) {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.url))
            .call()
            .expect("GET from traffic-split top");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.body_mut().read_to_string().expect("a body");
        (content_type, body)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium as root on a machine without a display or a session bus; its own
/// profile folder, removed afterwards. The page has a second of virtual time per reading.
fn chromium(args: &[&str], url: &str) -> Output {
    let profile =
        std::env::temp_dir().join(format!("traffic-split-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium (`make apt-tools` installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    output
}

/// The `<tr>` of a version in the page's DOM.
fn version_row<'a>(dom: &'a str, version: &str) -> Option<&'a str> {
    let start = dom.find(&format!(
        r#"<tr data-route="hello" data-version="{version}">"#
    ))?;
    let length = dom[start..].find("</tr>")?;
    Some(&dom[start..start + length])
}

/// The text of the cell whose classes start with `class`, in a row (after the bar, if any).
fn cell<'a>(row: &'a str, class: &str) -> Option<&'a str> {
    let start = row.find(&format!(r#"<td class="{class}"#))?;
    let content = &row[start..];
    let content = &content[..content.find("</td>")?];
    Some(&content[content.rfind('>')? + 1..])
}

#[test]
fn the_page_shows_each_version_and_its_share_from_a_real_envoy() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::ROUTE_2MS_V1_10S));
    send_hello(&envoy, REQUESTS as usize);
    wait_until_counted(&envoy, REQUESTS);
    let page = Page::serve(&envoy);

    let (content_type, html) = page.get("/");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(html.contains(r#"fetch("/api/top""#));
    // The page is served once the background reader has two readings of Envoy.
    let state: Json = poll("a frame with an interval", Duration::from_secs(20), || {
        let (_, body) = page.get("/api/top");
        let state: Json = serde_json::from_str(&body).expect("/api/top is JSON");
        state["frame"]["interval_seconds"].is_f64().then_some(state)
    });
    assert_eq!(state["frame"]["routes"][0]["requests"], REQUESTS);
    assert_eq!(state["error"], Json::Null);

    // The DOM once the page's script has fetched /api/top and drawn the rows (virtual time lets
    // it run; a slow machine may need another load).
    let dom = poll(
        "the page to show v1 and v2",
        Duration::from_secs(60),
        || {
            let output = chromium(&["--dump-dom"], &page.url);
            let dom = String::from_utf8_lossy(&output.stdout).into_owned();
            ["v1", "v2"]
                .iter()
                .all(|version| version_row(&dom, version).is_some())
                .then_some(dom)
        },
    );
    for (version, share, errors) in [("v1", "70.0%", "0"), ("v2", "30.0%", "30")] {
        let row = version_row(&dom, version)
            .unwrap_or_else(|| panic!("no row for {version} in the page:\n{dom}"));
        assert_eq!(cell(row, "share-total"), Some(share), "{row}");
        assert!(
            row.contains(&format!("width:{}%", &share[..2])),
            "the bar: {row}"
        );
        assert_eq!(
            cell(row, "r5xx").or(cell(row, "r5xx bad")),
            Some(errors),
            "{row}"
        );
    }
    // Health first, coloured by severity: v2's every answer a 5xx (critical), v1's none.
    let v1 = version_row(&dom, "v1").unwrap_or_default();
    let v2 = version_row(&dom, "v2").unwrap_or_default();
    assert_eq!(cell(v2, "errors sev-critical"), Some("100.0%"), "{v2}");
    assert_eq!(cell(v1, "errors"), Some("0.0%"), "{v1}");
    assert!(!v1.contains("sev-"), "{v1}");
    assert_eq!(cell(v2, "deadline"), Some("2.00 ms"), "{v2}");
    assert_eq!(cell(v1, "deadline"), Some("10000 ms"), "{v1}");
    assert!(
        v2.find("errors").unwrap_or(usize::MAX) < v2.find("share-now").unwrap_or(0),
        "health before the shares: {v2}"
    );

    // For the screenshot, traffic that draws lines on the chart: a few readings with shares.
    let _traffic = Traffic::start(envoy.front, 50);
    poll("readings with traffic", Duration::from_secs(20), || {
        let (_, body) = page.get("/api/top");
        let state: Json = serde_json::from_str(&body).expect("/api/top is JSON");
        let with_shares = state["history"]["points"]
            .as_array()?
            .iter()
            .filter(|point| point["versions"][0]["share"].is_f64())
            .count();
        (with_shares >= 10).then_some(())
    });

    let screenshot = build_output("top").join("serve-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let output = chromium(
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900",
        ],
        &page.url,
    );
    assert!(
        is_png(&screenshot),
        "no screenshot at {}:\n{}",
        screenshot.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"))
}
