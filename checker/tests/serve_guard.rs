//! `traffic-split top --serve` guards a page that has no authentication: a request whose
//! `Host` is not the server's own address (DNS rebinding) is refused, connections beyond
//! the limit are answered 503 at once instead of piling up, and serving beyond loopback
//! warns. No Envoy is needed: the page is served while the stats cannot be read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use traffic_split_check::top::serve::MAX_CONNECTIONS;

struct Served {
    child: Child,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `top --serve ADDRESS` against an admin nobody listens on; the address it printed.
fn serve(address: &str) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_traffic-split"))
        .args(["top", "--serve", address, "--admin", "127.0.0.1:1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start traffic-split top --serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the address line");
    let address = line
        .strip_prefix("serving http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Served { child, address }
}

/// The status of `GET /` with `host` as the Host header, on a connection of its own.
fn status(address: &str, host: &str) -> u16 {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_host_that_is_not_the_servers_own_is_refused() {
    let served = serve("127.0.0.1:0");
    let port = served
        .address
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string();
    assert_eq!(status(&served.address, &served.address), 200);
    assert_eq!(status(&served.address, &format!("localhost:{port}")), 200);
    assert_eq!(
        status(&served.address, &format!("rebound.example:{port}")),
        421
    );
}

#[test]
fn connections_beyond_the_limit_are_answered_busy_at_once() {
    let served = serve("127.0.0.1:0");
    // Idle connections that send nothing hold the server's places.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(&served.address).expect("connect"))
        .collect();
    // The server takes them in order: wait until it has taken them all (a further one is
    // answered busy), within a bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut busy = false;
    while Instant::now() < deadline {
        if status(&served.address, &served.address) == 503 {
            busy = true;
            break;
        }
    }
    assert!(
        busy,
        "never answered 503 with {MAX_CONNECTIONS} idle connections open"
    );
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut served_again = false;
    while Instant::now() < deadline {
        if status(&served.address, &served.address) == 200 {
            served_again = true;
            break;
        }
    }
    assert!(
        served_again,
        "not served again once the idle connections closed"
    );
}

#[test]
fn serving_beyond_loopback_warns() {
    let mut served = serve("0.0.0.0:0");
    let _ = served.child.kill();
    let mut stderr = String::new();
    served
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(
        stderr.contains("warning: serving beyond this machine"),
        "{stderr}"
    );
}
