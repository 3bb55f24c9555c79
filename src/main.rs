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
    /// Find discovery servers: broadcast on every IPv4 interface, or ask --target hosts.
    Discover(DiscoverArgs),
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

#[derive(Debug, Args)]
struct DiscoverArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The port servers listen on.
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The discovery request to send.
    #[arg(long, value_name = "S")]
    message: Option<String>,
    /// How long to wait for answers: 500ms, 2s, ...
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    timeout: Option<HumanDuration>,
    /// Ask this host (unicast or broadcast) instead of broadcasting; repeatable.
    #[arg(long = "target", value_name = "HOST[:PORT]")]
    targets: Vec<String>,
    /// With --target: broadcast on every IPv4 interface as well.
    #[arg(long)]
    broadcast: bool,
    /// Return at the first answer.
    #[arg(long)]
    first: bool,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Also show malformed answers and failed sends.
    #[arg(long, short)]
    verbose: bool,
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
        Command::Discover(args) => return discover(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Prints an error once, a line per problem, and returns its exit code.
fn fail(error: &Error) -> ExitCode {
    for line in format!("{error:#}").lines() {
        eprintln!("discoveryd: error: {line}");
    }
    ExitCode::from(error.exit_code())
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

/// Exit codes of `discover`: 0 found, 1 none found, 2 bad usage.
fn discover(args: DiscoverArgs) -> ExitCode {
    let overrides = Overrides {
        port: args.port,
        message: args.message,
        duration: None,
        timeout: args.timeout,
    };
    let source = ConfigSource {
        path: args.config.config,
        overrides,
    };
    let mut options = match source.load() {
        Ok(config) => discoveryd::DiscoverOptions::from_config(&config),
        Err(e) => return fail(&Error::from(e)),
    };
    for target in &args.targets {
        match discoveryd::resolve_target(target, options.port) {
            Ok(addrs) => options.targets.extend(addrs),
            Err(e) => {
                eprintln!("discoveryd: error: {e}");
                return ExitCode::from(discoveryd::EXIT_USAGE);
            }
        }
    }
    options.broadcast = args.targets.is_empty() || args.broadcast;
    options.first = args.first;
    let found = match discoveryd::discover_blocking(&options) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("discoveryd: error: cannot send discovery requests: {e}");
            return ExitCode::from(discoveryd::EXIT_INTERNAL);
        }
    };
    if found.sent_to.is_empty() && found.send_errors.is_empty() {
        eprintln!(
            "discoveryd: no IPv4 interface can broadcast; ask a host with --target HOST[:PORT]"
        );
    }
    if args.json {
        println!("{}", found.to_json());
    } else {
        print!("{}", found.table());
        if args.verbose {
            for m in &found.malformed {
                eprintln!(
                    "malformed reply from {} ({}): {:?}",
                    m.from, m.reason, m.reply
                );
            }
            for (to, e) in &found.send_errors {
                eprintln!("cannot send to {to}: {e}");
            }
        }
        eprintln!("{}", found.summary());
    }
    if found.servers.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
