//! Logging through tracing, on stderr, in the shapes the rest of a host
//! reads:
//!
//! - **What is logged.** `RUST_LOG`, when set, is a tracing `EnvFilter`
//!   directive and decides alone. Otherwise the config does, and follows
//!   reloads: `logging = false` keeps warnings and errors only, `log_level`
//!   sets the detail (`--log-level` is a flag layer over it).
//! - **How.** `log_format = "text"` (human lines) or `"json"` (one object
//!   per line), chosen at start.
//! - **Under systemd.** When stderr is the journal's stream (`JOURNAL_STREAM`
//!   names its device and inode), each line starts with its syslog priority
//!   (`<3>` to `<7>`), which journald strips and keeps as the entry's
//!   priority; text lines then carry no colours, no timestamp (journald
//!   adds its own) and no level word (the priority is the level).

use std::io::IsTerminal as _;
use std::os::fd::{AsFd, BorrowedFd};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, Layer, Registry};

use crate::config::{Config, LogFormat, LogLevel};
use crate::error::Error;

/// The environment variable whose filter directive, when set, decides what
/// is logged instead of `log_level` and `logging`.
pub(crate) const RUST_LOG: &str = "RUST_LOG";

/// The environment variable systemd sets to the `<device>:<inode>` of the
/// journal stream it connected to stdout and stderr.
pub(crate) const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

/// Changes the log level of the installed subscriber.
#[derive(Clone, Debug)]
pub struct LogControl {
    /// `None`: no subscriber of ours, or `RUST_LOG` decides.
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    /// Our subscriber follows `RUST_LOG`, not the config.
    rust_log: bool,
}

impl LogControl {
    /// Installs the global subscriber (logs on stderr) with the filter
    /// `RUST_LOG` sets, or else at the level `config` asks for, in its
    /// `log_format`. When a subscriber is already installed, changes
    /// nothing. A `RUST_LOG` that is not a valid filter is a usage error.
    pub fn install(config: &Config) -> Result<Self, Error> {
        let from_env = rust_log()?;
        let rust_log = from_env.is_some();
        let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| level_filter(config)));
        let journal = stderr_is_journal();
        let ansi = !journal && std::io::stderr().is_terminal();
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(output_layer(
                config.log_format,
                journal,
                ansi,
                std::io::stderr,
            ))
            .try_init()
            .is_ok();
        Ok(Self {
            handle: (installed && !rust_log).then_some(handle),
            rust_log: installed && rust_log,
        })
    }

    /// A control that changes nothing (no subscriber of ours installed).
    pub fn none() -> Self {
        Self {
            handle: None,
            rust_log: false,
        }
    }

    /// Follows a new configuration's `logging` and `log_level`, unless
    /// `RUST_LOG` decides what is logged.
    pub fn apply(&self, config: &Config) {
        if let Some(handle) = &self.handle {
            let _ = handle.reload(level_filter(config));
        }
    }

    /// True when `RUST_LOG` decides what is logged, so that `log_level`
    /// and `logging` are not followed.
    pub fn follows_rust_log(&self) -> bool {
        self.rust_log
    }
}

/// The filter `RUST_LOG` sets: `None` when it is unset or empty. A value
/// that is not a valid `EnvFilter` directive is a usage error naming
/// `RUST_LOG` and the fix.
pub(crate) fn rust_log() -> Result<Option<EnvFilter>, Error> {
    parse_rust_log(std::env::var_os(RUST_LOG).as_deref())
}

fn parse_rust_log(value: Option<&std::ffi::OsStr>) -> Result<Option<EnvFilter>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Some(text) = value.to_str() else {
        return Err(Error::Usage(format!(
            "{RUST_LOG} is not valid UTF-8; set it to a filter such as {RUST_LOG}=info, or unset it to use log_level"
        )));
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    EnvFilter::builder().parse(text).map(Some).map_err(|e| {
        // Some parse errors (a field's regex) span several lines.
        let reason = e.to_string();
        let reason: Vec<&str> = reason.lines().map(str::trim).collect();
        Error::Usage(format!(
            "{RUST_LOG}={text:?} is not a valid log filter ({}); use directives such as {RUST_LOG}=warn or {RUST_LOG}=info,discoveryd=debug, or unset {RUST_LOG} to use log_level",
            reason.join(" ")
        ))
    })
}

/// The filter for `logging` and `log_level`.
fn level_filter(config: &Config) -> EnvFilter {
    let level = if config.logging {
        match config.log_level {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    } else {
        LevelFilter::WARN
    };
    // Each HTTP connection that sends junk is an error line of actix's
    // own: anyone who can connect could fill the log with them. (RUST_LOG
    // can still show them.)
    let per_connection = "actix_http::h1::dispatcher=off"
        .parse()
        .expect("a valid directive");
    EnvFilter::default()
        .add_directive(level.into())
        .add_directive(per_connection)
}

/// The layer that writes events to `writer`: human text or JSON lines,
/// each with its syslog priority first for the journal.
fn output_layer<S, W>(
    format: LogFormat,
    journal: bool,
    ansi: bool,
    writer: W,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let text = fmt::layer().with_writer(writer).with_target(false);
    match (format, journal) {
        (LogFormat::Text, false) => text.with_ansi(ansi).boxed(),
        // The priority is the level: journalctl shows it (`-p`, colours,
        // PRIORITY=), so the line does not repeat it.
        (LogFormat::Text, true) => text
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .map_event_format(Journal)
            .boxed(),
        (LogFormat::Json, journal) => {
            let json = text.with_ansi(false).json().flatten_event(true);
            if journal {
                json.map_event_format(Journal).boxed()
            } else {
                json.boxed()
            }
        }
    }
}

/// An event format with the event's syslog priority before each line.
struct Journal<F>(F);

impl<S, N, F> FormatEvent<S, N> for Journal<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        writer.write_str(syslog_prefix(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The `sd-daemon(3)` prefix that gives a line its syslog priority:
/// `<3>` err, `<4>` warning, `<6>` info, `<7>` debug (trace too: syslog
/// has nothing finer).
pub(crate) fn syslog_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

/// True when stderr is the journal stream `JOURNAL_STREAM` names: systemd
/// sets the variable for the service, but its children inherit it with
/// stderr maybe elsewhere (a daemon's log file, a redirect), so the
/// device and inode must match, as `systemd.exec(5)` says.
pub(crate) fn stderr_is_journal() -> bool {
    std::env::var(JOURNAL_STREAM).is_ok_and(|v| is_journal_stream(&v, std::io::stderr().as_fd()))
}

/// True when `value` (`<device>:<inode>`, in decimal) names the file `fd`
/// is open on.
pub(crate) fn is_journal_stream(value: &str, fd: BorrowedFd<'_>) -> bool {
    let Some((dev, ino)) = value.trim().split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<libc::dev_t>(), ino.parse::<libc::ino_t>()) else {
        return false;
    };
    nix::sys::stat::fstat(fd).is_ok_and(|stat| stat.st_dev == dev && stat.st_ino == ino)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn each_level_gets_its_syslog_priority() {
        assert_eq!(syslog_prefix(Level::ERROR), "<3>");
        assert_eq!(syslog_prefix(Level::WARN), "<4>");
        assert_eq!(syslog_prefix(Level::INFO), "<6>");
        assert_eq!(syslog_prefix(Level::DEBUG), "<7>");
        assert_eq!(syslog_prefix(Level::TRACE), "<7>");
    }

    fn dev_ino(fd: BorrowedFd<'_>) -> String {
        let stat = nix::sys::stat::fstat(fd).unwrap();
        format!("{}:{}", stat.st_dev, stat.st_ino)
    }

    #[test]
    fn the_journal_stream_is_recognised_by_device_and_inode() {
        let file = tempfile::tempfile().unwrap();
        let other = tempfile::tempfile().unwrap();
        let (read, write) = nix::unistd::pipe().unwrap();
        let own = dev_ino(file.as_fd());
        assert!(is_journal_stream(&own, file.as_fd()));
        assert!(is_journal_stream(&format!("{own}\n"), file.as_fd()));
        assert!(!is_journal_stream(&own, other.as_fd()), "another file");
        assert!(!is_journal_stream(&own, write.as_fd()), "a pipe");
        // Both ends of a pipe are the same inode.
        assert!(is_journal_stream(&dev_ino(write.as_fd()), read.as_fd()));
        assert!(is_journal_stream(&dev_ino(read.as_fd()), write.as_fd()));
        let (dev, ino) = own.split_once(':').unwrap();
        let ino: u64 = ino.parse().unwrap();
        for wrong in [
            format!("{dev}:{}", ino + 1),
            format!("{}:{ino}", dev.parse::<u64>().unwrap() + 1),
            dev.to_owned(),
            format!("{dev}:"),
            format!(":{ino}"),
            format!("{dev}:{ino}:0"),
            format!("x{dev}:{ino}"),
            String::new(),
        ] {
            assert!(!is_journal_stream(&wrong, file.as_fd()), "{wrong:?}");
        }
    }

    /// A writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    /// The lines one warning, one info and one debug event become.
    fn formatted(format: LogFormat, journal: bool) -> Vec<String> {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::TRACE)
            .with(output_layer(format, journal, false, out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(port = 9, "port busy");
            tracing::info!("listening");
            tracing::debug!("a packet");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn journal_text_lines_start_with_their_priority_and_carry_no_timestamp() {
        let lines = formatted(LogFormat::Text, true);
        assert_eq!(
            lines,
            ["<4>port busy port=9", "<6>listening", "<7>a packet"]
        );
        for line in formatted(LogFormat::Text, false) {
            assert!(!line.starts_with('<'), "{line}");
            // The timestamp comes first: 2026-...
            assert!(line.starts_with("20"), "{line}");
        }
    }

    #[test]
    fn json_lines_are_objects_with_level_and_message_and_the_journal_prefix_only_under_journald() {
        for journal in [false, true] {
            let lines = formatted(LogFormat::Json, journal);
            assert_eq!(lines.len(), 3, "{lines:?}");
            for (line, (prefix, level)) in
                lines
                    .iter()
                    .zip([("<4>", "WARN"), ("<6>", "INFO"), ("<7>", "DEBUG")])
            {
                let json = if journal {
                    line.strip_prefix(prefix)
                        .unwrap_or_else(|| panic!("{line}"))
                } else {
                    line.as_str()
                };
                let value: serde_json::Value = serde_json::from_str(json).unwrap();
                assert_eq!(value["level"], level, "{line}");
                assert!(value["message"].is_string(), "{line}");
                assert!(value["timestamp"].is_string(), "{line}");
            }
            let first: serde_json::Value =
                serde_json::from_str(lines[0].trim_start_matches("<4>")).unwrap();
            assert_eq!(first["message"], "port busy");
            assert_eq!(first["port"], 9);
        }
    }

    #[test]
    fn rust_log_is_a_filter_when_set_and_a_one_line_usage_error_when_bad() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt as _;
        assert!(parse_rust_log(None).unwrap().is_none());
        assert!(parse_rust_log(Some(OsStr::new(" "))).unwrap().is_none());
        let filter = parse_rust_log(Some(OsStr::new("warn,discoveryd=debug"))).unwrap();
        assert_eq!(filter.unwrap().to_string(), "discoveryd=debug,warn");
        for bad in [
            OsStr::new("discoveryd=loud"),
            OsStr::new("discoveryd[{port=(}]=info"),
            OsStr::from_bytes(b"\xff"),
        ] {
            let error = parse_rust_log(Some(bad)).unwrap_err();
            assert_eq!(error.exit_code(), crate::error::EXIT_USAGE);
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(message.starts_with("RUST_LOG"), "{message}");
            assert!(message.contains("RUST_LOG=info"), "{message}");
        }
    }
}
