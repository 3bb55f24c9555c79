//! The `discoveryd` command: parses the command line, loads the
//! configuration, installs logging, and hands over to the library.
//!
//! Every write to stdout or stderr here tolerates a closed pipe or a full
//! disk: `discoveryd status | head -1` must never panic.

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use discoveryd::daemon::{self, Located, Reloaded, StatusReport, Stopped};
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
    /// Validate the new config and port, then stop and start.
    Restart(RestartArgs),
    /// Show whether the service runs (LSB: 0 running, 1 dead with a pidfile, 3 not running, 4 unknown).
    Status(StatusArgs),
    /// Make the running service reload its config file, and wait for the result.
    Reload(ReloadArgs),
    /// Load a discovery server with a bounded closed-loop benchmark.
    Bench(BenchArgs),
}

/// The most client sockets `bench` runs (one thread each).
const MAX_CLIENTS: u16 = 256;
/// The most requests in flight per `bench` client.
const MAX_WINDOW: u16 = 1024;

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The server to load (default: 127.0.0.1 on the configured port).
    #[arg(long, value_name = "HOST[:PORT]")]
    target: Option<String>,
    /// Concurrent client sockets (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_CLIENTS)))]
    clients: u16,
    /// Requests in flight per client (1 to 1024).
    #[arg(long, value_name = "W", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WINDOW)))]
    window: u16,
    /// How long to send (at most 5m).
    #[arg(
        long,
        value_name = "D",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    duration: HumanDuration,
    /// Stop after this many requests in all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
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
    /// How long to wait for the daemon to listen; past it, it is stopped.
    #[arg(
        long,
        value_name = "D",
        default_value = "90s",
        allow_hyphen_values = true
    )]
    wait: HumanDuration,
}

#[derive(Debug, Args)]
struct StopArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    kill: KillAfter,
}

/// How `stop` (and `restart`) escalate.
#[derive(Debug, Args)]
struct KillAfter {
    /// How long to wait after SIGTERM before SIGKILL.
    #[arg(
        long,
        value_name = "D",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    timeout: HumanDuration,
}

#[derive(Debug, Args)]
struct ReloadArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// How long to wait for the result.
    #[arg(
        long,
        value_name = "D",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    timeout: HumanDuration,
}

#[derive(Debug, Args)]
struct RestartArgs {
    #[command(flatten)]
    start: StartArgs,
    #[command(flatten)]
    kill: KillAfter,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Print the status document as JSON (whether or not it runs).
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
        Command::Check(args) => check(args),
        Command::Discover(args) => return discover(args),
        Command::Start(args) => start(args),
        Command::Stop(args) => stop(&args.instance, args.kill.timeout.get()),
        Command::Restart(args) => restart(args),
        Command::Status(args) => return status(&args),
        Command::Reload(args) => return reload(&args),
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Writes to stdout; a closed pipe or full disk is returned, never a panic.
fn out(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(args)?;
    stdout.flush()
}

/// Writes one line to stderr, whatever becomes of it.
fn err_line(args: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_fmt(args)
        .and_then(|()| stderr.write_all(b"\n"));
}

/// Prints a line for people; a failed write (nobody reads) changes nothing.
macro_rules! say {
    ($($arg:tt)*) => {
        drop(out(format_args!("{}\n", format_args!($($arg)*))))
    };
}

/// Prints a report for people, or as one JSON document.
fn print_report<T: serde::Serialize + fmt::Display>(report: &T, json: bool) {
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
fn fail(error: &Error) -> ExitCode {
    for line in format!("{error:#}").lines() {
        err_line(format_args!("discoveryd: error: {line}"));
    }
    ExitCode::from(error.exit_code())
}

/// Warns about `DISCOVERYD_*` variables that set nothing (a typo, or
/// someone else's variable).
fn warn_ignored_env() {
    for name in ConfigSource::ignored_env() {
        err_line(format_args!(
            "discoveryd: warning: environment variable {name} names no config key; ignored"
        ));
    }
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

/// The instance a command acts on. Its pidfile is found even when the
/// config file has become invalid or unreadable, or names a pidfile other
/// than the one the running instance started with: a running daemon
/// stays reachable.
fn instance(args: &InstanceArgs) -> Result<PathBuf, Error> {
    if let Some(pidfile) = &args.pidfile {
        return Ok(pidfile.clone());
    }
    let config = args.config.config.as_deref();
    let named = instance_source(args, None).pidfile();
    let Some(Located {
        pidfile,
        configured,
    }) = daemon::locate(named.as_ref().ok().cloned(), config)
    else {
        return Err(named
            .map_err(Error::from)
            .err()
            .unwrap_or_else(|| Error::Internal("no pidfile, and no error saying why".into())));
    };
    match (&named, configured) {
        (Err(e), _) => err_line(format_args!(
            "discoveryd: note: the config cannot be read ({e}); the instance running it holds {}",
            pidfile.display()
        )),
        (Ok(_), Some(configured)) => err_line(format_args!(
            "discoveryd: note: the config names the pidfile {}, but the instance running it holds {}; a new pidfile applies at its next start",
            configured.display(),
            pidfile.display()
        )),
        (Ok(_), None) => {}
    }
    Ok(pidfile)
}

fn check(args: ConfigArg) -> Result<(), Error> {
    warn_ignored_env();
    let toml = discoveryd::check(&source(args, Overrides::default()))?;
    out(format_args!("{toml}"))
        .map_err(|e| Error::Setup(format!("cannot write the effective config to stdout: {e}")))
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
    for name in ConfigSource::ignored_env() {
        tracing::warn!(variable = %name, "environment variable names no config key; ignored");
    }
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
    warn_ignored_env();
    let source = instance_source(&args.instance, args.log_file);
    let config = source.load()?;
    let pid = daemon::start(source, &config, args.wait.get())?;
    say!("started with pid {pid}");
    Ok(())
}

/// Validates everything the new instance needs before the old one stops:
/// a bad config, a busy new port or an unusable file leaves the running
/// instance alone.
fn restart(args: RestartArgs) -> Result<(), Error> {
    let source = instance_source(&args.start.instance, args.start.log_file.clone());
    discoveryd::check(&source)?;
    let config = source.load()?;
    let pidfile = instance(&args.start.instance)?;
    daemon::preflight(&config, &pidfile)?;
    if let Ok(StatusReport::Running(running)) = daemon::status(&pidfile) {
        discoveryd::check_ports(&source, &config, &running.addrs)?;
    }
    let timeout = args.kill.timeout.get();
    report_stop(daemon::stop(&pidfile, timeout)?, timeout);
    start(args.start)
}

fn stop(args: &InstanceArgs, timeout: Duration) -> Result<(), Error> {
    report_stop(daemon::stop(&instance(args)?, timeout)?, timeout);
    Ok(())
}

fn report_stop(stopped: Stopped, timeout: Duration) {
    match stopped {
        Stopped::NotRunning => say!("discoveryd is not running"),
        Stopped::Stale { pid } => {
            let pid = pid.map_or_else(|| "?".into(), |p| p.to_string());
            say!("discoveryd is not running (removed a stale pidfile of pid {pid})");
        }
        Stopped::Terminated { pid } => say!("stopped pid {pid}"),
        Stopped::Killed { pid } => say!(
            "pid {pid} ignored SIGTERM for {}; killed it",
            humantime::format_duration(timeout)
        ),
    }
}

/// LSB status codes, exactly: 0 running, 1 dead with a pidfile left,
/// 3 not running, 4 unknown. `--json` prints a document in every case.
fn status(args: &StatusArgs) -> ExitCode {
    let unknown = |pidfile: Option<&std::path::Path>, error: &Error| {
        if args.json {
            say!("{}", report_json(pidfile, None, Some(&error.to_string())));
        }
        fail(error);
        ExitCode::from(4)
    };
    let pidfile = match instance(&args.instance) {
        Ok(pidfile) => pidfile,
        Err(error) => return unknown(None, &error),
    };
    let report = match daemon::status(&pidfile) {
        Ok(report) => report,
        Err(error) => return unknown(Some(&pidfile), &error),
    };
    let code = match &report {
        StatusReport::Running(_) => 0,
        StatusReport::NotRunning { stale: Some(_) } => 1,
        StatusReport::NotRunning { stale: None } => 3,
        StatusReport::Unreachable { .. } => 4,
    };
    if args.json {
        say!("{}", report_json(Some(&pidfile), Some(&report), None));
        return ExitCode::from(code);
    }
    match report {
        StatusReport::Running(status) => say!("{status}"),
        StatusReport::NotRunning { stale: Some(pid) } => say!(
            "discoveryd is not running, but its pidfile {} is left (pid {pid} died without removing it)",
            pidfile.display()
        ),
        StatusReport::NotRunning { stale: None } => say!("discoveryd is not running"),
        StatusReport::Unreachable { pid, error } => {
            say!("discoveryd status unknown: pid {pid} holds the pidfile, but {error}")
        }
    }
    ExitCode::from(code)
}

/// The `status --json` document: the running instance's own, or what is
/// known of one that is not running (`"running": null` when unknown).
fn report_json(
    pidfile: Option<&std::path::Path>,
    report: Option<&StatusReport>,
    error: Option<&str>,
) -> String {
    let mut doc = match report {
        Some(StatusReport::Running(status)) => serde_json::to_value(status).unwrap_or_default(),
        _ => serde_json::json!({ "pidfile": pidfile }),
    };
    let (running, stale, pid, error) = match report {
        Some(StatusReport::Running(status)) => (Some(true), None, Some(status.pid), None),
        Some(StatusReport::NotRunning { stale }) => (Some(false), *stale, None, None),
        Some(StatusReport::Unreachable { pid, error }) => {
            (None, None, Some(*pid), Some(error.as_str()))
        }
        None => (None, None, None, error),
    };
    if let Some(map) = doc.as_object_mut() {
        map.insert("running".into(), running.into());
        map.insert("pid".into(), pid.into());
        map.insert("stale_pid".into(), stale.into());
        if let Some(error) = error {
            map.insert("error".into(), error.into());
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// 0 applied or unchanged, 1 no result heard, 2 rejected (the old config
/// serves on), 7 not running (LSB's "program is not running").
fn reload(args: &ReloadArgs) -> ExitCode {
    let result = instance(&args.instance).and_then(|p| daemon::reload(&p, args.timeout.get()));
    match result {
        Ok(Reloaded::Done(last)) => {
            say!("reload {}: {}", last.result, last.detail);
            if last.result == "rejected" {
                ExitCode::from(discoveryd::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(Reloaded::Unconfirmed { pid }) => {
            err_line(format_args!(
                "discoveryd: error: sent SIGHUP to pid {pid}, but it reported no result within {}; see its log",
                args.timeout
            ));
            ExitCode::from(1)
        }
        Ok(Reloaded::NotRunning) => {
            say!("discoveryd is not running");
            ExitCode::from(7)
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
    if options.port == 0 {
        return fail(&Error::Usage(
            "--port 0: servers cannot listen on port 0; give their port (1 to 65535)".into(),
        ));
    }
    for target in &args.targets {
        match discoveryd::resolve_target(target, options.port) {
            Ok(addrs) => options.targets.extend(addrs),
            Err(e) => return fail(&Error::Usage(e)),
        }
    }
    options.broadcast = args.targets.is_empty() || args.broadcast;
    options.first = args.first;
    let found = match discoveryd::discover_blocking(&options) {
        Ok(found) => found,
        Err(e) => {
            err_line(format_args!(
                "discoveryd: error: cannot send discovery requests: {e}"
            ));
            return ExitCode::from(discoveryd::EXIT_INTERNAL);
        }
    };
    if found.sent_to.is_empty() && found.send_errors.is_empty() {
        err_line(format_args!(
            "discoveryd: no IPv4 interface can broadcast; ask a host with --target HOST[:PORT]"
        ));
    }
    let written = if args.json {
        out(format_args!("{}\n", found.to_json()))
    } else {
        out(format_args!("{}", found.table()))
    };
    if let Err(e) = written {
        err_line(format_args!(
            "discoveryd: error: cannot write the result to stdout: {e}"
        ));
        return ExitCode::from(discoveryd::EXIT_INTERNAL);
    }
    if !args.json {
        if args.verbose {
            for m in &found.malformed {
                err_line(format_args!(
                    "malformed reply from {} ({}): {:?}",
                    m.from, m.reason, m.reply
                ));
            }
            for (to, e) in &found.send_errors {
                err_line(format_args!("cannot send to {to}: {e}"));
            }
        }
        err_line(format_args!("{}", found.summary()));
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
    if discoveryd::is_broadcast(target.ip()) {
        return Err(Error::Usage(format!(
            "--target {target} is a broadcast or multicast address; bench loads one server: give its own address"
        )));
    }
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
        clients: args.clients.into(),
        window: args.window.into(),
        duration: args.duration.get(),
        requests: args.requests,
        message: config.message.into_bytes(),
        response_prefix: config.response_prefix.into_bytes(),
        reply_timeout: Duration::from_millis(200),
        stop: None,
    };
    let report = discoveryd::bench(&options)
        .map_err(|e| Error::Setup(format!("cannot load {target}: {e}")))?;
    if report.sent == 0 {
        return Err(Error::Usage(format!(
            "--duration {}: too short to send a single request; give a longer one",
            args.duration
        )));
    }
    print_report(&report, args.json);
    if report.replies == 0 {
        return Err(Error::NoReply(format!(
            "no reply from {target} to any of {} requests: is a discovery server listening there, with this message?",
            report.sent
        )));
    }
    Ok(())
}
