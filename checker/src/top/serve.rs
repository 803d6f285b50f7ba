//! `--serve`: the same numbers as a web page. One HTML file with its script (`page.html`),
//! which fetches `/api/top` once a second; a thread reads Envoy's stats in the background.
//!
//! The server is small and guarded, since the page has no authentication: it answers only
//! requests whose `Host` is the address it serves or a loopback name (a DNS name pointed at
//! it by another site, DNS rebinding, is refused), at most [`MAX_CONNECTIONS`] at once, each
//! with a time limit and one request per connection.

use super::admin::Poller;
use super::frame::Frame;
use super::history::History;
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PAGE: &str = include_str!("page.html");
/// How far back the page's chart reaches.
const HISTORY_SECONDS: f64 = 300.0;
/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a connection may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read (a browser's is well under 2 KiB).
const MAX_HEAD_BYTES: usize = 16 << 10;

/// What `/api/top` answers.
#[derive(Serialize)]
struct State {
    source: String,
    error: Option<String>,
    frame: Frame,
    history: History,
}

pub fn serve(
    address: SocketAddr,
    mut poller: Poller,
    interval: Duration,
    source: &str,
) -> Result<(), String> {
    let listener =
        TcpListener::bind(address).map_err(|error| format!("--serve {address}: {error}"))?;
    let bound = listener.local_addr().unwrap_or(address);
    if !bound.ip().is_loopback() {
        eprintln!(
            "traffic-split top: warning: serving beyond this machine ({bound}): the page has no \
             authentication, and anyone who reaches the address sees Envoy's numbers"
        );
    }
    // Tests and scripts read the address (port 0 picks one) from this line.
    println!("serving http://{bound}/ with the stats of {source}");
    let _ = std::io::stdout().flush();
    let state = Arc::new(Mutex::new(State {
        source: source.to_string(),
        error: None,
        frame: Frame::default(),
        history: History::new(HISTORY_SECONDS),
    }));
    let reader_state = Arc::clone(&state);
    std::thread::spawn(move || {
        let mut next_reading = Instant::now();
        loop {
            let reading = poller.next_frame();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64());
            {
                let mut state = reader_state.lock().unwrap_or_else(PoisonError::into_inner);
                match reading {
                    Ok(frame) => {
                        state.history.record(now, &frame);
                        state.frame = frame;
                        state.error = None;
                    }
                    Err(error) => state.error = Some(error),
                }
            }
            next_reading = (next_reading + interval).max(Instant::now());
            std::thread::sleep(next_reading.saturating_duration_since(Instant::now()));
        }
    });
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            let _ = write_response(&mut stream, 503, "text/plain", b"busy\n");
            continue;
        }
        let state = Arc::clone(&state);
        let active = Arc::clone(&active);
        std::thread::spawn(move || {
            handle(stream, bound, &state);
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// Whether a request's `Host` names this server: the address it listens on, or (on loopback
/// or every interface) `localhost` and the loopback addresses, at its port. A name another
/// site could point at this machine is not among them.
pub fn host_allowed(host: &str, bound: SocketAddr) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => (name, port),
        _ => return false,
    };
    if port.parse::<u16>().ok() != Some(bound.port()) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name == "localhost" {
        return bound.ip().is_loopback() || bound.ip().is_unspecified();
    }
    match name.parse::<IpAddr>() {
        Ok(ip) if bound.ip().is_unspecified() => ip.is_loopback() || !ip.is_unspecified(),
        Ok(ip) => ip == bound.ip() || (bound.ip().is_loopback() && ip.is_loopback()),
        Err(_) => false,
    }
}

/// Reads one request head, answers it, closes the connection.
fn handle(mut stream: TcpStream, bound: SocketAddr, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Some(head) = read_head(&mut stream) else {
        let _ = write_response(&mut stream, 400, "text/plain", b"bad request\n");
        return;
    };
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        request_line.next().unwrap_or_default(),
        request_line.next().unwrap_or_default(),
    );
    let host = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim().to_string());
    let (status, content_type, body) = if !host
        .as_deref()
        .is_some_and(|host| host_allowed(host, bound))
    {
        (
            421,
            "text/plain",
            "this server answers only to its own address\n".into(),
        )
    } else {
        respond(method, target, state)
    };
    let _ = write_response(&mut stream, status, content_type, body.as_bytes());
}

/// The request's head (up to the blank line), as text; `None` if it is too long, not text,
/// or does not arrive in time.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).ok().filter(|read| *read > 0)?;
        head.extend_from_slice(chunk.get(..read)?);
        if head.len() > MAX_HEAD_BYTES {
            return None;
        }
    }
    let end = head.windows(4).position(|window| window == b"\r\n\r\n")?;
    head.truncate(end);
    String::from_utf8(head).ok()
}

fn respond(method: &str, target: &str, state: &Mutex<State>) -> (u16, &'static str, String) {
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/" | "/index.html") => (200, "text/html; charset=utf-8", PAGE.to_string()),
        ("GET", "/api/top") => {
            let state = state.lock().unwrap_or_else(PoisonError::into_inner);
            match serde_json::to_string(&*state) {
                Ok(json) => (200, "application/json", json),
                Err(error) => (500, "text/plain", error.to_string()),
            }
        }
        ("GET", _) => (404, "text/plain", "not found\n".into()),
        _ => (405, "text/plain", "only GET\n".into()),
    }
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncache-control: no-store\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn only_the_servers_own_names_are_answered() {
        let loopback = address("127.0.0.1:8089");
        for host in [
            "127.0.0.1:8089",
            "localhost:8089",
            "LOCALHOST:8089",
            "[::1]:8089",
        ] {
            assert!(host_allowed(host, loopback), "{host}");
        }
        for host in [
            "evil.example:8089",
            "127.0.0.1:8090",
            "localhost",
            "10.0.0.1:8089",
            "",
        ] {
            assert!(!host_allowed(host, loopback), "{host}");
        }
        let everywhere = address("0.0.0.0:8089");
        assert!(host_allowed("192.168.1.5:8089", everywhere));
        assert!(host_allowed("localhost:8089", everywhere));
        assert!(!host_allowed("attacker.example:8089", everywhere));
        let one = address("192.168.1.5:8089");
        assert!(host_allowed("192.168.1.5:8089", one));
        assert!(!host_allowed("localhost:8089", one));
    }
}
