//! The Prometheus text format, one sample line at a time: the one parser of it, shared by
//! [`super::stats`] and the end-to-end tests (as [`crate::PrometheusSample`]).

/// One sample line of the Prometheus text format.
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// The sample on `line`; `None` for comments, blank and broken lines.
    pub fn parse(line: &'a str) -> Option<Sample<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
        let (name, mut rest) = line.split_at(name_end);
        let mut labels = Vec::new();
        if let Some(after_brace) = rest.strip_prefix('{') {
            let (parsed, after_labels) = parse_labels(after_brace)?;
            labels = parsed;
            rest = after_labels;
        }
        // A timestamp may follow the value.
        let value = rest.split_whitespace().next()?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().ok()?,
        };
        Some(Sample {
            name,
            labels,
            value,
        })
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| *label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Parses `a="x",b="y"}` and returns the labels and what follows the closing brace.
#[allow(clippy::type_complexity)]
fn parse_labels(text: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after_name) = rest.split_once('=')?;
        let mut chars = after_name.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (index, '"') => break index,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, other) => value.push(other),
            }
        };
        labels.push((name.trim(), value));
        rest = after_name.get(end + 2..)?.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}
