//! What the end-to-end tests of `traffic-split top` (and `make watch`) share: requests through
//! the harness's Envoy, steady background traffic, and the `traffic-split` binary.
#![allow(dead_code)] // each test binary uses a different part

use crate::support::{http, Envoy};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use traffic_split::metrics::{DestinationMetric, PREFIX};
use traffic_split_check::local_envoy::SampleRequest;

/// The route every test config names.
pub const ROUTE: &str = "hello";

/// Sends one `GET /hello` on `connection`, reconnecting once if Envoy closed it; returns the
/// status.
fn get_hello(front: SocketAddr, connection: &mut http::Connection) -> u16 {
    match connection.get("/hello") {
        Ok(response) => response.status,
        Err(_) => {
            *connection = http::Connection::open(front).expect("connect to Envoy");
            connection.get("/hello").expect("request to Envoy").status
        }
    }
}

/// Sends a route's sample request on `connection`, reconnecting once if Envoy closed it.
fn send_sample(front: SocketAddr, connection: &mut http::Connection, request: &SampleRequest) {
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    if connection
        .request(&request.method, &request.path, &headers)
        .is_err()
    {
        if let Ok(mut fresh) = http::Connection::open(front) {
            let _ = fresh.request(&request.method, &request.path, &headers);
            *connection = fresh;
        }
    }
}

/// Sends `count` requests to `/hello` one after another.
pub fn send_hello(envoy: &Envoy, count: usize) {
    let mut connection = envoy.connect();
    for _ in 0..count {
        get_hello(envoy.front, &mut connection);
    }
}

/// Waits until Envoy has counted the responses and recorded the durations of `total`
/// requests (both happen when a stream ends, the histogram on the next stats flush).
pub fn wait_until_counted(envoy: &Envoy, total: u64) {
    // traffic_split_request_duration_<unit>_count, as the filter names its histogram.
    let histogram = DestinationMetric::Duration.row().name;
    let duration_count = format!("{PREFIX}_{histogram}_count");
    let metrics = envoy.admin.metrics_when(|metrics| {
        ["v1", "v2"].iter().all(|version| {
            let (requests, ..) = metrics.outcome(ROUTE, version);
            requests > 0
        }) && ["v1", "v2"]
            .iter()
            .map(|version| {
                metrics.count(&duration_count, &[("route", ROUTE), ("version", version)])
            })
            .sum::<u64>()
            == total
    });
    let responses: u64 = ["v1", "v2"]
        .iter()
        .map(|version| {
            let (_, ok, errors, _) = metrics.outcome(ROUTE, version);
            ok + errors
        })
        .sum();
    assert_eq!(
        responses, total,
        "Envoy did not count all {total} responses"
    );
}

/// Requests to `/hello` at a steady pace from a thread, until dropped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    /// `per_second` requests a second, spread evenly (this paces the load; nothing waits on
    /// it), until dropped.
    pub fn start(front: SocketAddr, per_second: u32) -> Traffic {
        Traffic::start_for(front, per_second, None)
    }

    /// The same, stopping by itself after `duration` when one is given.
    pub fn start_for(front: SocketAddr, per_second: u32, duration: Option<Duration>) -> Traffic {
        Traffic::start_requests(front, per_second, duration, Vec::new())
    }

    /// Like [`Traffic::start_for`], sending these requests in turn instead of `GET /hello`
    /// (`make watch CONFIG=...`: a request per route of the config).
    pub fn start_requests(
        front: SocketAddr,
        per_second: u32,
        duration: Option<Duration>,
        requests: Vec<SampleRequest>,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let pause = Duration::from_secs(1) / per_second.max(1);
        let end = duration.map(|duration| Instant::now() + duration);
        let thread = {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || {
                let mut connection = http::Connection::open(front).expect("connect to Envoy");
                let mut next = Instant::now();
                let mut turn = requests.iter().cycle();
                while !stop.load(Ordering::Relaxed) && end.is_none_or(|end| next < end) {
                    match turn.next() {
                        Some(request) => send_sample(front, &mut connection, request),
                        None => {
                            get_hello(front, &mut connection);
                        }
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    next += pause;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        Traffic {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `traffic-split` binary of this build. Cargo names it to integration tests only; the
/// `watch` example, which shares this module, runs `top` in its own process instead.
pub fn traffic_split() -> Command {
    Command::new(option_env!("CARGO_BIN_EXE_traffic-split").unwrap_or("traffic-split"))
}

/// `traffic-split top` against this Envoy's admin, with `args` after it.
pub fn top(envoy: &Envoy, args: &[&str]) -> Command {
    let mut command = traffic_split();
    command
        .arg("top")
        .arg("--admin")
        .arg(format!("http://{}", envoy.admin))
        .args(args);
    command
}

/// A folder under the repository's `build/` for what a test keeps (screenshots), created.
pub fn build_output(name: &str) -> std::path::PathBuf {
    let dir = crate::support::repo_root().join("build").join(name);
    std::fs::create_dir_all(&dir).expect("create the build output folder");
    dir
}

/// Polls `condition` every 100 ms until it returns `Some`, for at most `limit`.
pub fn poll<T>(what: &str, limit: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
