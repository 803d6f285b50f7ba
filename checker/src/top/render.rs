//! Drawing a [`Frame`] with ratatui: a heading per route and a row per version, the shares as
//! bars. The same drawing serves the live terminal and `--once`, which prints the buffer.

use super::columns::{columns, fit, span, version_width, COLUMN_SPACING, PERCENT_WIDTH};
use super::frame::{Frame, RolloutState, RouteRows};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, Widget};

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

fn route_heading(route: &RouteRows, frame: &Frame) -> Line<'static> {
    let mut heading = vec![
        Span::styled(
            match frame.several_plugins() {
                true => format!("route {} (plugin {})", route.route, route.plugin),
                false => format!("route {}", route.route),
            },
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
    if let Some(problem) = &frame.config_problem {
        lines.push(Line::from(format!(
            "no deadlines, rollouts or cooldowns shown: {problem}"
        )));
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
    use crate::top::columns::{bar_width, Severity, FILLED};
    use crate::top::frame::{Guard, Responses, RolloutState, VersionRow, Window};

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
                plugin: "traffic-split".into(),
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
            config_problem: None,
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
    fn routes_of_one_name_from_two_plugins_each_name_their_plugin() {
        let mut frame = frame();
        let mut other = frame.routes[0].clone();
        other.plugin = "payments_traffic-split".into();
        frame.routes.push(other);
        let lines = draw(&frame, 120, 24);
        for plugin in ["traffic-split", "payments_traffic-split"] {
            let heading = format!("route hello (plugin {plugin})  1000 requests");
            assert!(
                lines.iter().any(|line| line.starts_with(&heading)),
                "{}",
                lines.join("\n")
            );
        }
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
