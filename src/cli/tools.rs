//! The commands that need no instance: `check`, `discover`, `bench`; and
//! `restart`'s port check.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use discoveryd_api::Registry;

use super::args::{BenchArgs, ConfigArg, DiscoverArgs};
use super::output::{err_line, fail, out, print_report, warn_ignored_env};
use super::source;
use crate::config::{Config, ConfigSource, Overrides};
use crate::error::Error;

pub(super) fn check(args: ConfigArg, registry: &Registry) -> Result<(), Error> {
    warn_ignored_env();
    let toml = crate::check(&source(args, Overrides::default()), registry)?;
    // On stderr: stdout stays the effective config, valid TOML.
    let types: Vec<_> = registry.names().collect();
    err_line(format_args!(
        "config OK; responder types in this build: {}",
        types.join(", ")
    ));
    out(format_args!("{toml}"))
        .map_err(|e| Error::Setup(format!("cannot write the effective config to stdout: {e}")))
}

/// Exit codes of `discover`: 0 found, 1 none found, 2 bad usage; with
/// `--mdns`, 3 when UDP port 5353 cannot be bound.
pub(super) fn discover(args: DiscoverArgs) -> ExitCode {
    if let Some(timeout) = args
        .timeout
        .filter(|t| t.get() > crate::client::MAX_TIMEOUT)
    {
        return fail(&Error::Usage(format!("--timeout {timeout}: at most 1h")));
    }
    if let Some(service_type) = &args.mdns {
        return discover_mdns(service_type, &args);
    }
    if !args.etcd.is_empty() {
        return discover_etcd(&args);
    }
    let overrides = Overrides {
        port: args.port,
        message: args.message,
        timeout: args.timeout,
        ..Overrides::default()
    };
    let mut options = match source(args.config, overrides).load() {
        Ok(config) => crate::DiscoverOptions::from_config(&config),
        Err(e) => return fail(&Error::from(e)),
    };
    if options.port == 0 {
        return fail(&Error::Usage(
            "--port 0: servers cannot listen on port 0; give their port (1 to 65535)".into(),
        ));
    }
    for target in &args.targets {
        match crate::resolve_target(target, options.port) {
            Ok(addrs) => options.targets.extend(addrs),
            Err(e) => return fail(&Error::Usage(e)),
        }
    }
    options.broadcast = args.targets.is_empty() || args.broadcast;
    options.first = args.first;
    if args.no_services {
        options.services_request = None;
    }
    let found = match crate::discover_blocking(&options) {
        Ok(found) => found,
        Err(e) => {
            err_line(format_args!(
                "discoveryd: error: cannot send discovery requests: {e}"
            ));
            return ExitCode::from(crate::EXIT_INTERNAL);
        }
    };
    if found.sent_to.is_empty() && found.send_errors.is_empty() {
        err_line(format_args!(
            "discoveryd: no IPv4 interface can broadcast; ask a host with --target HOST[:PORT]"
        ));
    }
    if let Err(code) = print_found(args.json, || found.to_json(), || found.table()) {
        return code;
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

/// `discover --mdns`: the timeout comes from `--timeout` or the config.
fn discover_mdns(service_type: &str, args: &DiscoverArgs) -> ExitCode {
    let service_type = match crate::parse_service_type(service_type) {
        Ok(t) => t,
        Err(e) => return fail(&Error::Usage(e)),
    };
    let timeout = match discover_config(args) {
        Ok(config) => config.timeout.get(),
        Err(e) => return fail(&e),
    };
    let options = crate::MdnsOptions {
        service_type,
        timeout,
        first: args.first,
    };
    let found = match crate::browse_mdns(&options) {
        Ok(found) => found,
        Err(crate::MdnsError::Bind(e)) => {
            return fail(&Error::Bind {
                addr: SocketAddr::from(([0, 0, 0, 0], 5353)),
                reason: format!("{e}; another program holds the mDNS port without sharing it (SO_REUSEPORT): stop it, or browse through it (avahi-browse)"),
            })
        }
        Err(e) => return fail(&Error::Internal(e.to_string())),
    };
    report(
        args.json,
        !found.servers.is_empty(),
        || found.to_json(),
        || found.table(),
        || found.summary(),
    )
}

/// `discover --etcd`: what is published under the prefix (`--prefix`, or
/// that of the config's first etcd registry, with its credentials). Exit
/// 3 when no endpoint answers.
fn discover_etcd(args: &DiscoverArgs) -> ExitCode {
    let config = match discover_config(args) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let registry = config.registries.first().map(|r| match r {
        crate::Registry::Etcd(etcd) => etcd,
    });
    // The config's credentials go only to the cluster they are for.
    let asked = crate::Etcd {
        endpoints: args.etcd.clone(),
        prefix: registry.map_or_else(Default::default, |r| r.prefix.clone()),
        ..crate::Etcd::default()
    };
    let credentials = match registry
        .filter(|r| r.same_place(&asked))
        .map(|r| r.credentials())
    {
        Some(credentials) => match credentials.read() {
            Ok(credentials) => credentials,
            Err(e) => return fail(&Error::Usage(e)),
        },
        None => None,
    };
    let options = crate::EtcdOptions {
        endpoints: args.etcd.clone(),
        prefix: args
            .prefix
            .clone()
            .or_else(|| registry.map(|etcd| etcd.prefix.clone()))
            .unwrap_or_else(|| crate::registries::DEFAULT_PREFIX.to_owned()),
        service: args.service.clone(),
        timeout: config.timeout.get(),
        credentials,
    };
    if let Some(service) = &options.service {
        if let Err(e) = crate::services::check_name(service) {
            return fail(&Error::Usage(format!("--service {e}")));
        }
    }
    let found = match crate::browse_etcd(&options) {
        Ok(found) => found,
        Err(e) if e.starts_with("--") => return fail(&Error::Usage(e)),
        Err(e) => {
            err_line(format_args!("discoveryd: error: {e}"));
            return ExitCode::from(crate::EXIT_PORT);
        }
    };
    report(
        args.json,
        !found.servers.is_empty(),
        || found.to_json(),
        || found.table(),
        || found.summary(),
    )
}

/// The configuration `discover` reads, with `--timeout` over it.
fn discover_config(args: &DiscoverArgs) -> Result<crate::Config, Error> {
    let overrides = Overrides {
        timeout: args.timeout,
        ..Overrides::default()
    };
    let config = ConfigArg {
        config: args.config.config.clone(),
    };
    Ok(source(config, overrides).load()?)
}

/// Prints a discovery's result (`json`, or a table with its summary line
/// on stderr); exits 0 when it `found` something, 1 otherwise.
fn report(
    json: bool,
    found: bool,
    to_json: impl FnOnce() -> String,
    table: impl FnOnce() -> String,
    summary: impl FnOnce() -> String,
) -> ExitCode {
    if let Err(code) = print_found(json, to_json, table) {
        return code;
    }
    if !json {
        err_line(format_args!("{}", summary()));
    }
    if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(super) fn bench(args: BenchArgs) -> Result<(), Error> {
    let overrides = Overrides {
        message: args.message,
        ..Overrides::default()
    };
    let config = source(args.config, overrides).load()?;
    let target = args.target.as_deref().unwrap_or("127.0.0.1");
    let target = *crate::resolve_target(target, config.port)
        .map_err(Error::Usage)?
        .first()
        .ok_or_else(|| Error::Usage(format!("--target {target}: no address")))?;
    if crate::is_broadcast(target.ip()) {
        return Err(Error::Usage(format!(
            "--target {target} is a broadcast or multicast address; bench loads one server: give its own address"
        )));
    }
    if !target.ip().is_loopback() && !args.allow_remote {
        return Err(Error::Usage(format!(
            "--target {target} is not a loopback address; add --allow-remote to load a server you own"
        )));
    }
    if args.duration.get() > crate::MAX_DURATION {
        return Err(Error::Usage(format!(
            "--duration {}: at most 5m",
            args.duration
        )));
    }
    let options = crate::BenchOptions {
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
    let report =
        crate::bench(&options).map_err(|e| Error::Setup(format!("cannot load {target}: {e}")))?;
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

/// Checks, before `restart` stops the running instance, that every address
/// the new `config` asks for can be bound. Those the running instance
/// holds (`held`, or covered by a wildcard it holds) are its to hand over;
/// any other must be free now. A failure names the port and its holder.
pub(super) fn check_ports(
    source: &ConfigSource,
    config: &Config,
    held: &[SocketAddr],
) -> Result<(), Error> {
    for &ip in &config.bind {
        let addr = SocketAddr::new(ip, config.port);
        let covered = held.iter().any(|h| {
            h.port() == addr.port()
                && h.is_ipv4() == addr.is_ipv4()
                && (h.ip() == ip || h.ip().is_unspecified() || ip.is_unspecified())
        });
        if config.port == 0 || covered {
            continue;
        }
        if let Err(e) = crate::net::bind_udp(addr) {
            let failure = crate::supervision::BindFailure::of(&e);
            return Err(Error::bind(failure, addr, 1, &source.describe()));
        }
    }
    Ok(())
}

/// Prints a discovery's result on stdout, as JSON or as a table.
fn print_found(
    json: bool,
    to_json: impl FnOnce() -> String,
    table: impl FnOnce() -> String,
) -> Result<(), ExitCode> {
    let written = if json {
        out(format_args!("{}\n", to_json()))
    } else {
        out(format_args!("{}", table()))
    };
    written.map_err(|e| {
        err_line(format_args!(
            "discoveryd: error: cannot write the result to stdout: {e}"
        ));
        ExitCode::from(crate::EXIT_INTERNAL)
    })
}

/// `completions SHELL`: the shell's completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut super::command(), "discoveryd", &mut script);
    out(format_args!("{}", String::from_utf8_lossy(&script)))
        .map_err(|e| Error::Setup(format!("cannot write the completions to stdout: {e}")))
}
