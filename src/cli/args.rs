//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LogLevel;
use crate::duration::HumanDuration;

/// LAN service discovery: answers DISCOVER_SERVER with SERVER_IP:<ip>.
#[derive(Debug, Parser)]
#[command(name = "discoveryd", version = crate::VERSION, about)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    /// Print shell completions for discoveryd, to source or install.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub(super) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(super) shell: clap_complete::Shell,
}

/// The most client sockets `bench` runs (one thread each).
pub(super) const MAX_CLIENTS: u16 = 256;
/// The most requests in flight per `bench` client.
pub(super) const MAX_WINDOW: u16 = 1024;

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    #[command(flatten)]
    pub(super) config: ConfigArg,
    /// The server to load (default: 127.0.0.1 on the configured port).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub(super) target: Option<String>,
    /// Concurrent client sockets (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_CLIENTS)))]
    pub(super) clients: u16,
    /// Requests in flight per client (1 to 1024).
    #[arg(long, value_name = "W", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WINDOW)))]
    pub(super) window: u16,
    /// How long to send (at most 5m).
    #[arg(
        long,
        value_name = "D",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    pub(super) duration: HumanDuration,
    /// Stop after this many requests in all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) requests: Option<u64>,
    /// The request to send (default: the configured message).
    #[arg(long, value_name = "S")]
    pub(super) message: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub(super) allow_remote: bool,
}

#[derive(Debug, Args)]
pub(super) struct ConfigArg {
    /// The config file (TOML); without it, built-in defaults and DISCOVERYD_* variables.
    #[arg(long, short, value_name = "PATH")]
    pub(super) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct InstanceArgs {
    #[command(flatten)]
    pub(super) config: ConfigArg,
    /// The pidfile that identifies the instance (default: from the config).
    #[arg(long, value_name = "PATH")]
    pub(super) pidfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) instance: InstanceArgs,
    /// UDP port to listen on (0: any free port, for tests).
    #[arg(long, value_name = "N")]
    pub(super) port: Option<u16>,
    /// The discovery request to answer.
    #[arg(long, value_name = "S")]
    pub(super) message: Option<String>,
    /// Stop after this long: 90s, 2m, 1h 30m, or seconds.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub(super) duration: Option<HumanDuration>,
    /// If another instance holds the pidfile, stop it first.
    #[arg(long)]
    pub(super) replace: bool,
    /// Log this much and more severe (overrides `log_level`, and `logging =
    /// false`); RUST_LOG, when set, outranks it.
    #[arg(long, value_name = "LEVEL")]
    pub(super) log_level: Option<LogLevel>,
}

#[derive(Debug, Args)]
pub(super) struct StartArgs {
    #[command(flatten)]
    pub(super) instance: InstanceArgs,
    /// Where the daemon writes its output (default: beside the pidfile).
    #[arg(long, value_name = "PATH")]
    pub(super) log_file: Option<PathBuf>,
    /// How long to wait for the daemon to listen; past it, it is stopped.
    #[arg(
        long,
        value_name = "D",
        default_value = "90s",
        allow_hyphen_values = true
    )]
    pub(super) wait: HumanDuration,
    /// The daemon logs this much and more severe (overrides `log_level`,
    /// and `logging = false`); RUST_LOG, when set, outranks it.
    #[arg(long, value_name = "LEVEL")]
    pub(super) log_level: Option<LogLevel>,
}

#[derive(Debug, Args)]
pub(super) struct StopArgs {
    #[command(flatten)]
    pub(super) instance: InstanceArgs,
    #[command(flatten)]
    pub(super) kill: KillAfter,
}

/// How `stop` (and `restart`) escalate.
#[derive(Debug, Args)]
pub(super) struct KillAfter {
    /// How long to wait after SIGTERM before SIGKILL.
    #[arg(
        long,
        value_name = "D",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    pub(super) timeout: HumanDuration,
}

#[derive(Debug, Args)]
pub(super) struct ReloadArgs {
    #[command(flatten)]
    pub(super) instance: InstanceArgs,
    /// How long to wait for the result.
    #[arg(
        long,
        value_name = "D",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    pub(super) timeout: HumanDuration,
}

#[derive(Debug, Args)]
pub(super) struct RestartArgs {
    #[command(flatten)]
    pub(super) start: StartArgs,
    #[command(flatten)]
    pub(super) kill: KillAfter,
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    pub(super) instance: InstanceArgs,
    /// Print the status document as JSON (whether or not it runs).
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct DiscoverArgs {
    #[command(flatten)]
    pub(super) config: ConfigArg,
    /// The port servers listen on.
    #[arg(long, value_name = "N")]
    pub(super) port: Option<u16>,
    /// The discovery request to send.
    #[arg(long, value_name = "S")]
    pub(super) message: Option<String>,
    /// How long to wait for answers: 500ms, 2s, ...
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub(super) timeout: Option<HumanDuration>,
    /// Ask this host (unicast or broadcast) instead of broadcasting; repeatable.
    #[arg(long = "target", value_name = "HOST[:PORT]")]
    pub(super) targets: Vec<String>,
    /// With --target: broadcast on every IPv4 interface as well.
    #[arg(long)]
    pub(super) broadcast: bool,
    /// Return at the first answer.
    #[arg(long)]
    pub(super) first: bool,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub(super) json: bool,
    /// Send only the discovery request, not the json responder's request
    /// for the registered services.
    #[arg(long)]
    pub(super) no_services: bool,
    /// Also show malformed answers and failed sends.
    #[arg(long, short)]
    pub(super) verbose: bool,
    /// Browse DNS-SD over mDNS for this service type instead (default
    /// _discoveryd._udp; _http._tcp and _http._tcp.local. alike).
    #[arg(
        long,
        value_name = "SERVICE_TYPE",
        num_args = 0..=1,
        default_missing_value = crate::DEFAULT_SERVICE_TYPE,
        conflicts_with_all = ["port", "message", "targets", "broadcast", "no_services"],
    )]
    pub(super) mdns: Option<String>,
    /// List what is published in etcd instead: the cluster's client URL
    /// (http://host:port); repeatable, tried in turn.
    #[arg(
        long = "etcd",
        value_name = "URL",
        conflicts_with_all = ["port", "message", "targets", "broadcast", "no_services", "mdns", "first"],
    )]
    pub(super) etcd: Vec<String>,
    /// With --etcd: only the instances of this service.
    #[arg(long, value_name = "NAME", requires = "etcd")]
    pub(super) service: Option<String>,
    /// With --etcd: the key prefix (default: the config's first etcd
    /// registry's, or /discoveryd/services/).
    #[arg(long, value_name = "PREFIX", requires = "etcd")]
    pub(super) prefix: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, DiscoverArgs};

    fn discover(args: &[&str]) -> Result<DiscoverArgs, clap::Error> {
        let argv = ["discoveryd", "discover"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Discover(d) => Ok(d),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn mdns_takes_an_optional_service_type() {
        assert_eq!(discover(&[]).unwrap().mdns, None);
        assert_eq!(
            discover(&["--mdns"]).unwrap().mdns.as_deref(),
            Some("_discoveryd._udp")
        );
        let d = discover(&["--mdns", "--first", "--json"]).unwrap();
        assert_eq!(d.mdns.as_deref(), Some("_discoveryd._udp"));
        assert!(d.first && d.json);
        let d = discover(&["--mdns", "_http._tcp.local.", "--timeout", "2s"]).unwrap();
        assert_eq!(d.mdns.as_deref(), Some("_http._tcp.local."));
        assert_eq!(d.timeout.unwrap().get(), std::time::Duration::from_secs(2));
        let d = discover(&["--mdns=_http._tcp"]).unwrap();
        assert_eq!(d.mdns.as_deref(), Some("_http._tcp"));
    }

    #[test]
    fn mdns_refuses_the_classic_only_flags_as_usage_errors() {
        for extra in [
            &["--target", "127.0.0.1"][..],
            &["--broadcast"],
            &["--port", "9999"],
            &["--message", "X"],
        ] {
            let mut args = vec!["--mdns", "_http._tcp"];
            args.extend_from_slice(extra);
            let e = discover(&args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{extra:?}"
            );
            assert_eq!(e.exit_code(), 2);
        }
    }
}
