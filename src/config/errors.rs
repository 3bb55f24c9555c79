//! What can be wrong with a configuration, and where each bad value came
//! from, so that a user can fix it without reading code.

use std::fmt;
use std::path::PathBuf;

/// The layer a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigOrigin {
    /// The config file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (`--port`, ...).
    Flag(String),
    /// The built-in default: no layer set it.
    Default,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::File(path) => write!(f, "{}", path.display()),
            ConfigOrigin::Env(name) => write!(f, "environment variable {name}"),
            ConfigOrigin::Flag(flag) => write!(f, "flag {flag}"),
            ConfigOrigin::Default => f.write_str("built-in default"),
        }
    }
}

/// One thing wrong with a configuration, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}: cannot read the config file: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The config file became empty while running (a half-written save,
    /// most likely); applying it would reset every key to its default.
    #[error("{path}: the file is empty; an empty file would reset every key to its default, so it is ignored while running (write a comment in it to mean that)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The config file is not valid TOML.
    #[error("{path}:{line}:{column}: invalid TOML: {reason}; fix the syntax there")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        reason: String,
    },
    /// A key is unknown or has a bad value.
    #[error("{origin}: key `{key}`: {reason}")]
    Key {
        /// Where the value came from: a file, an environment variable, a flag.
        origin: ConfigOrigin,
        /// The dotted key.
        key: String,
        /// What is wrong, and the fix.
        reason: String,
    },
}

/// Everything wrong with one configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}
