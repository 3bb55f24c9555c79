//! The `discoveryd` command line, as a library entry point, so that a
//! plugin author can build their own `discoveryd` with extra responder
//! types in a few lines (the Caddy/xcaddy model):
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     discoveryd::cli::main_with(|registry| {
//!         // my_plugin::register(registry)
//!         let _ = registry;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Everything process-wide lives here, around the library's
//! [`crate::Service`]: flags, signals, the pidfile, the console, systemd.

#[macro_use]
mod output;
mod args;
mod instance;
mod serve;
mod signals;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser as _;
use discoveryd_api::{Registry, RegistryError};

use crate::config::{ConfigSource, Overrides};
use args::{Cli, Command, ConfigArg, InstanceArgs};
use output::{err_line, fail};

/// Runs the `discoveryd` command line with the built-in responder types,
/// plus those `register` adds. Returns the process's exit code.
pub fn main_with(register: impl FnOnce(&mut Registry) -> Result<(), RegistryError>) -> ExitCode {
    let mut registry = crate::registry();
    if let Err(e) = register(&mut registry) {
        err_line(format_args!("discoveryd: error: {e}"));
        return ExitCode::from(crate::error::EXIT_INTERNAL);
    }
    let result = match Cli::parse().command {
        Command::Run(args) => serve::run(args, registry),
        Command::Check(args) => tools::check(args, &registry),
        Command::Discover(args) => return tools::discover(args),
        Command::Start(args) => instance::start(args, registry),
        Command::Stop(args) => instance::stop(&args.instance, args.kill.timeout.get()),
        Command::Restart(args) => instance::restart(args, registry),
        Command::Status(args) => return instance::status(&args),
        Command::Reload(args) => return instance::reload(&args),
        Command::Bench(args) => tools::bench(args),
        Command::Completions(args) => tools::completions(args.shell),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// The whole command line's definition, for what is generated from it
/// (the man pages, the completions); not a stable API.
#[doc(hidden)]
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    Cli::command()
}

fn source(config: ConfigArg, overrides: Overrides) -> ConfigSource {
    ConfigSource {
        path: config.config,
        overrides,
    }
}

/// Where an instance command's configuration comes from.
fn instance_source(args: &InstanceArgs, log_file: Option<PathBuf>) -> ConfigSource {
    let overrides = Overrides {
        pidfile: args.pidfile.clone(),
        log_file,
        ..Overrides::default()
    };
    ConfigSource {
        path: args.config.config.clone(),
        overrides,
    }
}
