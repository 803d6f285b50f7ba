//! The live view: draws a frame after each reading until the user quits. Raw mode and the
//! alternate screen are left on every way out: q, Esc, Ctrl-C (a key in raw mode), an error,
//! and a panic (ratatui's hook).

use super::admin::Poller;
use super::frame::Frame;
use super::render::View;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::DefaultTerminal;
use std::io;
use std::time::{Duration, Instant};

pub fn run(poller: Poller, interval: Duration, source: &str) -> io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = show(&mut terminal, poller, interval, source);
    ratatui::restore();
    result
}

fn show(
    terminal: &mut DefaultTerminal,
    mut poller: Poller,
    interval: Duration,
    source: &str,
) -> io::Result<()> {
    let mut frame = Frame::default();
    let mut error = None;
    let mut next_reading = Instant::now();
    loop {
        if Instant::now() >= next_reading {
            match poller.next_frame() {
                Ok(new_frame) => {
                    frame = new_frame;
                    error = None;
                }
                Err(message) => error = Some(message),
            }
            next_reading = (next_reading + interval).max(Instant::now());
        }
        terminal.draw(|screen| {
            screen.render_widget(
                View {
                    frame: &frame,
                    source,
                    error: error.as_deref(),
                    interactive: true,
                },
                screen.area(),
            )
        })?;
        // Wait for a key until the next reading is due; a resize just redraws.
        let wait = next_reading.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            if let Event::Key(key) = event::read()? {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                let quit = matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c;
                if key.kind == KeyEventKind::Press && quit {
                    return Ok(());
                }
            }
        }
    }
}
