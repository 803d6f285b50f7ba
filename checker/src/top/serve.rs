//! `--serve`: the same numbers as a web page. One HTML file with its script (`page.html`),
//! which fetches `/api/top` once a second; a thread reads Envoy's stats in the background.

use super::admin::Poller;
use super::frame::Frame;
use super::history::History;
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tiny_http::{Header, Method, Request, Response, Server};

const PAGE: &str = include_str!("page.html");
/// How far back the page's chart reaches.
const HISTORY_SECONDS: f64 = 300.0;

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
    let server = Server::http(address).map_err(|error| format!("--serve {address}: {error}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .map_or_else(|| address.to_string(), |bound| bound.to_string());
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
    for request in server.incoming_requests() {
        respond(request, &state);
    }
    Ok(())
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(request: Request, state: &Mutex<State>) {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let (status, content_type, body) = match (request.method(), path.as_str()) {
        (Method::Get, "/" | "/index.html") => (200, "text/html; charset=utf-8", PAGE.to_string()),
        (Method::Get, "/api/top") => {
            let state = state.lock().unwrap_or_else(PoisonError::into_inner);
            match serde_json::to_string(&*state) {
                Ok(json) => (200, "application/json", json),
                Err(error) => (500, "text/plain", error.to_string()),
            }
        }
        (Method::Get, _) => (404, "text/plain", "not found\n".into()),
        _ => (405, "text/plain", "only GET\n".into()),
    };
    let mut response = Response::from_string(body).with_status_code(status);
    for header in [
        header("Content-Type", content_type),
        header("Cache-Control", "no-store"),
    ]
    .into_iter()
    .flatten()
    {
        response.add_header(header);
    }
    // A client that went away needs no answer.
    let _ = request.respond(response);
}
