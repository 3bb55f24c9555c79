//! Logs that fit the ecosystem: `--log-level`, `RUST_LOG`, `log_format =
//! "json"`, and syslog priorities when stderr is systemd's journal stream.

use crate::util::{
    loopback, output, output_within, output_within_env, Background, ConfigDir, Daemon,
};

/// A `DISCOVERYD_*` variable that names no key: `run` warns about it, so
/// every run below has a warning to show.
const STRAY: (&str, &str) = ("DISCOVERYD_NOT_A_KEY", "1");
const STRAY_WARNING: &str = "environment variable names no config key";
/// An info line every run logs once it listens.
const LISTENING: &str = "listening for discovery requests";

fn run_args(config: &ConfigDir, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "run".to_owned(),
        "--config".to_owned(),
        config.path().to_str().unwrap().to_owned(),
        "--port".to_owned(),
        "0".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn spawn(config: &ConfigDir, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
    let args = run_args(config, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut daemon = Daemon::spawn_with_env(&args, env);
    daemon.listening_port();
    daemon
}

/// `reload`, which returns once the daemon has handled it: whatever the
/// reload logged is written by then.
fn reload(daemon: &Daemon) -> String {
    let pidfile = daemon.pidfile();
    let (code, out, err) = output_within(&["reload", "--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    out
}

#[test]
fn log_level_flag_outranks_the_file_and_shows_debug_lines() {
    // The file asks for errors only, and no logging at all.
    let config = ConfigDir::new(&loopback("logging = false\nlog_level = \"error\""));
    // Without the flag: a reload that changes nothing is logged at debug,
    // which the file's level hides, as it hides the info lines.
    let mut quiet = spawn(&config, &[], &[]);
    assert!(reload(&quiet).contains("unchanged"));
    let (code, err) = quiet.stop_and_collect_stderr();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("config unchanged"), "{err}");
    assert!(!err.contains(LISTENING), "{err}");
    // With `--log-level debug`: shown, with its level.
    let mut loud = spawn(&config, &["--log-level", "debug"], &[]);
    loud.expect_stderr(LISTENING);
    reload(&loud);
    let line = loud.expect_stderr("config unchanged");
    assert!(line.contains("DEBUG"), "{line}");
    assert!(loud.stdout_text().contains("logging:         on (debug)"));
}

#[test]
fn log_level_follows_a_reload() {
    let config = ConfigDir::new(&loopback("log_level = \"info\""));
    let mut daemon = spawn(&config, &[], &[]);
    daemon.expect_stderr(LISTENING);
    reload(&daemon);
    config.write(&loopback("log_level = \"debug\""));
    daemon.expect_stderr("config reloaded");
    // Now a reload that changes nothing is logged, at debug.
    reload(&daemon);
    let line = daemon.expect_stderr("config unchanged");
    assert!(line.contains("DEBUG"), "{line}");
    // Only after the change: the first unchanged reload was not shown.
    let err = daemon.stderr_text();
    let first = err.find("config unchanged").unwrap();
    assert!(first > err.find("config reloaded").unwrap(), "{err}");
}

#[test]
fn a_bad_log_level_flag_is_a_usage_error() {
    let (code, _, err) = output(&["run", "--port", "0", "--log-level", "loud"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--log-level") && err.contains("debug"),
        "{err}"
    );
}

#[test]
fn rust_log_outranks_log_level_and_the_flag() {
    let config = ConfigDir::new(&loopback("log_level = \"debug\""));
    // Control: without RUST_LOG, the info line is there.
    let mut plain = spawn(&config, &[], &[STRAY]);
    plain.expect_stderr(LISTENING);
    drop(plain);
    let mut daemon = spawn(
        &config,
        &["--log-level", "trace"],
        &[("RUST_LOG", "warn"), STRAY],
    );
    let warning = daemon.expect_stderr(STRAY_WARNING);
    assert!(warning.contains("WARN"), "{warning}");
    assert!(daemon
        .stdout_text()
        .contains("logging:         RUST_LOG=warn"));
    let (code, err) = daemon.stop_and_collect_stderr();
    assert_eq!(code, 0, "{err}");
    for hidden in [LISTENING, "INFO", "DEBUG", "TRACE"] {
        assert!(
            !err.contains(hidden),
            "{hidden} shown under RUST_LOG=warn:\n{err}"
        );
    }
}

#[test]
fn under_rust_log_a_reload_of_log_level_says_it_is_not_followed() {
    let config = ConfigDir::new(&loopback("log_level = \"debug\""));
    let mut daemon = spawn(&config, &[], &[("RUST_LOG", "warn")]);
    config.write(&loopback("log_level = \"trace\""));
    let line = daemon.expect_stderr("RUST_LOG decides what is logged");
    assert!(
        line.contains("WARN") && line.contains("log_level"),
        "{line}"
    );
}

#[test]
fn a_bad_rust_log_exits_2_with_one_line_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let pidfile = state.path().join("d.pid");
    let (code, out, err) = output_within_env(
        &["run", "--port", "0", "--pidfile", pidfile.to_str().unwrap()],
        &[
            ("RUST_LOG", "discoveryd=loud"),
            ("DISCOVERYD_BIND", "127.0.0.1"),
        ],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains("listening"), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "discoveryd: error: RUST_LOG=\"discoveryd=loud\" is not a valid log filter"
        ) && err.contains("unset RUST_LOG"),
        "{err}"
    );
    // `start` refuses it too, before any daemon is started.
    let background = Background::new("");
    let config = background.config.path();
    let pidfile = background.pidfile();
    let (code, out, err) = output_within_env(
        &[
            "start",
            "--config",
            config.to_str().unwrap(),
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
        &[("RUST_LOG", "discoveryd=loud")],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("RUST_LOG"), "{err}");
    assert!(!pidfile.exists());
}

#[test]
fn start_passes_log_level_to_its_daemon() {
    let background = Background::new("log_level = \"warn\"");
    let (code, out, err) = background.cmd("start", &["--log-level", "debug"]);
    assert_eq!(code, 0, "{out}{err}\n{}", background.log_text());
    background.expect_log(LISTENING);
    let (code, out, err) = background.cmd("reload", &[]);
    assert_eq!(code, 0, "{out}{err}");
    background.expect_log("config unchanged");
}

#[test]
fn json_format_writes_one_object_per_line() {
    let config = ConfigDir::new(&loopback("log_format = \"json\""));
    let mut daemon = spawn(&config, &[], &[STRAY]);
    daemon.expect_stderr(LISTENING);
    assert!(daemon.stdout_text().contains("as JSON lines"));
    let (code, err) = daemon.stop_and_collect_stderr();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
            .unwrap_or_else(|| panic!("no {message:?} in {err}"))
    };
    let listening = find(LISTENING);
    assert_eq!(listening["level"], "INFO");
    assert!(listening["timestamp"].is_string(), "{listening}");
    assert!(listening["addrs"].is_string(), "{listening}");
    let warning = find(STRAY_WARNING);
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["variable"], "DISCOVERYD_NOT_A_KEY");
}

#[test]
fn an_unknown_log_format_names_the_key_and_the_choices() {
    let config = ConfigDir::new(&loopback("log_format = \"xml\""));
    let (code, _, err) = output(&["check", "--config", config.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("key `log_format`") && err.contains("text") && err.contains("json"),
        "{err}"
    );
}

/// Runs with stderr a pipe that `JOURNAL_STREAM` names (or not); returns
/// all it wrote on stderr.
fn journal_run(config: &ConfigDir, matching: bool) -> String {
    let args = run_args(config, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut daemon = Daemon::spawn_with_journal_stream(
        &args,
        &[("DISCOVERYD_BIND", "127.0.0.1"), STRAY],
        matching,
    );
    daemon.listening_port();
    daemon.expect_stderr(LISTENING);
    let (code, err) = daemon.stop_and_collect_stderr();
    assert_eq!(code, 0, "{err}");
    err
}

fn line_with<'a>(err: &'a str, needle: &str) -> &'a str {
    err.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {err}"))
}

#[test]
fn on_the_journal_stream_lines_start_with_their_priority() {
    let config = ConfigDir::new(&loopback(""));
    let err = journal_run(&config, true);
    assert_eq!(line_with(&err, LISTENING).get(..3), Some("<6>"), "{err}");
    let warning = line_with(&err, STRAY_WARNING);
    assert!(warning.starts_with("<4>environment variable"), "{warning}");
    for line in err.lines() {
        assert!(line.starts_with("<4>") || line.starts_with("<6>"), "{line}");
        // No timestamp (journald adds its own) and no colours.
        assert!(
            !line[3..].starts_with(|c: char| c.is_ascii_digit()),
            "{line}"
        );
        assert!(!line.contains('\u{1b}'), "{line}");
    }
    // JOURNAL_STREAM naming another file (inherited, stderr redirected):
    // plain lines.
    let err = journal_run(&config, false);
    let listening = line_with(&err, LISTENING);
    assert!(!listening.starts_with('<'), "{listening}");
    assert!(listening.contains("INFO"), "{listening}");
}

#[test]
fn json_on_the_journal_stream_keeps_json_after_the_priority() {
    let config = ConfigDir::new(&loopback("log_format = \"json\""));
    let err = journal_run(&config, true);
    for (needle, prefix, level) in [(LISTENING, "<6>", "INFO"), (STRAY_WARNING, "<4>", "WARN")] {
        let line = line_with(&err, needle);
        let json = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line}"));
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(value["level"], level, "{line}");
    }
}

#[test]
fn on_the_journal_stream_the_error_that_ends_a_run_has_the_error_priority() {
    let config = ConfigDir::new(&loopback("buffer_size = 3"));
    let args = run_args(&config, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (matching, prefix) in [(true, "<3>"), (false, "")] {
        let mut daemon = Daemon::spawn_with_journal_stream(&args, &[], matching);
        let (code, err) = daemon.exit_and_collect_stderr();
        assert_eq!(code, 2, "{err}");
        let line = line_with(&err, "buffer_size");
        assert!(
            line.starts_with(&format!("{prefix}discoveryd: error: ")),
            "{line}"
        );
    }
}
