//! The table of a route: its columns (what each cell shows, and how alarming a value is) and
//! how many of them fit a width, the share bars shrinking first. [`super::render`] draws it.

use super::frame::{Frame, VersionRow, Window};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;
/// The narrowest and widest share bars, in cells.
const MIN_BAR: u16 = 5;
const MAX_BAR: u16 = 30;
/// A share bar's percentage after it: ` 100.0%`.
pub(super) const PERCENT_WIDTH: u16 = 7;
pub(super) const COLUMN_SPACING: u16 = 1;
pub(super) const FILLED: &str = "█";
const EMPTY: &str = "░";

/// One column of a route's table.
pub(super) struct Column {
    pub header: String,
    pub width: u16,
    /// Numbers are right-aligned, and so is their header.
    pub numeric: bool,
    pub cell: fn(&VersionRow, u16) -> Cell<'static>,
}

fn number(value: u64) -> Cell<'static> {
    Cell::from(Line::from(value.to_string()).right_aligned())
}

/// A count that is bad news when not zero.
fn alarming(value: u64) -> Cell<'static> {
    let line = Line::from(value.to_string()).right_aligned();
    if value > 0 {
        Cell::from(line.style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)))
    } else {
        Cell::from(line)
    }
}

/// A count the filter may not keep (in its `requests` metrics mode): `-` then.
fn count(value: Option<u64>, cell: fn(u64) -> Cell<'static>) -> Cell<'static> {
    value.map_or_else(|| optional(None), cell)
}

fn optional(value: Option<String>) -> Cell<'static> {
    Cell::from(Line::from(value.unwrap_or_else(|| "-".into())).right_aligned())
}

fn milliseconds(value: Option<f64>) -> Cell<'static> {
    optional(value.map(|ms| {
        if ms < 10.0 {
            format!("{ms:.2}ms")
        } else {
            format!("{ms:.0}ms")
        }
    }))
}

/// `share` as a bar of `width` cells and a percentage; a missing share is an empty bar.
pub fn share_bar(share: Option<f64>, width: u16) -> Line<'static> {
    let filled = share
        .map(|share| (share.clamp(0.0, 1.0) * f64::from(width)).round() as usize)
        .unwrap_or_default();
    let empty = usize::from(width).saturating_sub(filled);
    let percent = match share {
        Some(share) => format!("{:>6.1}%", share * 100.0),
        None => format!("{:>7}", "-"),
    };
    Line::from(vec![
        Span::styled(FILLED.repeat(filled), Style::new().fg(Color::Cyan)),
        Span::styled(EMPTY.repeat(empty), Style::new().fg(Color::DarkGray)),
        Span::raw(percent),
    ])
}

fn last(row: &VersionRow) -> Option<&Window> {
    row.last_interval.as_ref()
}

/// How bad an error ratio is: none, a little (under 5%), bad (under 50%), or most requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    None,
    Low,
    High,
    Critical,
}

impl Severity {
    pub fn of_ratio(ratio: f64) -> Severity {
        if ratio <= 0.0 {
            Severity::None
        } else if ratio < 0.05 {
            Severity::Low
        } else if ratio < 0.5 {
            Severity::High
        } else {
            Severity::Critical
        }
    }

    pub(super) fn style(self) -> Style {
        match self {
            Severity::None => Style::new(),
            Severity::Low => Style::new().fg(Color::Yellow),
            Severity::High => Style::new().fg(Color::LightRed),
            Severity::Critical => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }
}

/// The window health is judged on: the last interval when it had requests, else since start.
fn recent(row: &VersionRow) -> &Window {
    match last(row) {
        Some(window) if window.requests > 0 => window,
        _ => &row.since_start,
    }
}

fn error_ratio_cell(row: &VersionRow) -> Cell<'static> {
    match recent(row).error_ratio {
        Some(ratio) => Cell::from(
            Line::from(format!("{:.1}%", ratio * 100.0))
                .right_aligned()
                .style(Severity::of_ratio(ratio).style()),
        ),
        None => optional(None),
    }
}

/// The p99 of the last interval, red when at or over the version's deadline.
fn p99_cell(row: &VersionRow) -> Cell<'static> {
    let p99 = last(row).and_then(|w| w.p99_ms);
    let cell = milliseconds(p99);
    match (p99, row.deadline_ms) {
        (Some(p99), Some(deadline)) if p99 >= deadline as f64 => {
            cell.style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
        }
        _ => cell,
    }
}

/// `1h02m`, `4m10s`, `35s`.
pub fn span(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

fn guard_cell(row: &VersionRow) -> Cell<'static> {
    let Some(guard) = &row.guard else {
        return Cell::from("-");
    };
    let trips = guard
        .trips
        .filter(|trips| *trips > 0)
        .map(|trips| format!(" {trips}x"))
        .unwrap_or_default();
    match guard.ejected {
        Some(true) if guard.latched == Some(true) => {
            Cell::from(format!("OUT latched{trips}")).red().bold()
        }
        Some(true) => {
            let left = guard
                .ejected_left_seconds
                .map(|left| format!(" {} left", span(left)))
                .unwrap_or_default();
            Cell::from(format!("OUT{left}{trips}")).red().bold()
        }
        Some(false) => Cell::from(format!("ok{trips}")).green(),
        None => Cell::from(format!("?{trips}")),
    }
}

/// The columns, health first; the share bars last, so a narrow terminal loses them first.
pub(super) fn columns(frame: &Frame, version_width: u16) -> Vec<Column> {
    let mut columns = vec![
        Column {
            header: "version".into(),
            numeric: false,
            width: version_width,
            cell: |row, _| Cell::from(row.version.clone()).bold(),
        },
        Column {
            header: "weight".into(),
            numeric: false,
            width: 9,
            cell: |row, _| match (row.weight, row.weight_share) {
                (Some(weight), Some(share)) => {
                    Cell::from(format!("{weight} ({:.0}%)", share * 100.0))
                }
                (Some(weight), None) => Cell::from(weight.to_string()),
                _ => Cell::from("unknown").dark_gray(),
            },
        },
        Column {
            header: "5xx%".into(),
            numeric: true,
            width: 6,
            cell: |row, _| error_ratio_cell(row),
        },
        Column {
            header: "timeouts".into(),
            numeric: true,
            width: 8,
            cell: |row, _| count(row.since_start.timeouts, alarming),
        },
        Column {
            header: "p99 now".into(),
            numeric: true,
            width: 8,
            cell: |row, _| p99_cell(row),
        },
        Column {
            header: "deadline".into(),
            numeric: true,
            width: 8,
            cell: |row, _| milliseconds(row.deadline_ms.map(|ms| ms as f64)),
        },
    ];
    if frame.guard_known {
        columns.push(Column {
            header: "guard".into(),
            numeric: false,
            width: 18,
            cell: |row, _| guard_cell(row),
        });
    }
    columns.extend([
        Column {
            header: "p50 now".into(),
            numeric: true,
            width: 8,
            cell: |row, _| milliseconds(last(row).and_then(|w| w.p50_ms)),
        },
        Column {
            header: "req/s".into(),
            numeric: true,
            width: 7,
            cell: |row, _| {
                optional(
                    last(row)
                        .and_then(|w| w.requests_per_second)
                        .map(|rate| format!("{rate:.1}")),
                )
            },
        },
        Column {
            header: "requests".into(),
            numeric: true,
            width: 8,
            cell: |row, _| number(row.since_start.requests),
        },
        Column {
            header: "2xx".into(),
            numeric: true,
            width: 7,
            cell: |row, _| count(row.since_start.responses.map(|r| r.success), number),
        },
        Column {
            header: "4xx".into(),
            numeric: true,
            width: 6,
            cell: |row, _| count(row.since_start.responses.map(|r| r.client_error), number),
        },
        Column {
            header: "5xx".into(),
            numeric: true,
            width: 7,
            cell: |row, _| count(row.since_start.responses.map(|r| r.server_error), alarming),
        },
        Column {
            header: "share now".into(),
            numeric: false,
            width: 0, // a bar: set from the room left
            cell: |row, bar| Cell::from(share_bar(last(row).and_then(|w| w.share), bar)),
        },
        Column {
            header: "share total".into(),
            numeric: false,
            width: 0,
            cell: |row, bar| Cell::from(share_bar(row.since_start.share, bar)),
        },
    ]);
    columns
}

/// The columns that fit in `width` and the bars' width: the bars go first (the last one
/// first), then columns from the right.
pub(super) fn fit(mut columns: Vec<Column>, width: u16) -> (Vec<Column>, u16) {
    loop {
        let bars = columns.iter().filter(|column| column.width == 0).count() as u16;
        let fixed: u16 = columns
            .iter()
            .map(|column| column.width + COLUMN_SPACING)
            .sum::<u16>()
            .saturating_sub(COLUMN_SPACING)
            + bars * PERCENT_WIDTH;
        if bars > 0 {
            let bar = width
                .saturating_sub(fixed)
                .checked_div(bars)
                .map_or(0, |bar| bar.min(MAX_BAR));
            if fixed <= width && bar >= MIN_BAR {
                return (columns, bar);
            }
            if let Some(last_bar) = columns.iter().rposition(|column| column.width == 0) {
                columns.remove(last_bar);
            }
            continue;
        }
        if fixed <= width || columns.len() <= 2 {
            return (columns, MIN_BAR);
        }
        columns.pop();
    }
}

/// The width of the share bars when a frame is drawn `width` cells wide.
pub fn bar_width(frame: &Frame, width: u16) -> u16 {
    fit(columns(frame, version_width(frame)), width).1
}

pub(super) fn version_width(frame: &Frame) -> u16 {
    frame
        .routes
        .iter()
        .flat_map(|route| &route.versions)
        .map(|row| row.version.chars().count())
        .chain(["version".len()])
        .max()
        .and_then(|width| u16::try_from(width).ok())
        .unwrap_or(u16::MAX)
        .min(24)
}
