//! `traffic-split top` reads what a big proxy serves: stats and a `/config_dump` beyond ureq's
//! default 10 MB limit, and an answer that is not UTF-8 is said to be so, not taken for an
//! Envoy out of reach. A small HTTP server of the test's own stands in for Envoy's admin.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use traffic_split_check::top::admin::Admin;
use traffic_split_check::top::options::StatsForm;

/// Serves `stats` at the stats path and `dump` at /config_dump, forever, on a free port.
fn admin_serving(stats: Vec<u8>, dump: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_or(true, |read| read == 0) || line == "\r\n" {
                    break;
                }
            }
            let body = if request_line.contains("/config_dump") {
                &dump
            } else {
                &stats
            };
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    format!("http://{address}")
}

/// Prometheus lines for `routes` routes of two versions: about 160 bytes a route.
fn many_routes(routes: usize) -> Vec<u8> {
    let mut text = String::new();
    for route in 0..routes {
        for version in ["v1", "v2"] {
            text.push_str(&format!(
                "traffic_split_requests_total{{route=\"route-number-{route:06}\",version=\"{version}\"}} 7\n"
            ));
        }
    }
    text.into_bytes()
}

#[test]
fn stats_beyond_ten_megabytes_are_read_whole() {
    let stats = many_routes(80_000);
    assert!(stats.len() > 10_500_000, "{}", stats.len());
    let base = admin_serving(stats, b"{}".to_vec());
    let snapshot = Admin::new(&base, StatsForm::Prometheus)
        .read()
        .expect("a reading");
    assert_eq!(snapshot.versions.len(), 160_000);
}

#[test]
fn a_config_dump_beyond_ten_megabytes_still_yields_the_filters_config() {
    let config = r#"{"routes": [{"name": "hello", "timeout": "2ms", "destinations": [{"version": "v1", "weight": 1}]}]}"#;
    let filler = "x".repeat(12_000_000);
    let dump = serde_json::json!({
        "configs": [
            {"filler": filler},
            {"configuration": {"value": config}}
        ]
    })
    .to_string();
    let base = admin_serving(b"".to_vec(), dump.into_bytes());
    let plans = Admin::new(&base, StatsForm::Prometheus)
        .read_plans()
        .expect("the dump is read");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].plan.routes[0].name, "hello");
}

#[test]
fn an_answer_that_is_not_utf8_is_said_to_be_so() {
    let base = admin_serving(
        b"traffic_split_requests_total 1 \xff\xfe\n".to_vec(),
        b"\xff".to_vec(),
    );
    let admin = Admin::new(&base, StatsForm::Prometheus);
    let Err(error) = admin.read() else {
        panic!("an answer that is not UTF-8 is refused")
    };
    assert!(error.contains("not UTF-8 text"), "{error}");
    assert!(!error.contains("cannot reach"), "{error}");
    let Err(error) = admin.read_plans() else {
        panic!("a dump that is not UTF-8 is refused")
    };
    assert!(error.contains("not UTF-8 text"), "{error}");
}
