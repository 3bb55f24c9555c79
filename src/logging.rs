//! Logging through tracing, with a level that follows the config live:
//! `logging = false` keeps warnings and errors only, `log_level` sets the
//! detail otherwise.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, reload, Registry};

use crate::config::{Config, LogLevel};

/// Changes the log level of the installed subscriber.
#[derive(Clone, Debug)]
pub struct LogControl {
    handle: Option<reload::Handle<LevelFilter, Registry>>,
}

impl LogControl {
    /// Installs the global subscriber (logs on stderr) at the level `config`
    /// asks for. When a subscriber is already installed, changes nothing.
    pub fn install(config: &Config) -> Self {
        let (filter, handle) = reload::Layer::new(level(config));
        let fmt = fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false);
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init()
            .is_ok();
        Self {
            handle: installed.then_some(handle),
        }
    }

    /// A control that changes nothing (no subscriber of ours installed).
    pub fn none() -> Self {
        Self { handle: None }
    }

    /// Follows a new configuration's `logging` and `log_level`.
    pub fn apply(&self, config: &Config) {
        if let Some(handle) = &self.handle {
            let _ = handle.modify(|filter| *filter = level(config));
        }
    }
}

fn level(config: &Config) -> LevelFilter {
    if !config.logging {
        return LevelFilter::WARN;
    }
    match config.log_level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}
