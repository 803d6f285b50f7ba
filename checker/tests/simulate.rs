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

/// A path in the calling test's own scratch folder: tests run in parallel, and one writing
/// `rollout.json` while another read it was a flaky failure.
fn scratch(name: &str) -> PathBuf {
    let test = std::thread::current()
        .name()
        .unwrap_or("main")
        .replace("::", "-");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("simulate")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn simulate(args: &[&str]) -> Output {
    simulate_config("rollout.json", ROLLOUT, args)
}

/// Runs `traffic-split simulate` on `config`, written to a scratch file `name`.
fn simulate_config(name: &str, config: &str, args: &[&str]) -> Output {
    let path = scratch(name);
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_traffic-split"))
        .arg("simulate")
        .arg(&path)
        .args(args)
        .output()
        .expect("run traffic-split simulate")
}

/// The table's rows of one version: its columns, split at white space.
fn rows_of(text: &str, route: &str, version: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|columns| columns.len() > 3 && columns[1] == route && columns[2] == version)
        .collect()
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
    // period route version in-force sent requests errors timeouts retries trips returns
    // probes state
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
    assert_eq!(&minute_3_v2[9], "1", "one trip in minute 3:\n{text}");
    assert_eq!(minute_3_v2[12], "halted", "a halted rollout:\n{text}");
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

/// The seed's experiment, README's config: `--path` left out takes the route's prefix, and
/// Envoy's 2 ms deadline cuts every request of v2 answering in 5 ms, none of v1.
#[test]
fn the_seeds_experiment_shows_every_v2_request_as_a_timeout() {
    let readme = r#"{ "routes": [ { "name": "hello",
        "match": { "prefix": "/hello", "methods": ["GET"] },
        "destinations": [
          { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
          { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ],
        "timeout": "0.002s" } ] }"#;
    let output = simulate_config(
        "seed.json",
        readme,
        &["--latency", "v2=5ms", "--for", "2m", "--workers", "1"],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("requests GET /hello"),
        "{text}"
    );
    // weight share requests errors timeouts retries
    for v2 in rows_of(&text, "hello", "v2") {
        assert_eq!(v2[5..9], ["1800", "100.0%", "100.0%", "0"], "{text}");
    }
    for v1 in rows_of(&text, "hello", "v1") {
        assert_eq!(v1[5..9], ["4200", "0.0%", "0.0%", "0"], "{text}");
    }
    let json = simulate_config(
        "seed.json",
        readme,
        &["--latency", "v2=5ms", "--for", "1m", "--json"],
    );
    let run: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let v2 = &run["periods"][0]["versions"][1];
    assert_eq!(
        (&v2["timeouts"], &v2["requests"]),
        (&v2["errors"], &v2["errors"])
    );
    assert_eq!(v2["timeouts"], 1800);
}

/// A route that matches on a header is reached with `--header`; a route no request reaches
/// is named in a warning.
#[test]
fn a_header_reaches_a_header_route_and_an_unreached_route_is_warned_of() {
    let config = r#"{ "routes": [
        { "name": "beta", "match": { "prefix": "/", "headers": [ { "name": "x-beta", "exact": "yes" } ] },
          "destinations": [ { "version": "v2", "weight": 1 } ] },
        { "name": "main", "match": { "prefix": "/" },
          "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;
    let without = simulate_config("header-routes.json", config, &["--for", "1m"]);
    assert_eq!(rows_of(&stdout(&without), "beta", "v2")[0][5], "0");
    let warnings = String::from_utf8_lossy(&without.stderr).into_owned();
    assert!(
        warnings.contains("warning: route \"beta\" got no request")
            && !warnings.contains("\"main\""),
        "{warnings}"
    );
    let with = simulate_config(
        "header-routes.json",
        config,
        &["--for", "1m", "--header", "X-Beta=yes"],
    );
    let text = stdout(&with);
    assert_eq!(rows_of(&text, "beta", "v2")[0][5], "6000", "{text}");
    let warnings = String::from_utf8_lossy(&with.stderr).into_owned();
    assert!(
        warnings.contains("route \"main\" got no request"),
        "{warnings}"
    );
    let pseudo = simulate_config("header-routes.json", config, &["--header", ":path=/x"]);
    assert_eq!(pseudo.status.code(), Some(2));
}

/// Without `--for`, the run lasts past where the last rollout settles by a period, so that
/// its last step shows.
#[test]
fn without_for_the_run_shows_the_end_of_a_long_rollout() {
    let two_hours = ROLLOUT
        .replace("\"hold\": \"1m\"", "\"hold\": \"10m\"")
        .replace("\"over\": \"9m\"", "\"over\": \"110m\"");
    let output = simulate_config(
        "two-hours.json",
        &two_hours,
        &["--every", "10m", "--rate", "2/s"],
    );
    let text = stdout(&output);
    assert!(text.contains("for 130m on"), "{text}");
    let last = rows_of(&text, "reviews", "v2").pop().unwrap();
    assert_eq!(
        (last[0].as_str(), last[3].as_str()),
        ("120m-130m", "100%"),
        "{text}"
    );
}

/// `--png` writes exactly the file named, whatever the name: it never reaches gnuplot's script
/// (a pipe, a newline and a quote were a shell command, a gnuplot command and a lost quote).
#[test]
fn png_writes_the_file_named_and_runs_nothing_a_hostile_name_says() {
    let config = scratch("rollout.json");
    std::fs::write(&config, ROLLOUT).unwrap();
    let dir = scratch("hostile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let names = [
        "|cat > x.png; id > PIPED.txt",
        "a\nsystem \"touch PWNED\"\nb.png",
        "it's.png",
    ];
    for name in names {
        let output = Command::new(env!("CARGO_BIN_EXE_traffic-split"))
            .current_dir(&dir)
            .arg("simulate")
            .arg(&config)
            .args(["--for", "2m", "--png", name])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{name:?}: {output:?}");
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name:?}");
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(files, expected, "only the named files, nothing a name ran");
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

/// Every `traffic-split simulate` command in README.md and docs/ runs as written (from a
/// folder beside the repository's examples/, so that a `--png` lands there), and prints the
/// table the page shows in the block right after it, if any.
#[test]
fn every_simulate_command_in_the_docs_runs_as_written_and_prints_what_the_page_shows() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = scratch("docs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(
        root.join("examples").canonicalize().unwrap(),
        dir.join("examples"),
    )
    .unwrap();
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            pages.push(path);
        }
    }
    let mut ran = 0;
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for (command, shown) in simulate_commands(&text) {
            let arguments = shell_words(command.strip_prefix("traffic-split simulate ").unwrap());
            let output = Command::new(env!("CARGO_BIN_EXE_traffic-split"))
                .current_dir(&dir)
                .arg("simulate")
                .args(&arguments)
                .output()
                .unwrap();
            assert_eq!(
                output.status.code(),
                Some(0),
                "{}: `{command}`: {output:?}",
                page.display()
            );
            if let Some(shown) = shown {
                assert_eq!(
                    stdout(&output),
                    shown,
                    "{}: `{command}` prints another table than the page shows",
                    page.display()
                );
            }
            ran += 1;
        }
    }
    assert!(ran >= 3, "only {ran} simulate commands found in the docs");
}

/// The `traffic-split simulate` commands of a page's `sh` blocks (continued lines joined), each
/// with the plain block right after its `sh` block, if there is one.
fn simulate_commands(text: &str) -> Vec<(String, Option<String>)> {
    let mut commands = Vec::new();
    for rest in text.split("```sh\n").skip(1) {
        let Some((block, after)) = rest.split_once("```\n") else {
            continue;
        };
        let shown = after
            .strip_prefix("\n```\n")
            .and_then(|next| next.split_once("```\n"))
            .map(|(shown, _)| shown.to_owned());
        let joined = block.replace("\\\n", " ");
        let found: Vec<String> = joined
            .lines()
            .map(|line| line.split(" #").next().unwrap_or(line).trim())
            .filter(|line| line.starts_with("traffic-split simulate "))
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let single = found.len() == 1;
        for command in found {
            commands.push((command, shown.clone().filter(|_| single)));
        }
    }
    commands
}

/// A command line's words; the docs quote nothing, so white space splits them.
fn shell_words(line: &str) -> Vec<String> {
    assert!(
        !line.contains(['\'', '"', '$', '`', '|', ';', '<', '>']),
        "a docs command the test cannot run without a shell: {line}"
    );
    line.split_whitespace().map(str::to_owned).collect()
}
