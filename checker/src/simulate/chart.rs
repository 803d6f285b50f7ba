//! The chart of a run: shares and error ratios per version over time, drawn by gnuplot.

use super::report::share;
use std::path::Path;
use std::process::Command;
use traffic_split::sim::Run;

/// Shares (lines) and error ratios (dashed) per version over time, by gnuplot. The file name
/// never enters gnuplot's script: gnuplot writes the PNG to its standard output, and the file
/// is written here.
pub(super) fn draw_png(path: &Path, result: &Run) -> Result<(), String> {
    let png = render_png(&gnuplot_script(result)?)?;
    std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
}

/// The script that draws the chart to standard output.
fn gnuplot_script(result: &Run) -> Result<String, String> {
    let mut series: Vec<(String, String)> = Vec::new();
    for row in &result.rows {
        let total: u64 = row.versions.iter().map(|v| v.requests).sum();
        for version in &row.versions {
            let name = format!("{} {}", row.route, version.version);
            let line = format!(
                "{} {:.3} {:.3}\n",
                row.until_ms as f64 / 60_000.0,
                share(version.requests, total),
                share(version.errors, version.requests)
            );
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, data)) => data.push_str(&line),
                None => series.push((name, line)),
            }
        }
    }
    let mut data = String::new();
    let mut plots = Vec::new();
    for (index, (name, lines)) in series.iter().enumerate() {
        data.push_str(lines);
        data.push_str("\n\n");
        let title = gnuplot_string(name);
        plots.push(format!(
            "$d index {index} using 1:2 with lines lw 2 title '{title} share'"
        ));
        plots.push(format!(
            "$d index {index} using 1:3 with lines dt 2 title '{title} errors'"
        ));
    }
    if plots.is_empty() {
        return Err("nothing to draw: no periods".to_owned());
    }
    Ok(format!(
        "set terminal png size 1000,500\n\
         set xlabel 'minutes'\nset ylabel '%'\nset yrange [0:100]\nset key outside\n\
         $d << EOD\n{data}EOD\nplot {}\n",
        plots.join(", ")
    ))
}

/// Text inside a single-quoted gnuplot string: a quote doubled (gnuplot's one escape there),
/// control characters (a newline would end the command) as spaces. Route and version names
/// come from the config.
fn gnuplot_string(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('\'', "''")
}

/// Runs gnuplot on the script; the PNG it wrote to its standard output.
fn render_png(script: &str) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new("gnuplot")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running gnuplot (`make apt-tools` installs it): {e}"))?;
    // Written whole, then closed, before reading: the script is small, and gnuplot reads all
    // of it before it draws.
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(script.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("gnuplot: {e}"))?;
    if let Some(Err(e)) = written {
        return Err(format!("gnuplot: {e}"));
    }
    if !output.status.success() || !output.stdout.starts_with(b"\x89PNG") {
        return Err(format!(
            "gnuplot failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output.stdout)
}
