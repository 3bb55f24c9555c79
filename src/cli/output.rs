//! What the commands print. Every write to stdout or stderr tolerates a
//! closed pipe or a full disk: `discoveryd status | head -1` must never
//! panic.

use std::fmt;
use std::io::Write as _;
use std::process::ExitCode;

use crate::config::ConfigSource;
use crate::error::Error;

/// Writes to stdout; a closed pipe or full disk is returned, never a panic.
pub(super) fn out(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(args)?;
    stdout.flush()
}

/// Writes one line to stderr, whatever becomes of it.
pub(super) fn err_line(args: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_fmt(args)
        .and_then(|()| stderr.write_all(b"\n"));
}

/// Prints a line for people; a failed write (nobody reads) changes nothing.
macro_rules! say {
    ($($arg:tt)*) => {
        drop($crate::cli::output::out(format_args!("{}\n", format_args!($($arg)*))))
    };
}

/// Prints a report for people, or as one JSON document.
pub(super) fn print_report<T: serde::Serialize + fmt::Display>(report: &T, json: bool) {
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        say!("{report}");
    }
}

/// Prints an error once, a line per problem, and returns its exit code.
/// On the journal's stream each line has the error priority (`<3>`), as
/// log lines do, so `journalctl -p err` shows why the service stopped.
pub(super) fn fail(error: &Error) -> ExitCode {
    let priority = if crate::logging::stderr_is_journal() {
        crate::logging::syslog_prefix(tracing::Level::ERROR)
    } else {
        ""
    };
    for line in format!("{error:#}").lines() {
        err_line(format_args!("{priority}discoveryd: error: {line}"));
    }
    ExitCode::from(error.exit_code())
}

/// Warns about `DISCOVERYD_*` variables that set nothing (a typo, or
/// someone else's variable).
pub(super) fn warn_ignored_env() {
    for name in ConfigSource::ignored_env() {
        err_line(format_args!(
            "discoveryd: warning: environment variable {name} names no config key; ignored"
        ));
    }
}
