//! `traffic-split simulate`: the table per period, the same run for the same seed, JSON, and
//! a PNG chart.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A guarded rollout, whose canary fails from minute 2: the guard halts it.
const ROLLOUT: &str = r#"{ "routes": [ { "name": "reviews",
    "guard": { "max_error_ratio": 0.05, "min_requests": 20, "window": "30s", "cooldown": "10m" },
    "rollout": { "version": "v2", "start": "2026-12-01T10:00:00Z",
                 "steps": [ { "share": 10, "hold": "1m" }, { "share": 100, "over": "9m" } ] },
    "destinations": [ { "version": "v1", "weight": 100 }, { "version": "v2" } ] } ] }"#;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("simulate");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn simulate(args: &[&str]) -> Output {
    let config = scratch("rollout.json");
    std::fs::write(&config, ROLLOUT).unwrap();
    Command::new(env!("CARGO_BIN_EXE_traffic-split"))
        .arg("simulate")
        .arg(&config)
        .args(args)
        .output()
        .expect("run traffic-split simulate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const FAILING_CANARY: &[&str] = &[
    "--rate",
    "50/s",
    "--for",
    "4m",
    "--workers",
    "2",
    "--fail",
    "v2=50%@2m..",
];

#[test]
fn the_table_shows_the_rollout_and_the_guard_halting_it_for_the_failing_canary() {
    let output = simulate(FAILING_CANARY);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("reviews")).collect();
    assert_eq!(rows.len(), 8, "two versions, four minutes:\n{text}");
    let columns = |row: &str| {
        row.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // period route version in-force sent requests errors trips returns probes state
    let minute_1_v2 = columns(rows[3]);
    assert_eq!(minute_1_v2[2], "v2");
    assert_ne!(
        minute_1_v2[5], "0",
        "the rollout gives v2 requests:\n{text}"
    );
    assert_eq!(
        columns(rows[1])[3],
        "10%",
        "v2's share in force at minute 1:\n{text}"
    );
    let minute_3_v2 = columns(rows[5]);
    assert_eq!(&minute_3_v2[7], "1", "one trip in minute 3:\n{text}");
    assert_eq!(minute_3_v2[10], "halted", "a halted rollout:\n{text}");
    assert_eq!(minute_3_v2[3], "0%", "halted:\n{text}");
    assert_eq!(columns(rows[4])[3], "100%", "v1 has the route:\n{text}");
    assert!(text.starts_with(&format!(
        "{}: 50 requests/s for 4m on 2 worker(s)",
        scratch("rollout.json").display()
    )));
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let first = stdout(&simulate(&[FAILING_CANARY, &["--seed", "5"]].concat()));
    let again = stdout(&simulate(&[FAILING_CANARY, &["--seed", "5"]].concat()));
    let other = stdout(&simulate(&[FAILING_CANARY, &["--seed", "6"]].concat()));
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[test]
fn json_has_every_period_and_the_guards_events() {
    let output = simulate(&[FAILING_CANARY, &["--json"]].concat());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let periods = run["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 4);
    assert_eq!(periods[0]["route"], "reviews");
    assert_eq!(periods[0]["versions"][0]["version"], "v1");
    let events = run["events"].as_array().unwrap();
    assert_eq!(events[0]["event"], "tripped", "{events:?}");
    assert_eq!(events[0]["version"], "v2");
    assert_eq!(run["routed"], 50 * 240);
}

#[test]
fn png_draws_a_valid_png() {
    let png = scratch("rollout.png");
    let _ = std::fs::remove_file(&png);
    let output = simulate(&[FAILING_CANARY, &["--png", png.to_str().unwrap()]].concat());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 1_000);
}

#[test]
fn a_bad_option_is_a_usage_error_and_a_bad_config_an_error() {
    let output = simulate(&["--fail", "v2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected VERSION=VALUE"));
    let broken = scratch("broken.json");
    std::fs::write(
        &broken,
        r#"{ "routes": [ { "name": "r", "destinations": [] } ] }"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_traffic-split"))
        .args(["simulate", broken.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("error: "),
        "{}",
        stdout(&output)
    );
}

/// docs/simulate.md's example prints what the page shows.
#[test]
fn the_docs_example_prints_the_table_the_docs_show() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let page = std::fs::read_to_string(root.join("docs/simulate.md")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_traffic-split"))
        .current_dir(&root)
        .args([
            "simulate",
            "examples/configs/rollout-with-guard.json",
            "--rate",
            "100/s",
            "--for",
            "40m",
            "--every",
            "5m",
            "--fail",
            "v2=50%@20m..30m",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        page.contains("--rate 100/s --for 40m --every 5m --fail v2=50%@20m..30m"),
        "the page shows the command run here"
    );
    let table = stdout(&output);
    assert!(
        page.contains(&table),
        "docs/simulate.md shows another table than the command prints:\n{table}"
    );
}
