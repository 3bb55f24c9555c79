//! The `discoveryd` command: parses the command line, installs logging,
//! and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use discoveryd::{ConfigSource, Error, HumanDuration, LogControl, Overrides};

/// LAN service discovery: answers DISCOVER_SERVER with SERVER_IP:<ip>.
#[derive(Debug, Parser)]
#[command(name = "discoveryd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the discovery service in the foreground.
    Run(RunArgs),
    /// Validate the config and print the effective config as TOML.
    Check(ConfigArg),
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The config file (TOML); without it, built-in defaults and DISCOVERYD_* variables.
    #[arg(long, short, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// UDP port to listen on (0: any free port, for tests).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The discovery request to answer.
    #[arg(long, value_name = "S")]
    message: Option<String>,
    /// Stop after this long: 90s, 2m, 1h 30m, or seconds.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    duration: Option<HumanDuration>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Check(args) => discoveryd::check(&ConfigSource {
            path: args.config,
            ..ConfigSource::default()
        })
        .map(|toml| print!("{toml}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            for line in format!("{error:#}").lines() {
                eprintln!("discoveryd: error: {line}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(args: RunArgs) -> Result<(), Error> {
    let overrides = Overrides {
        port: args.port,
        message: args.message,
        duration: args.duration,
        timeout: None,
    };
    let source = ConfigSource {
        path: args.config.config,
        overrides,
    };
    let config = source.load()?;
    let log = LogControl::install(&config);
    discoveryd::run(source, config, log)
}
