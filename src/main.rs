//! The `discoveryd` command: parses the command line, loads the
//! configuration, installs logging, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use discoveryd::daemon::{self, Reloaded, StatusReport, Stopped};
use discoveryd::{ConfigSource, Error, HumanDuration, LogControl, Overrides, RunOptions};

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
    /// Start the service in the background; returns once it listens.
    Start(StartArgs),
    /// Stop the background service: SIGTERM, then SIGKILL after --timeout.
    Stop(StopArgs),
    /// Stop, then start.
    Restart(RestartArgs),
    /// Show whether the service runs, and its state (LSB: 0 running, 3 not).
    Status(StatusArgs),
    /// Make the running service reload its config file (SIGHUP).
    Reload(InstanceArgs),
    /// Load a discovery server with a bounded closed-loop benchmark.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The server to load (default: 127.0.0.1 on the configured port).
    #[arg(long, value_name = "HOST[:PORT]")]
    target: Option<String>,
    /// Concurrent client sockets.
    #[arg(long, value_name = "N", default_value_t = 2)]
    clients: usize,
    /// Requests in flight per client.
    #[arg(long, value_name = "W", default_value_t = 32)]
    window: usize,
    /// How long to send (at most 5m).
    #[arg(long, value_name = "D", default_value = "5s")]
    duration: HumanDuration,
    /// Stop after this many requests in all.
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// The request to send (default: the configured message).
    #[arg(long, value_name = "S")]
    message: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The config file (TOML); without it, built-in defaults and DISCOVERYD_* variables.
    #[arg(long, short, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct InstanceArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The pidfile that identifies the instance (default: from the config).
    #[arg(long, value_name = "PATH")]
    pidfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// UDP port to listen on (0: any free port, for tests).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The discovery request to answer.
    #[arg(long, value_name = "S")]
    message: Option<String>,
    /// Stop after this long: 90s, 2m, 1h 30m, or seconds.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    duration: Option<HumanDuration>,
    /// If another instance holds the pidfile, stop it first.
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Args)]
struct StartArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Where the daemon writes its output (default: beside the pidfile).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StopArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// How long to wait after SIGTERM before SIGKILL.
    #[arg(long, value_name = "D", default_value = "5s")]
    timeout: HumanDuration,
}

#[derive(Debug, Args)]
struct RestartArgs {
    #[command(flatten)]
    start: StartArgs,
    /// How long to wait after SIGTERM before SIGKILL.
    #[arg(long, value_name = "D", default_value = "5s")]
    timeout: HumanDuration,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Print the status document as JSON.
    #[arg(long)]
    json: bool,
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
    let result = match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Check(args) => {
            discoveryd::check(&source(args, Overrides::default())).map(|toml| print!("{toml}"))
        }
        Command::Discover(args) => return discover(args),
        Command::Start(args) => start(args),
        Command::Stop(args) => stop(&args.instance, args.timeout.get()),
        Command::Restart(args) => {
            stop(&args.start.instance, args.timeout.get()).and_then(|()| start(args.start))
        }
        Command::Status(args) => return status(&args),
        Command::Reload(args) => return reload(&args),
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Prints a report for people, or as one JSON document.
fn print_report<T: serde::Serialize + std::fmt::Display>(report: &T, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        println!("{report}");
    }
}

/// Prints an error once, a line per problem, and returns its exit code.
fn fail(error: &Error) -> ExitCode {
    for line in format!("{error:#}").lines() {
        eprintln!("discoveryd: error: {line}");
    }
    ExitCode::from(error.exit_code())
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

/// The pidfile of the instance a command acts on; found even when the
/// config file has become invalid, so a running daemon stays reachable.
fn pidfile(args: &InstanceArgs) -> Result<PathBuf, Error> {
    Ok(instance_source(args, None).pidfile()?)
}

fn run(args: RunArgs) -> Result<(), Error> {
    let overrides = Overrides {
        port: args.port,
        message: args.message,
        duration: args.duration,
        pidfile: args.instance.pidfile,
        ..Overrides::default()
    };
    let source = source(args.instance.config, overrides);
    let config = source.load()?;
    let log = LogControl::install(&config);
    discoveryd::run(
        source,
        config,
        log,
        RunOptions {
            replace: args.replace,
            ..RunOptions::default()
        },
    )
}

fn start(args: StartArgs) -> Result<(), Error> {
    let source = instance_source(&args.instance, args.log_file);
    let config = source.load()?;
    let pid = daemon::start(source, &config)?;
    println!("started with pid {pid}");
    Ok(())
}

fn stop(args: &InstanceArgs, timeout: Duration) -> Result<(), Error> {
    match daemon::stop(&pidfile(args)?, timeout)? {
        Stopped::NotRunning => println!("discoveryd is not running"),
        Stopped::Stale { pid } => {
            let pid = pid.map_or_else(|| "?".into(), |p| p.to_string());
            println!("discoveryd is not running (removed a stale pidfile of pid {pid})");
        }
        Stopped::Terminated { pid } => println!("stopped pid {pid}"),
        Stopped::Killed { pid } => {
            println!(
                "pid {pid} ignored SIGTERM for {}; killed it",
                humantime::format_duration(timeout)
            );
        }
    }
    Ok(())
}

/// LSB exit codes: 0 running, 3 not running, 4 unknown.
fn status(args: &StatusArgs) -> ExitCode {
    let report = pidfile(&args.instance).and_then(|p| daemon::status(&p));
    match report {
        Ok(StatusReport::Running(status)) => {
            print_report(&*status, args.json);
            ExitCode::SUCCESS
        }
        Ok(StatusReport::NotRunning { stale }) => {
            match stale {
                Some(pid) => println!("discoveryd is not running (stale pidfile of pid {pid})"),
                None => println!("discoveryd is not running"),
            }
            ExitCode::from(3)
        }
        Ok(StatusReport::Unreachable { pid, error }) => {
            println!(
                "discoveryd is running (pid {pid}) but its control socket does not answer: {error}"
            );
            ExitCode::from(4)
        }
        Err(error) => fail(&error),
    }
}

/// 0 applied or unchanged, 2 rejected (the old config serves on), 3 not running.
fn reload(args: &InstanceArgs) -> ExitCode {
    let result = pidfile(args).and_then(|p| daemon::reload(&p));
    match result {
        Ok(Reloaded::Done(last)) => {
            println!("reload {}: {}", last.result, last.detail);
            if last.result == "rejected" {
                ExitCode::from(discoveryd::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(Reloaded::Sent { pid }) => {
            println!("sent SIGHUP to pid {pid}; no result yet (see its log)");
            ExitCode::SUCCESS
        }
        Ok(Reloaded::NotRunning) => {
            println!("discoveryd is not running");
            ExitCode::from(3)
        }
        Err(error) => fail(&error),
    }
}

/// Exit codes of `discover`: 0 found, 1 none found, 2 bad usage.
fn discover(args: DiscoverArgs) -> ExitCode {
    let overrides = Overrides {
        port: args.port,
        message: args.message,
        timeout: args.timeout,
        ..Overrides::default()
    };
    let mut options = match source(args.config, overrides).load() {
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

fn bench(args: BenchArgs) -> Result<(), Error> {
    let overrides = Overrides {
        message: args.message,
        ..Overrides::default()
    };
    let config = source(args.config, overrides).load()?;
    let target = args.target.as_deref().unwrap_or("127.0.0.1");
    let target = *discoveryd::resolve_target(target, config.port)
        .map_err(Error::Usage)?
        .first()
        .ok_or_else(|| Error::Usage(format!("--target {target}: no address")))?;
    if !target.ip().is_loopback() && !args.allow_remote {
        return Err(Error::Usage(format!(
            "--target {target} is not a loopback address; add --allow-remote to load a server you own"
        )));
    }
    if args.duration.get() > discoveryd::MAX_DURATION {
        return Err(Error::Usage(format!(
            "--duration {}: at most 5m",
            args.duration
        )));
    }
    let options = discoveryd::BenchOptions {
        target,
        clients: args.clients.max(1),
        window: args.window.max(1),
        duration: args.duration.get(),
        requests: args.requests,
        message: config.message.into_bytes(),
        response_prefix: config.response_prefix.into_bytes(),
        reply_timeout: Duration::from_millis(200),
        stop: None,
    };
    print_report(&discoveryd::bench(&options)?, args.json);
    Ok(())
}
