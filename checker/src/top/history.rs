//! The last minutes of shares and error ratios, for the web page's chart.

use super::frame::Frame;
use serde::Serialize;
use std::collections::VecDeque;

/// One version's numbers over one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionPoint {
    pub plugin: String,
    pub route: String,
    pub version: String,
    pub share: Option<f64>,
    pub error_ratio: Option<f64>,
}

/// All versions at the end of one interval; `time` in seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub time: f64,
    pub versions: Vec<VersionPoint>,
}

/// The points of the last `span` seconds, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    pub span_seconds: f64,
    pub points: VecDeque<Point>,
}

impl History {
    pub fn new(span_seconds: f64) -> History {
        History {
            span_seconds,
            points: VecDeque::new(),
        }
    }

    /// Adds the last interval of `frame`, which ended at `time`; a frame without an
    /// interval (the first reading) adds nothing. Points older than the span are dropped.
    pub fn record(&mut self, time: f64, frame: &Frame) {
        if frame.interval_seconds.is_none() {
            return;
        }
        let versions = frame
            .routes
            .iter()
            .flat_map(|route| {
                route.versions.iter().filter_map(|row| {
                    let interval = row.last_interval.as_ref()?;
                    Some(VersionPoint {
                        plugin: route.plugin.clone(),
                        route: route.route.clone(),
                        version: row.version.clone(),
                        share: interval.share,
                        error_ratio: interval.error_ratio,
                    })
                })
            })
            .collect();
        self.points.push_back(Point { time, versions });
        while self
            .points
            .front()
            .is_some_and(|oldest| oldest.time < time - self.span_seconds)
        {
            self.points.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::frame::{RouteRows, VersionRow, Window};

    fn frame(interval: Option<f64>, share: f64) -> Frame {
        Frame {
            interval_seconds: interval,
            routes: vec![RouteRows {
                plugin: "traffic-split".into(),
                route: "hello".into(),
                requests: 10,
                last_interval_requests: interval.map(|_| 10),
                versions: vec![VersionRow {
                    version: "v2".into(),
                    weight: None,
                    weight_share: None,
                    since_start: Window::default(),
                    last_interval: interval.map(|_| Window {
                        share: Some(share),
                        error_ratio: Some(1.0),
                        ..Window::default()
                    }),
                    guard: None,
                    deadline_ms: None,
                }],
                rollout: None,
            }],
            ..Frame::default()
        }
    }

    #[test]
    fn keeps_the_span_and_drops_older_points() {
        let mut history = History::new(60.0);
        history.record(0.0, &frame(None, 0.0));
        assert!(
            history.points.is_empty(),
            "the first reading has no interval"
        );
        for second in 1..=100 {
            history.record(f64::from(second), &frame(Some(1.0), 0.3));
        }
        assert_eq!(history.points.len(), 61);
        assert_eq!(history.points.front().map(|point| point.time), Some(40.0));
        let last = history.points.back().expect("points");
        assert_eq!(
            last.versions,
            [VersionPoint {
                plugin: "traffic-split".into(),
                route: "hello".into(),
                version: "v2".into(),
                share: Some(0.3),
                error_ratio: Some(1.0),
            }]
        );
    }
}
