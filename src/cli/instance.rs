//! The commands that act on an instance identified by its pidfile:
//! `start`, `stop`, `restart`, `status`, `reload`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use discoveryd_api::Registry;

use super::args::{InstanceArgs, ReloadArgs, RestartArgs, StartArgs, StatusArgs};
use super::output::{err_line, fail, warn_ignored_env};
use super::serve::{serve, RunOptions};
use super::{instance_source, tools};
use crate::config::ConfigSource;
use crate::daemon::{self, Daemonized, Located, Reloaded, StatusReport, Stopped};
use crate::error::Error;
use crate::logging::LogControl;
use crate::status::ReloadResult;

/// The instance a command acts on. Its pidfile is found even when the
/// config file has become invalid or unreadable, or names a pidfile other
/// than the one the running instance started with: a running daemon
/// stays reachable.
pub(super) fn instance(args: &InstanceArgs) -> Result<PathBuf, Error> {
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

/// Where `start`'s daemon takes its configuration from: the instance's,
/// with `--log-file` and `--log-level`.
fn start_source(args: &StartArgs) -> ConfigSource {
    let mut source = instance_source(&args.instance, args.log_file.clone());
    source.overrides = std::mem::take(&mut source.overrides).with_log_level(args.log_level);
    source
}

pub(super) fn start(args: StartArgs, registry: Registry) -> Result<(), Error> {
    warn_ignored_env();
    let source = start_source(&args);
    let config = source.load()?;
    // Refused here, not in the daemon only: a bad RUST_LOG is the caller's.
    crate::logging::rust_log()?;
    let daemon = |source: ConfigSource, daemon: Daemonized| {
        let config = source.load()?;
        let log = LogControl::install(&config)?;
        let options = RunOptions {
            replace: false,
            notifier: daemon.notifier,
            log_file: Some(daemon.log_file),
            pidfile: Some(daemon.pidfile),
        };
        serve(source, config, registry, log, options)
    };
    let pid = daemon::start(source, &config, args.wait.get(), daemon)?;
    say!("started with pid {pid}");
    Ok(())
}

/// Validates everything the new instance needs before the old one stops:
/// a bad config, a busy new port or an unusable file leaves the running
/// instance alone.
pub(super) fn restart(args: RestartArgs, registry: Registry) -> Result<(), Error> {
    let source = start_source(&args.start);
    crate::check(&source, &registry)?;
    crate::logging::rust_log()?;
    let config = source.load()?;
    let pidfile = instance(&args.start.instance)?;
    daemon::preflight(&config, &pidfile)?;
    if let Ok(StatusReport::Running(running)) = daemon::status(&pidfile) {
        tools::check_ports(&source, &config, &running.addrs)?;
    }
    let timeout = args.kill.timeout.get();
    report_stop(daemon::stop(&pidfile, timeout)?, timeout);
    start(args.start, registry)
}

pub(super) fn stop(args: &InstanceArgs, timeout: Duration) -> Result<(), Error> {
    report_stop(daemon::stop(&instance(args)?, timeout)?, timeout);
    Ok(())
}

fn report_stop(stopped: Stopped, timeout: Duration) {
    match stopped {
        Stopped::NotRunning => say!("discoveryd is not running"),
        Stopped::Stale { pid, kept } => {
            let pid = pid.map_or_else(|| "?".into(), |p| p.to_string());
            match kept {
                None => say!("discoveryd is not running (removed a stale pidfile of pid {pid})"),
                Some(why) => {
                    say!("discoveryd is not running (a stale pidfile of pid {pid} is left)");
                    err_line(format_args!(
                        "discoveryd: warning: cannot remove the stale pidfile or its socket: {why}"
                    ));
                }
            }
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
pub(super) fn status(args: &StatusArgs) -> ExitCode {
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
pub(super) fn reload(args: &ReloadArgs) -> ExitCode {
    let result = instance(&args.instance).and_then(|p| daemon::reload(&p, args.timeout.get()));
    match result {
        Ok(Reloaded::Done(last)) => {
            say!("reload {}: {}", last.result, last.detail);
            if last.result == ReloadResult::Rejected {
                ExitCode::from(crate::error::EXIT_USAGE)
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
