//! Drawing a [`Frame`] with ratatui: a heading per route and a row per version, the shares as
//! bars. The same drawing serves the live terminal and `--once`, which prints the buffer.

use super::frame::{Frame, RolloutState, RouteRows, VersionRow, Window};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, Widget};

/// The narrowest and widest share bars, in cells.
const MIN_BAR: u16 = 5;
const MAX_BAR: u16 = 30;
/// A share bar's percentage after it: ` 100.0%`.
const PERCENT_WIDTH: u16 = 7;
const COLUMN_SPACING: u16 = 1;
const FILLED: &str = "█";
const EMPTY: &str = "░";

/// What the live view shows besides the frame.
pub struct View<'a> {
    pub frame: &'a Frame,
    /// Where the stats come from: the admin URL.
    pub source: &'a str,
    /// The last error reading them, shown until a reading succeeds.
    pub error: Option<&'a str>,
    /// Whether to tell the user how to quit (not in `--once` output).
    pub interactive: bool,
}

/// One column of a route's table.
struct Column {
    header: String,
    width: u16,
    /// Numbers are right-aligned, and so is their header.
    numeric: bool,
    cell: fn(&VersionRow, u16) -> Cell<'static>,
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

    fn style(self) -> Style {
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
fn columns(frame: &Frame, version_width: u16) -> Vec<Column> {
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
fn fit(mut columns: Vec<Column>, width: u16) -> (Vec<Column>, u16) {
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

fn version_width(frame: &Frame) -> u16 {
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

fn route_heading(route: &RouteRows, frame: &Frame) -> Line<'static> {
    let mut heading = vec![
        Span::styled(
            format!("route {}", route.route),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  {} requests", route.requests)),
    ];
    if let (Some(seconds), Some(requests)) = (frame.interval_seconds, route.last_interval_requests)
    {
        if seconds > 0.0 {
            heading.push(Span::raw(format!(
                ", {:.1} req/s now",
                requests as f64 / seconds
            )));
        }
    }
    if let Some(rollout) = &route.rollout {
        heading.push(Span::styled(
            rollout_text(rollout),
            Style::new().fg(Color::Cyan),
        ));
    }
    Line::from(heading)
}

/// Where a rollout stands: `rollout v2: step 2/4 at 10%, next 50% in 2m10s`, or halted, at a
/// gate, finished.
fn rollout_text(rollout: &RolloutState) -> String {
    let (version, share) = (&rollout.version, &rollout.share_percent);
    let step = format!("step {}/{}", rollout.step, rollout.steps);
    if rollout.halted {
        return format!("  rollout {version}: HALTED at {step} (a trip), until a push changes it");
    }
    match rollout.phase {
        "not started" => format!(
            "  rollout {version}: not started, step 1 in {}",
            span(rollout.next_in_seconds.unwrap_or(0.0))
        ),
        "finished" => format!("  rollout {version}: {step} at {share}%, finished"),
        "gate" => format!("  rollout {version}: {step} at {share}%, gate: held until a push"),
        _ => {
            let next = match (&rollout.next_share_percent, rollout.next_in_seconds) {
                (Some(next), Some(seconds)) => format!(", next {next}% in {}", span(seconds)),
                _ => String::new(),
            };
            format!("  rollout {version}: {step} at {share}%{next}")
        }
    }
}

/// The lines above the routes.
fn header_lines(view: &View) -> Vec<Line<'static>> {
    let mut title = vec![
        Span::styled(
            "traffic-split top",
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  {}", view.source)),
    ];
    match view.frame.interval_seconds {
        Some(seconds) => title.push(Span::raw(format!("  now = the last {seconds:.1}s"))),
        None => title.push(Span::raw("  now = (waiting for a second reading)")),
    }
    if view.interactive {
        title.push(Span::styled("  q quits", Style::new().fg(Color::DarkGray)));
    }
    let mut lines = vec![Line::from(title)];
    if let Some(error) = view.error {
        lines.push(Line::from(Span::styled(
            error.to_string(),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )));
    }
    if !view.frame.weights_known {
        lines.push(Line::from(Span::styled(
            "weights unknown: Envoy shows no traffic_split_weight (a module older than the weight gauge?)",
            Style::new().fg(Color::DarkGray),
        )));
    }
    lines
}

fn footer_lines(view: &View) -> Vec<Line<'static>> {
    let frame = view.frame;
    let mut lines = Vec::new();
    // With Envoy out of reach the error above says all; hints about the filter would mislead.
    if view.error.is_some() && frame.routes.is_empty() {
        return lines;
    }
    if frame.routes.is_empty() {
        lines.push(Line::from(
            "no traffic-split stats with route and version labels: is the filter loaded,",
        ));
        lines.push(Line::from(
            "and are the stats_tags of docs/metrics.md in Envoy's bootstrap? (try --stats json)",
        ));
    }
    let totals: Vec<String> = [
        ("unmatched requests", frame.unmatched),
        ("host errors", frame.host_errors),
    ]
    .into_iter()
    .filter_map(|(name, count)| Some(format!("{name}: {}", count?)))
    .collect();
    if !totals.is_empty() {
        lines.push(Line::from(totals.join("   ")));
    }
    lines
}

/// How many lines the whole view takes.
pub fn height(view: &View) -> u16 {
    let routes: usize = view
        .frame
        .routes
        .iter()
        .map(|route| 3 + route.versions.len())
        .sum();
    let lines = header_lines(view).len() + routes + 1 + footer_lines(view).len();
    u16::try_from(lines).unwrap_or(u16::MAX)
}

impl Widget for View<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let mut y = area.y;
        let bottom = area.bottom();
        let line = |line: Line<'static>, buf: &mut Buffer, y: &mut u16| {
            if *y < bottom {
                line.render(Rect::new(area.x, *y, area.width, 1), buf);
                *y += 1;
            }
        };
        for header in header_lines(&self) {
            line(header, buf, &mut y);
        }
        let (columns, bar) = fit(columns(self.frame, version_width(self.frame)), area.width);
        let widths: Vec<Constraint> = columns
            .iter()
            .map(|column| match column.width {
                0 => Constraint::Length(bar + PERCENT_WIDTH),
                width => Constraint::Length(width),
            })
            .collect();
        for route in &self.frame.routes {
            y = y.saturating_add(1).min(bottom);
            line(route_heading(route, self.frame), buf, &mut y);
            let header = Row::new(columns.iter().map(|column| {
                let title = Line::from(column.header.clone());
                let title = if column.numeric {
                    title.right_aligned()
                } else {
                    title
                };
                Cell::from(title).style(Style::new().fg(Color::DarkGray))
            }));
            let rows = route
                .versions
                .iter()
                .map(|row| Row::new(columns.iter().map(|column| (column.cell)(row, bar))));
            let table_height = u16::try_from(route.versions.len() + 1).unwrap_or(u16::MAX);
            let table_area = Rect::new(
                area.x,
                y,
                area.width,
                table_height.min(bottom.saturating_sub(y)),
            );
            Table::new(rows, widths.clone())
                .header(header)
                .column_spacing(COLUMN_SPACING)
                .render(table_area, buf);
            y = y.saturating_add(table_height).min(bottom);
        }
        y = y.saturating_add(1).min(bottom);
        for footer in footer_lines(&self) {
            line(footer, buf, &mut y);
        }
    }
}

/// The view as plain text, `width` cells wide: what `--once` prints.
pub fn to_text(view: View, width: u16) -> String {
    let area = Rect::new(0, 0, width, height(&view));
    let mut buffer = Buffer::empty(area);
    view.render(area, &mut buffer);
    buffer_lines(&buffer).join("\n") + "\n"
}

/// The buffer's rows, trailing blanks removed.
pub fn buffer_lines(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (area.top()..area.bottom())
        .map(|y| {
            let line: String = (area.left()..area.right())
                .filter_map(|x| buffer.cell((x, y)).map(|cell| cell.symbol()))
                .collect();
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::frame::{Guard, Responses, RolloutState};

    fn row(version: &str, total: u64, share: f64, now_share: f64) -> VersionRow {
        VersionRow {
            version: version.into(),
            weight: None,
            weight_share: None,
            since_start: Window {
                requests: total,
                share: Some(share),
                responses: Some(Responses {
                    success: total,
                    ..Responses::default()
                }),
                timeouts: Some(0),
                ..Window::default()
            },
            last_interval: Some(Window {
                requests: 10,
                share: Some(now_share),
                requests_per_second: Some(10.0),
                p50_ms: Some(0.25),
                p99_ms: Some(4.96),
                ..Window::default()
            }),
            guard: None,
            deadline_ms: Some(2),
        }
    }

    fn frame() -> Frame {
        Frame {
            interval_seconds: Some(1.0),
            routes: vec![RouteRows {
                route: "hello".into(),
                requests: 1000,
                last_interval_requests: Some(20),
                versions: vec![row("v1", 700, 0.7, 0.5), row("v2", 300, 0.3, 0.5)],
                rollout: None,
            }],
            unmatched: Some(0),
            host_errors: Some(0),
            weights_known: false,
            guard_known: false,
            config_known: true,
        }
    }

    fn draw(frame: &Frame, width: u16, height: u16) -> Vec<String> {
        let area = Rect::new(0, 0, width, height);
        let mut buffer = Buffer::empty(area);
        View {
            frame,
            source: "http://127.0.0.1:9901",
            error: None,
            interactive: true,
        }
        .render(area, &mut buffer);
        buffer_lines(&buffer)
    }

    fn line_of<'a>(lines: &'a [String], start: &str) -> &'a str {
        lines
            .iter()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no line starts with {start:?}:\n{}", lines.join("\n")))
    }

    /// The runs of filled bar cells on a line, in order.
    fn bars(line: &str) -> Vec<usize> {
        let mut runs = Vec::new();
        let mut run = 0;
        for c in line.chars().chain([' ']) {
            if c.to_string() == FILLED {
                run += 1;
            } else if run > 0 {
                runs.push(run);
                run = 0;
            }
        }
        runs
    }

    #[test]
    fn one_row_per_version_under_its_route_heading() {
        let lines = draw(&frame(), 120, 12);
        let heading = lines
            .iter()
            .position(|line| line.starts_with("route hello  1000 requests, 20.0 req/s now"))
            .unwrap_or_else(|| panic!("{}", lines.join("\n")));
        assert!(
            lines[heading + 1].starts_with("version weight"),
            "{}",
            lines.join("\n")
        );
        assert!(lines[heading + 2].starts_with("v1 "));
        assert!(lines[heading + 3].starts_with("v2 "));
        assert!(line_of(&lines, "v1 ").contains("unknown"));
        assert!(
            lines[0].starts_with("traffic-split top  http://127.0.0.1:9901  now = the last 1.0s")
        );
        assert!(lines.iter().any(|line| line.starts_with("weights unknown")));
        assert!(!lines.iter().any(|line| line.contains("guard")));
    }

    #[test]
    fn bars_are_proportional_to_the_shares() {
        for width in [140, 160, 200] {
            let frame = frame();
            let bar = usize::from(bar_width(&frame, width));
            let lines = draw(&frame, width, 12);
            let v1 = bars(line_of(&lines, "v1 "));
            let v2 = bars(line_of(&lines, "v2 "));
            // share now (50%, 50%), then share total (70%, 30%).
            let half = (bar as f64 * 0.5).round() as usize;
            assert_eq!(
                v1,
                [half, (bar as f64 * 0.7).round() as usize],
                "width {width}"
            );
            assert_eq!(
                v2,
                [half, (bar as f64 * 0.3).round() as usize],
                "width {width}"
            );
            assert!(line_of(&lines, "v1 ").contains(" 70.0%"));
            assert!(line_of(&lines, "v2 ").contains(" 30.0%"));
            if width >= 120 {
                assert!(bar >= 10, "width {width}: bars of {bar}");
            }
        }
    }

    #[test]
    fn counts_and_latencies_are_in_their_columns() {
        let lines = draw(&frame(), 140, 12);
        // The header is ASCII: its byte positions are cell positions.
        let header = line_of(&lines, "version");
        let v1: Vec<char> = line_of(&lines, "v1 ").chars().collect();
        // A right-aligned number ends where its header ends.
        for (column, value) in [
            ("2xx", "700"),
            ("requests", "700"),
            ("p99 now", "4.96ms"),
            ("p50 now", "0.25ms"),
        ] {
            let end = header.find(column).expect(column) + column.len();
            let cells: String = v1[end - value.len()..end].iter().collect();
            assert_eq!(cells, value, "{column}:\n{header}\n{v1:?}");
        }
    }

    #[test]
    fn counts_the_filter_does_not_keep_are_dashes() {
        let mut frame = frame();
        for row in &mut frame.routes[0].versions {
            row.since_start.responses = None;
            row.since_start.timeouts = None;
        }
        let lines = draw(&frame, 140, 12);
        let header = line_of(&lines, "version");
        let v1: Vec<char> = line_of(&lines, "v1 ").chars().collect();
        for column in ["2xx", "4xx", "5xx", "timeouts"] {
            let end = header.rfind(column).expect(column) + column.len();
            assert_eq!(v1[end - 1], '-', "{column}: {}", lines.join("\n"));
        }
    }

    /// v2 failing: every response a 5xx, every request cut, p99 over the 2 ms deadline.
    fn failing_v2() -> Frame {
        let mut frame = frame();
        let v2 = &mut frame.routes[0].versions[1];
        v2.since_start.responses = Some(Responses {
            server_error: 300,
            ..Responses::default()
        });
        v2.since_start.error_ratio = Some(1.0);
        v2.since_start.timeouts = Some(300);
        if let Some(last) = v2.last_interval.as_mut() {
            last.error_ratio = Some(0.19);
        }
        frame
    }

    #[test]
    fn at_80_columns_health_stays_and_the_bars_go_first() {
        let lines = draw(&failing_v2(), 80, 12);
        let header = line_of(&lines, "version");
        for kept in [
            "weight", "5xx%", "timeouts", "p99 now", "deadline", "p50 now",
        ] {
            assert!(header.contains(kept), "{kept}: {header}");
        }
        assert!(!header.contains("share"), "{header}");
        let v2 = line_of(&lines, "v2 ");
        assert!(v2.contains("19.0%") && v2.contains(" 300 "), "{v2}");
        assert!(v2.contains("4.96ms") && v2.contains("2.00ms"), "{v2}");
        assert!(lines.iter().all(|line| line.chars().count() <= 80));
    }

    #[test]
    fn at_160_columns_everything_fits_with_the_bars_last() {
        let lines = draw(&failing_v2(), 160, 12);
        let header = line_of(&lines, "version");
        let position = |column: &str| header.find(column).unwrap_or(usize::MAX);
        assert!(position("5xx%") < position("requests"), "{header}");
        assert!(position("p99 now") < position("share now"), "{header}");
        assert!(position("share now") < position("share total"), "{header}");
        assert!(header.contains("share total"), "{header}");
        assert_eq!(bars(line_of(&lines, "v1 ")).len(), 2);
        assert!(lines.iter().all(|line| line.chars().count() <= 160));
    }

    #[test]
    fn error_ratios_are_coloured_by_severity() {
        assert_eq!(Severity::of_ratio(0.0), Severity::None);
        assert_eq!(Severity::of_ratio(0.01), Severity::Low);
        assert_eq!(Severity::of_ratio(0.19), Severity::High);
        assert_eq!(Severity::of_ratio(1.0), Severity::Critical);
        assert_ne!(Severity::High.style(), Severity::Critical.style());
    }

    #[test]
    fn weights_and_guard_are_shown_when_exported() {
        let mut frame = frame();
        frame.weights_known = true;
        frame.guard_known = true;
        let rows = &mut frame.routes[0].versions;
        rows[0].weight = Some(70.0);
        rows[0].weight_share = Some(0.7);
        rows[0].guard = Some(Guard {
            ejected: Some(false),
            trips: Some(0),
            ..Guard::default()
        });
        rows[1].guard = Some(Guard {
            ejected: Some(true),
            trips: Some(2),
            cooldown_seconds: Some(120.0),
            ejected_left_seconds: Some(100.0),
            ..Guard::default()
        });
        let lines = draw(&frame, 160, 12);
        assert!(line_of(&lines, "version").contains("guard"));
        assert!(line_of(&lines, "v1 ").contains("70 (70%)"));
        assert!(line_of(&lines, "v1 ").contains(" ok "));
        assert!(line_of(&lines, "v2 ").contains("OUT 1m40s left 2x"));
        assert!(!lines.iter().any(|line| line.starts_with("weights unknown")));
        // A halted rollout has no cooldown left to show.
        frame.routes[0].versions[1].guard = Some(Guard {
            ejected: Some(true),
            latched: Some(true),
            trips: Some(1),
            ..Guard::default()
        });
        let lines = draw(&frame, 160, 12);
        assert!(line_of(&lines, "v2 ").contains("OUT latched 1x"));
    }

    #[test]
    fn the_route_heading_says_where_the_rollout_stands() {
        let mut frame = frame();
        frame.routes[0].rollout = Some(RolloutState {
            version: "v2".into(),
            step: 2,
            steps: 4,
            phase: "holding",
            share_percent: "10".into(),
            next_step: Some(3),
            next_share_percent: Some("50".into()),
            next_in_seconds: Some(130.0),
            halted: false,
        });
        let lines = draw(&frame, 120, 12);
        assert!(
            line_of(&lines, "route hello")
                .ends_with("rollout v2: step 2/4 at 10%, next 50% in 2m10s"),
            "{lines:?}"
        );
        if let Some(rollout) = frame.routes[0].rollout.as_mut() {
            rollout.phase = "gate";
        }
        let lines = draw(&frame, 120, 12);
        assert!(line_of(&lines, "route hello")
            .ends_with("rollout v2: step 2/4 at 10%, gate: held until a push"));
        if let Some(rollout) = frame.routes[0].rollout.as_mut() {
            rollout.halted = true;
        }
        let lines = draw(&frame, 120, 12);
        assert!(line_of(&lines, "route hello")
            .ends_with("rollout v2: HALTED at step 2/4 (a trip), until a push changes it"));
    }

    #[test]
    fn a_small_terminal_gets_what_fits_without_panicking() {
        for (width, height) in [(0, 0), (1, 1), (10, 3), (40, 5), (200, 2)] {
            let _ = draw(&frame(), width, height);
        }
        let empty = Frame::default();
        let text = to_text(
            View {
                frame: &empty,
                source: "x",
                error: Some("connection refused"),
                interactive: false,
            },
            100,
        );
        assert!(text.contains("connection refused"), "{text}");
        // Envoy out of reach: that one message, no hints about the filter.
        assert!(!text.contains("no traffic-split stats"), "{text}");
    }

    #[test]
    fn text_has_every_line_of_the_view() {
        let frame = frame();
        let view = View {
            frame: &frame,
            source: "x",
            error: None,
            interactive: false,
        };
        let text = to_text(view, 120);
        assert!(text.contains("\nv2 "), "{text}");
        assert!(
            text.ends_with("unmatched requests: 0   host errors: 0\n"),
            "{text}"
        );
        assert!(!text.contains("q quits"));
    }
}
