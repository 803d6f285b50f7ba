//! `traffic-split top`: the split as Envoy's stats count it, per route and version, live in
//! the terminal, as JSON, or as a web page. It reads only Envoy's admin stats.
//!
//! The thinking is in pure modules, tested on their own:
//! - [`stats`]: Envoy's Prometheus or JSON stats into numbers per route and version;
//! - [`prometheus_text`]: the Prometheus text format's sample lines;
//! - [`histogram`]: latency quantiles from Envoy's cumulative buckets;
//! - [`frame`]: what one frame shows, from two readings (shares, rates, deltas);
//! - [`history`]: the last minutes of a frame's shares, for the web page's chart;
//! - [`columns`]: a route's table: what each column shows, and which fit a width;
//! - [`render`]: the frame drawn with ratatui into a buffer;
//! - [`options`]: the command line.
//!
//! The rest is thin: [`admin`] fetches the stats over HTTP, [`terminal`] runs the live view,
//! [`serve`] the web page.

pub mod admin;
pub mod columns;
pub mod frame;
pub mod histogram;
pub mod history;
pub mod options;
pub mod prometheus_text;
pub mod render;
pub mod serve;
pub mod stats;
pub mod terminal;

use admin::{Admin, Poller};
use options::{Options, Output, USAGE};
use render::View;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// How wide `--once` draws when stdout is not a terminal.
const TEXT_WIDTH: u16 = 160;

/// Runs `traffic-split top` with the arguments after `top`.
pub fn run(args: &[String]) -> ExitCode {
    let options = match options::parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("traffic-split top: {error}\n(traffic-split top --help lists the options)");
            return ExitCode::from(2);
        }
    };
    let poller = Poller::new(Admin::new(&options.admin, options.stats));
    let result = match options.output {
        Output::Once { json } => once(poller, &options, json),
        Output::JsonLines => json_lines(poller, &options),
        Output::Terminal => terminal::run(poller, options.interval, &options.admin)
            .map_err(|error| format!("terminal: {error}")),
        Output::Serve(address) => serve::serve(address, poller, options.interval, &options.admin),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("traffic-split top: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Two readings an interval apart, so the frame has rates like every live frame.
fn once(mut poller: Poller, options: &Options, json: bool) -> Result<(), String> {
    poller.next_frame()?;
    std::thread::sleep(options.interval);
    let frame = poller.next_frame()?;
    let text = if json {
        serde_json::to_string_pretty(&frame).map_err(|error| error.to_string())? + "\n"
    } else {
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|columns| columns.parse::<u16>().ok());
        let width = if std::io::stdout().is_terminal() {
            ratatui::crossterm::terminal::size().map_or(TEXT_WIDTH, |(columns, _)| columns)
        } else {
            columns.unwrap_or(TEXT_WIDTH)
        };
        let view = View {
            frame: &frame,
            source: &options.admin,
            error: None,
            interactive: false,
        };
        render::to_text(view, width)
    };
    // A reader that went away (`| head`) is not an error of ours.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(())
}

/// A JSON frame per line, every interval, until stopped or stdout closes.
fn json_lines(mut poller: Poller, options: &Options) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    loop {
        let frame = poller.next_frame()?;
        let line = serde_json::to_string(&frame).map_err(|error| error.to_string())?;
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
        std::thread::sleep(options.interval);
    }
}
